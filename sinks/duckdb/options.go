package duckdb

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spanpipe/spanpipe/pipeline"
)

// Option configures the collaborators of a [Writer].
type Option func(*options)

type options struct {
	logger *slog.Logger
	reg    prometheus.Registerer
	fault  func(ctx context.Context, b *pipeline.Batch) error
}

func defaultOptions() options {
	return options{logger: slog.New(slog.DiscardHandler)}
}

// WithLogger sets the logger; the writer logs through a child with
// component=duckdb. Default: a logger that discards everything. A nil logger keeps
// the default.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithRegisterer sets the Prometheus registerer. The writer registers no metrics
// today: the pipeline counts rows, batches, durations and errors per sink. The option
// exists so that callers can pass one registerer to every component. Default nil.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.reg = reg }
}

// WithFaultInjector installs a hook that [Writer.Write] calls first, with the batch it
// is about to write. When the hook returns an error, Write returns that error as is
// and writes nothing. It exists for fault tests that simulate an outage of the
// store. Default nil (no hook).
func WithFaultInjector(fn func(ctx context.Context, b *pipeline.Batch) error) Option {
	return func(o *options) { o.fault = fn }
}
