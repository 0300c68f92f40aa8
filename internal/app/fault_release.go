//go:build !spanpipe_fault

package app

import (
	"context"
	"log/slog"

	"github.com/spanpipe/spanpipe/pipeline"
)

// FaultInjector never installs a hook in a release build; when SPANPIPE_FAULT_FILE is
// set it says, once, that the variable is ignored.
func FaultInjector(environ []string, log *slog.Logger) func(context.Context, *pipeline.Batch) error {
	if path := faultFilePath(environ); path != "" && log != nil {
		log.Warn("sink fault injection is not compiled into this binary (build tag spanpipe_fault); the variable is ignored",
			"env", FaultFileEnv, "path", path)
	}
	return nil
}
