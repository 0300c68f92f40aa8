package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/promx"
	"github.com/spanpipe/spanpipe/schema"
)

// Flush triggers, the values of the trigger label.
const (
	TriggerSize     = "size"
	TriggerBytes    = "bytes"
	TriggerInterval = "interval"
	TriggerPressure = "pressure"
	TriggerRealtime = "realtime"
	TriggerRevoke   = "revoke"
	TriggerShutdown = "shutdown"
)

type metrics struct {
	consumed      *prometheus.CounterVec
	skipped       *prometheus.CounterVec
	coalesced     prometheus.Counter
	dropped       *prometheus.CounterVec
	flushes       *prometheus.CounterVec
	batchSize     prometheus.Histogram
	buffered      prometheus.Gauge
	written       *prometheus.CounterVec
	writeDuration *prometheus.HistogramVec
	retries       *prometheus.CounterVec
	sinkErrors    *prometheus.CounterVec
	lastSuccess   *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, sink string) *metrics {
	r := func(c prometheus.Collector) prometheus.Collector { return promx.Register(reg, c) }
	m := &metrics{
		consumed: r(prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_pipeline_records_consumed_total",
			Help: "Records taken from Kafka by the pipeline, by signal (\"unknown\" when undecodable).",
		}, []string{"signal"})).(*prometheus.CounterVec),
		skipped: r(prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_pipeline_span_events_skipped_total",
			Help: "Span snapshots the strategy does not write (insert-only skips running spans); not a loss, the final snapshot follows.",
		}, []string{"strategy"})).(*prometheus.CounterVec),
		coalesced: r(prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spanpipe_pipeline_span_snapshots_coalesced_total",
			Help: "Span snapshots replaced inside a batch by a newer snapshot of the same span.",
		})).(prometheus.Counter),
		dropped: promx.DroppedRecords(reg),
		flushes: r(prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_pipeline_flushes_total",
			Help: "Batches sealed for writing, by trigger.",
		}, []string{"trigger"})).(*prometheus.CounterVec),
		batchSize: r(prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "spanpipe_pipeline_batch_size_records",
			Help:    "Records per sealed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		})).(prometheus.Histogram),
		buffered: r(prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spanpipe_pipeline_buffered_records",
			Help: "Records held in memory: the open buffer plus batches waiting for or in the sink.",
		})).(prometheus.Gauge),
		written: r(prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_sink_rows_written_total",
			Help: "Rows written to a sink, by sink and signal.",
		}, []string{"sink", "signal"})).(*prometheus.CounterVec),
		writeDuration: r(prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "spanpipe_sink_write_duration_seconds",
			Help:    "Duration of one sink write attempt, by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"sink", "outcome"})).(*prometheus.HistogramVec),
		retries: r(prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_sink_retries_total",
			Help: "Sink write retries.",
		}, []string{"sink"})).(*prometheus.CounterVec),
		sinkErrors: r(prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_sink_errors_total",
			Help: "Failed sink writes, by kind (retryable or permanent).",
		}, []string{"sink", "kind"})).(*prometheus.CounterVec),
		lastSuccess: r(prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spanpipe_sink_last_success_timestamp_seconds",
			Help: "Unix time of the last successful sink write. Alert when it goes stale while lag grows.",
		}, []string{"sink"})).(*prometheus.GaugeVec),
	}
	// Known label combinations start at zero so that rate() and absent() work at once.
	for _, s := range schema.AllSignals {
		m.consumed.WithLabelValues(string(s))
		m.written.WithLabelValues(sink, string(s))
		for _, r := range []dropalerts.Reason{dropalerts.ReasonRetryExhausted, dropalerts.ReasonUnsupportedStorage, dropalerts.ReasonSinkRejected, dropalerts.ReasonTooLarge} {
			m.dropped.WithLabelValues(string(s), string(r), "consumer")
		}
	}
	m.dropped.WithLabelValues("unknown", string(dropalerts.ReasonDecodeError), "consumer")
	m.dropped.WithLabelValues("unknown", string(dropalerts.ReasonRetentionExpired), "consumer")
	for _, t := range []string{TriggerSize, TriggerBytes, TriggerInterval, TriggerPressure, TriggerRealtime, TriggerRevoke, TriggerShutdown} {
		m.flushes.WithLabelValues(t)
	}
	m.retries.WithLabelValues(sink)
	m.sinkErrors.WithLabelValues(sink, "retryable")
	m.sinkErrors.WithLabelValues(sink, "permanent")
	return m
}
