package consumer_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/consumer"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
)

// totalLag sums spanpipe_consumer_lag_records over partitions.
func totalLag(g prometheus.Gatherer) float64 {
	mfs, _ := g.Gather()
	var s float64
	for _, mf := range mfs {
		if mf.GetName() == "spanpipe_consumer_lag_records" {
			for _, m := range mf.GetMetric() {
				s += m.GetGauge().GetValue()
			}
		}
	}
	return s
}

// While fetching is paused no fetch response brings a high watermark, yet that is
// when lag grows and an alert on it must fire: the gauge must follow the topic.
func TestLagGaugeGrowsWhileFetchingIsPaused(t *testing.T) {
	defer consumer.SetLagRefreshInterval(50 * time.Millisecond)()
	e, f := newOutageEnv(t)
	c, stop := e.run()
	p := e.producer()
	first := produceDemo(t, p, 300)
	kafkatest.Eventually(t, 30*time.Second, "fetching paused", func() bool {
		return c.Pipeline.Full()
	})
	before := totalLag(e.reg)
	more := produceDemo(t, p, 300)
	kafkatest.Eventually(t, 30*time.Second, "lag gauge to count the records produced while paused", func() bool {
		return totalLag(e.reg) >= before+float64(more)
	})
	f.down.Store(false)
	e.waitCommitted(c)
	stop()
	if got := e.spans(); got != int64(first+more) {
		t.Fatalf("stored %d spans, emitted %d", got, first+more)
	}
}

// A SIGTERM while the sink is down must not wait forever: the shutdown drain is
// bounded by ShutdownTimeout even when the writer's queue is full, and what was not
// written is redelivered to the next run.
func TestShutdownWithSinkDownIsBoundedAndLosesNothing(t *testing.T) {
	e, f := newOutageEnv(t)
	// Tiny batches fill the writer's queue (max_buffer_size / max_batch_size + 2 units).
	e.cfg.Pipeline.MaxBatchSize, e.cfg.Pipeline.MaxBufferSize = 5, 10
	e.cfg.Kafka.ShutdownTimeout = time.Second
	c, stop := e.run()
	emitted := produceDemo(t, e.producer(), 200)
	kafkatest.Eventually(t, 30*time.Second, "buffer full", c.Pipeline.Full)
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("consumer did not stop within 30s of cancellation (shutdown_timeout 1s) with the sink down")
	}
	f.down.Store(false)
	c2, stop2 := e.run()
	e.waitCommitted(c2)
	stop2()
	if got := e.spans(); got != int64(emitted) {
		t.Fatalf("stored %d spans after restart, emitted %d", got, emitted)
	}
}
