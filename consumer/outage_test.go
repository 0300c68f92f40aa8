package consumer_test

import (
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/consumer"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
)

// While fetching is paused no fetch response brings a high watermark, yet that is
// when lag grows and an alert on it must fire: the gauge must follow the topic.
func TestLagGaugeGrowsWhileFetchingIsPaused(t *testing.T) {
	defer consumer.SetLagRefreshInterval(50 * time.Millisecond)()
	e := newOutageEnv(t)
	m := e.start()
	p := e.producer()
	first := produceDemo(t, p, 300)
	kafkatest.Eventually(t, 30*time.Second, "fetching paused", m.batcher.Full)
	before := sumMetric(e.reg, "spanpipe_consumer_lag_records")
	more := produceDemo(t, p, 300)
	kafkatest.Eventually(t, 30*time.Second, "lag gauge to count the records produced while paused", func() bool {
		return sumMetric(e.reg, "spanpipe_consumer_lag_records") >= before+float64(more)
	})
	e.sink.down.Store(false)
	e.waitCommitted()
	m.stop()
	if got := e.spans(); got != int64(first+more) {
		t.Fatalf("stored %d spans, emitted %d", got, first+more)
	}
}

// A SIGTERM while the sink is down must not wait forever: the shutdown drain is
// bounded by ShutdownTimeout, and what was not written is redelivered to the next run.
func TestShutdownWithSinkDownIsBoundedAndLosesNothing(t *testing.T) {
	e := newOutageEnv(t)
	e.pipe.MaxBatchSize, e.pipe.MaxBufferSize = 5, 10
	e.kafka.ShutdownTimeout = time.Second
	m := e.start()
	emitted := produceDemo(t, e.producer(), 200)
	kafkatest.Eventually(t, 30*time.Second, "buffer full", m.batcher.Full)
	stopped := make(chan struct{})
	go func() { m.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("consumer did not stop within 30s of cancellation (shutdown_timeout 1s) with the sink down")
	}
	e.sink.down.Store(false)
	m2 := e.run(e.sink, nil)
	e.waitCommitted()
	m2.stop()
	if got := e.spans(); got != int64(emitted) {
		t.Fatalf("stored %d spans after restart, emitted %d", got, emitted)
	}
}
