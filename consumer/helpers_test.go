package consumer_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/internal/promx"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// lag is the group's total lag (end offsets minus committed), -1 if unknown.
func lag(t *testing.T, cl *kgo.Client, group string) int64 {
	lags, err := kadm.NewClient(cl).Lag(context.Background(), group)
	if err != nil {
		return -1
	}
	gl, ok := lags[group]
	if !ok || gl.Error() != nil || len(gl.Lag) == 0 {
		return -1
	}
	return gl.Lag.Total()
}

func dropped(reg prometheus.Registerer, signal, reason string) prometheus.Collector {
	return promx.DroppedRecords(reg).WithLabelValues(signal, reason, "consumer")
}

func sumDropped(g prometheus.Gatherer) float64 {
	mfs, _ := g.Gather()
	var s float64
	for _, mf := range mfs {
		if mf.GetName() == "spanpipe_dropped_records_total" {
			for _, m := range mf.GetMetric() {
				s += m.GetCounter().GetValue()
			}
		}
	}
	return s
}

// gauge finds a registered gauge by name.
func gauge(g prometheus.Gatherer, name string) prometheus.Collector {
	return gathered{g, name}
}

type gathered struct {
	g    prometheus.Gatherer
	name string
}

func (x gathered) Describe(chan<- *prometheus.Desc) {}
func (x gathered) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := x.g.Gather()
	for _, mf := range mfs {
		if mf.GetName() == x.name {
			for _, m := range mf.GetMetric() {
				ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(x.name, "", nil, nil), prometheus.GaugeValue, m.GetGauge().GetValue())
				return
			}
		}
	}
}
