package clickhouse

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spanpipe/spanpipe/internal/promx"
)

const sinkName = "clickhouse"

type metrics struct {
	inserts  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	rows     *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		inserts: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_sink_inserts_total",
			Help: "INSERT statements sent by a sink, by table and outcome (ok or error). A batch becomes one insert per table, or more when it is split by rows, bytes or partitions.",
		}, []string{"sink", "table", "outcome"})),
		duration: promx.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "spanpipe_sink_insert_duration_seconds",
			Help:    "Duration of one INSERT, from prepare to the server's acknowledgement, by table.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14), // 5ms .. 41s
		}, []string{"sink", "table"})),
		rows: promx.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "spanpipe_sink_insert_rows",
			Help:    "Rows per INSERT, by table. ClickHouse wants at least about 1000 rows per insert.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10), // 1 .. 262144
		}, []string{"sink", "table"})),
	}
	for _, t := range allTables {
		for _, outcome := range []string{"ok", "error"} {
			m.inserts.WithLabelValues(sinkName, t.name, outcome)
		}
		m.duration.WithLabelValues(sinkName, t.name)
		m.rows.WithLabelValues(sinkName, t.name)
	}
	return m
}
