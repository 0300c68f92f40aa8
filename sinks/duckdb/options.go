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

// WithRegisterer sets the Prometheus registerer. The writer registers one metric,
// spanpipe_duckdb_memory_limit_bytes (see [Config.MemoryLimit]); the pipeline counts
// rows, batches, durations and errors per sink. Default nil: no metrics.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.reg = reg }
}
