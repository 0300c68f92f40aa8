package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spanpipe/spanpipe/pipeline"
)

// FaultFileEnv names the environment variable that arms the sink fault hook of
// `spanpipe consume`: SPANPIPE_FAULT_FILE=/path/to/file. While that file exists, every
// sink write fails (a retryable error), as if the store were down; remove the file and
// writes go through again. It exists for the fault tests in integration/, which turn a
// real consumer process's sink off and on from outside. Unset (the default) installs
// no hook.
const FaultFileEnv = "SPANPIPE_FAULT_FILE"

// ErrInjectedFault is what sink writes fail with (wrapped) while the fault file exists.
var ErrInjectedFault = errors.New("injected sink outage")

// The variable is read here, not by Load: it is not a config key.
func init() { ignoredEnv[FaultFileEnv] = true }

// FaultInjector returns the hook (for [WithFault]) that SPANPIPE_FAULT_FILE in environ
// asks for, or nil (no hook) when the variable is unset or empty. The hook
// checks for the file on every write, so it can be created and removed while the
// process runs. When armed, it logs a warning once, here, so that a forgotten
// variable in production is visible.
func FaultInjector(environ []string, log *slog.Logger) func(context.Context, *pipeline.Batch) error {
	var path string
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, FaultFileEnv+"="); ok {
			path = v
		}
	}
	if path == "" {
		return nil
	}
	if log != nil {
		log.Warn("sink fault injection armed: writes fail while the file exists", "env", FaultFileEnv, "path", path)
	}
	return func(context.Context, *pipeline.Batch) error {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("fault: %w (%s exists)", ErrInjectedFault, path)
		}
		return nil
	}
}

// WithFault returns sink with fault called before every write: a write fails with
// fault's error, as if the store were down, and nothing is written. It wraps the
// pipeline's Sink interface rather than each sink, so every sink gets the same hook.
// A nil fault returns sink unchanged.
func WithFault(sink pipeline.Sink, fault func(context.Context, *pipeline.Batch) error) pipeline.Sink {
	if fault == nil {
		return sink
	}
	return faultySink{sink, fault}
}

type faultySink struct {
	pipeline.Sink
	fault func(context.Context, *pipeline.Batch) error
}

func (f faultySink) Write(ctx context.Context, b *pipeline.Batch) error {
	if err := f.fault(ctx, b); err != nil {
		return err
	}
	return f.Sink.Write(ctx, b)
}
