package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/promx"
	"github.com/spanpipe/spanpipe/schema"
)

// repairMissingEndTime is the kind label of a span_ended given the record's time as
// its end time.
const repairMissingEndTime = "missing_end_time"

type batcherMetrics struct {
	consumed  *prometheus.CounterVec
	skipped   *prometheus.CounterVec
	coalesced prometheus.Counter
	repaired  *prometheus.CounterVec
	// unended and neverEnded watch running spans skipped under insert-only.
	unended    prometheus.Gauge
	neverEnded prometheus.Counter
	flushes    *prometheus.CounterVec
	batchSize  prometheus.Histogram
	buffered   prometheus.Gauge
	// bufferLimit is max_buffer_size as resolved, so that a full buffer (fetching
	// paused: backpressure) shows as buffered_records / buffer_limit_records near 1.
	bufferLimit prometheus.Gauge
}

// newBatcherMetrics registers the batcher's metrics; age reports the oldest unwritten
// record's age at scrape time, so that a stalled writer shows without any event.
// Several batchers sharing a registry (tests, bench) share the first one's age.
func newBatcherMetrics(reg prometheus.Registerer, age func() float64) *batcherMetrics {
	m := &batcherMetrics{
		consumed: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_pipeline_records_consumed_total",
			Help: "Records taken from Kafka by the pipeline, by signal (\"unknown\" when undecodable).",
		}, []string{"signal"})),
		skipped: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_pipeline_span_events_skipped_total",
			Help: "Span snapshots the strategy does not write (insert-only skips running spans); not a loss, the final snapshot follows.",
		}, []string{"strategy"})),
		coalesced: promx.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spanpipe_pipeline_span_snapshots_coalesced_total",
			Help: "Span snapshots replaced inside a batch by a newer snapshot of the same span.",
		})),
		repaired: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_pipeline_repaired_records_total",
			Help: "Records stored after a repair, by kind (missing_end_time: a span_ended without endTime ends at the record's Kafka timestamp; lone_surrogate: a JavaScript string cut inside a surrogate pair, the half replaced by U+FFFD).",
		}, []string{"kind"})),
		unended: promx.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spanpipe_pipeline_running_spans",
			Help: "Spans seen started but not yet ended under insert-only (whose running snapshots are skipped), tracked up to 100000 and for an hour.",
		})),
		neverEnded: promx.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spanpipe_pipeline_spans_never_ended_total",
			Help: "Spans skipped as running under insert-only and not seen ending within an hour (or pushed out of the 100000 tracked): stored nowhere unless they end later. An upper bound: a span whose partition moved to another member before it ended counts here too.",
		})),
		flushes: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_pipeline_flushes_total",
			Help: "Batches sealed for writing, by trigger.",
		}, []string{"trigger"})),
		batchSize: promx.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "spanpipe_pipeline_batch_size_records",
			Help:    "Records per sealed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		})),
		buffered: promx.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spanpipe_pipeline_buffered_records",
			Help: "Records held in memory: the open buffer plus batches waiting for or in the sink.",
		})),
		bufferLimit: promx.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spanpipe_pipeline_buffer_limit_records",
			Help: "pipeline.max_buffer_size in force (derived from the sink when set to 0): at spanpipe_pipeline_buffered_records, fetching pauses until the sink catches up.",
		})),
	}
	promx.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "spanpipe_pipeline_oldest_unwritten_age_seconds",
		Help: "Age of the oldest record neither written nor dead-lettered (open or sealed batch); 0 when none. Grows without bound when the writer is stuck.",
	}, age))
	for _, s := range schema.AllSignals {
		m.consumed.WithLabelValues(string(s))
	}
	m.repaired.WithLabelValues(repairMissingEndTime)
	for _, r := range schema.AllRepairs {
		m.repaired.WithLabelValues(string(r))
	}
	for _, t := range allTriggers {
		m.flushes.WithLabelValues(string(t))
	}
	return m
}

type writerMetrics struct {
	dropped       *prometheus.CounterVec
	written       *prometheus.CounterVec
	writeDuration *prometheus.HistogramVec
	retries       *prometheus.CounterVec
	sinkErrors    *prometheus.CounterVec
	lastSuccess   *prometheus.GaugeVec
	splits        prometheus.Counter
}

func newWriterMetrics(reg prometheus.Registerer, sink string) *writerMetrics {
	m := &writerMetrics{
		dropped: promx.DroppedRecords(reg),
		written: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_sink_rows_written_total",
			Help: "Rows written to a sink, by sink and signal.",
		}, []string{"sink", "signal"})),
		writeDuration: promx.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "spanpipe_sink_write_duration_seconds",
			Help:    "Duration of one sink write attempt, by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"sink", "outcome"})),
		retries: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_sink_retries_total",
			Help: "Sink write retries.",
		}, []string{"sink"})),
		sinkErrors: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_sink_errors_total",
			Help: "Failed sink writes, by kind: retryable, unavailable (the store is down: retried without limit) or permanent (the batch is rejected).",
		}, []string{"sink", "kind"})),
		lastSuccess: promx.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spanpipe_sink_last_success_timestamp_seconds",
			Help: "Unix time of the last successful sink write. Alert when it goes stale while lag grows.",
		}, []string{"sink"})),
		splits: promx.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spanpipe_pipeline_batch_splits_total",
			Help: "Rejected batches split in halves to find the records the sink refuses.",
		})),
	}
	// Known label combinations start at zero so that rate() and absent() work at once.
	for _, s := range schema.AllSignals {
		m.written.WithLabelValues(sink, string(s))
		for _, r := range []dropalerts.Reason{dropalerts.ReasonRetryExhausted, dropalerts.ReasonUnsupportedStorage, dropalerts.ReasonSinkRejected,
			dropalerts.ReasonTooLarge, dropalerts.ReasonDecodeError} {
			m.dropped.WithLabelValues(string(s), string(r), dropalerts.ComponentConsumer)
		}
	}
	m.dropped.WithLabelValues("unknown", string(dropalerts.ReasonDecodeError), dropalerts.ComponentConsumer)
	m.dropped.WithLabelValues("unknown", string(dropalerts.ReasonTooLarge), dropalerts.ComponentConsumer)
	m.retries.WithLabelValues(sink)
	for _, k := range []string{"retryable", "unavailable", "permanent"} {
		m.sinkErrors.WithLabelValues(sink, k)
	}
	return m
}
