package duckdb

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// Option configures the collaborators of a [Writer].
type Option func(*options)

type options struct {
	logger *slog.Logger
	reg    prometheus.Registerer
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
