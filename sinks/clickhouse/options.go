package clickhouse

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// Option configures the collaborators of a [Writer] and of [Migrate].
type Option func(*options)

type options struct {
	logger *slog.Logger
	reg    prometheus.Registerer
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
