package clickhouse

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spanpipe/spanpipe/pipeline"
)

// Option configures the collaborators of a [Writer] and of [Migrate].
type Option func(*options)

type options struct {
	logger *slog.Logger
	reg    prometheus.Registerer
	fault  func(ctx context.Context, b *pipeline.Batch) error
}

func buildOptions(opts []Option) options {
	o := options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithLogger sets the logger; the writer logs through a child with
// component=clickhouse. Default: a logger that discards everything. A nil logger keeps
// the default.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithRegisterer sets the Prometheus registerer of the writer's metrics (see the
// package documentation). Default nil: the metrics are kept but not registered.
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
