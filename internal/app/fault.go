package app

import (
	"context"
	"strings"

	"github.com/spanpipe/spanpipe/pipeline"
)

// FaultFileEnv names the environment variable that arms the sink fault hook of
// `spanpipe consume`: SPANPIPE_FAULT_FILE=/path/to/file. It exists for the fault tests
// in integration/, which make a real consumer process's sink fail, hang and recover
// from outside. The hook is compiled only into binaries built with the spanpipe_fault
// build tag (go build -tags spanpipe_fault; fault_hook.go): a release binary ignores
// the variable, with a warning, so that a forgotten variable can never take a
// production sink down.
const FaultFileEnv = "SPANPIPE_FAULT_FILE"

// The variable is read by FaultInjector, not by Load: it is not a config key, and a
// release binary must not refuse to start over it.
func init() { ignoredEnv[FaultFileEnv] = true }

// faultFilePath is the value of SPANPIPE_FAULT_FILE in environ, "" when unset.
func faultFilePath(environ []string) string {
	var path string
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == FaultFileEnv {
			path = v
		}
	}
	return path
}

// WithFault returns sink with fault called before every write: a write fails with
// fault's error, as if the store were down, and nothing is written. It wraps the
// pipeline's Sink interface rather than each sink, so every sink gets the same hook.
// A nil fault (always, in a release build) returns sink unchanged.
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

// Broken passes on the wrapped sink's (see brokenSink).
func (f faultySink) Broken() error {
	if b, ok := f.Sink.(brokenSink); ok {
		return b.Broken()
	}
	return nil
}
