//go:build spanpipe_fault

package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spanpipe/spanpipe/pipeline"
)

// ErrInjectedFault is what sink writes fail with (wrapped) while the fault file says so.
var ErrInjectedFault = errors.New("injected sink fault")

// Fault modes: the content of the fault file (surrounding space ignored).
const (
	// FaultHang blocks every write until the file is removed or changed, or the
	// write's context ends: a store that stops answering.
	FaultHang = "hang"
	// FaultReject fails every write with a permanent error (pipeline.Permanent): a
	// store that refuses the batch.
	FaultReject = "reject"
	// FaultUnavailable fails every write with pipeline.Unavailable: a store that is
	// known to be down, which the writer waits out.
	FaultUnavailable = "unavailable"
	// Any other content (such as "error", or an empty file) fails every write with a
	// retryable error.
)

// faultPoll is how often a hung write looks at the file again.
const faultPoll = 100 * time.Millisecond

// FaultInjector returns the hook (for [WithFault]) that SPANPIPE_FAULT_FILE in environ
// asks for, or nil (no hook) when the variable is unset or empty. The hook reads the
// file on every write, so that a test can create, change and remove it while the
// process runs; no file, no fault. When armed, it logs a warning once, here, so that
// the variable is visible in the log.
func FaultInjector(environ []string, log *slog.Logger) func(context.Context, *pipeline.Batch) error {
	path := faultFilePath(environ)
	if path == "" {
		return nil
	}
	if log != nil {
		log.Warn("sink fault injection armed: writes fail or hang while the file exists", "env", FaultFileEnv, "path", path)
	}
	return func(ctx context.Context, _ *pipeline.Batch) error {
		for {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil // no file (or unreadable): the sink works
			}
			mode := strings.TrimSpace(string(b))
			fault := fmt.Errorf("fault: %w (%s says %q)", ErrInjectedFault, path, mode)
			switch mode {
			case FaultReject:
				return pipeline.Permanent(fault)
			case FaultUnavailable:
				return pipeline.Unavailable(fault)
			case FaultHang:
				select {
				case <-ctx.Done():
					return fmt.Errorf("%w: %w", fault, ctx.Err())
				case <-time.After(faultPoll):
				}
			default:
				return fault
			}
		}
	}
}
