package consumer_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/consumer"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A sink that hangs longer than the rebalance timeout while a member joins, under low
// traffic (each record its own interval batch, one still open at the rebalance): the
// member used to give up the flush, mark itself abandoned for good, and from then on
// fetch without ever storing or committing, with a lag gauge (from fetched offsets)
// at 0. It must recover: everything stored and committed once the sink answers, the
// stall visible meanwhile in the lag gauge and the oldest-unwritten age.
func TestSlowSinkAcrossRebalanceRecovers(t *testing.T) {
	defer consumer.SetLagRefreshInterval(50 * time.Millisecond)()
	e := newEnv(t)
	e.kafka.RebalanceTimeout = 2 * time.Second
	e.kafka.SessionTimeout = 6 * time.Second
	e.pipe.MaxBatchWait = 300 * time.Millisecond
	e.pipe.MaxBatchSize, e.pipe.MaxBufferSize = 100, 100
	e.kopts = []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)}
	e.sink.hang.Store(true)
	a := e.start()
	raw := kafkatest.Client(t, e.brokers, kgo.DefaultProduceTopic(spansTopic))
	n := 0
	produce := func() {
		t.Helper()
		if err := raw.ProduceSync(t.Context(), &kgo.Record{Key: []byte(fmt.Sprint(n)), Value: endedSpan(t, n)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		n++
	}
	for range 5 {
		produce()
		time.Sleep(400 * time.Millisecond)
	}
	produce() // open at the rebalance
	bSink := newMemSink()
	b := e.run(bSink, prometheus.NewRegistry())
	// B stores only once A let partitions go, which A does only after giving up the
	// flush its hanging sink cannot make within the rebalance timeout.
	kafkatest.Eventually(t, 60*time.Second, "member B to store what it was given", func() bool {
		produce()
		time.Sleep(100 * time.Millisecond)
		return bSink.count() > 0
	})
	kafkatest.Eventually(t, 30*time.Second, "the stall to show in lag and in the oldest unwritten age", func() bool {
		return sumMetric(e.reg, "spanpipe_consumer_lag_records") > 0 && sumMetric(e.reg, "spanpipe_pipeline_oldest_unwritten_age_seconds") > 1
	})
	b.stop()
	e.sink.hang.Store(false)
	for range 10 {
		produce()
		time.Sleep(50 * time.Millisecond)
	}
	e.waitCommitted()
	// Everything B did not store, A stored after recovering.
	union := map[[2]string]bool{}
	for _, s := range []*memSink{e.sink, bSink} {
		s.mu.Lock()
		for k := range s.spans {
			union[k] = true
		}
		s.mu.Unlock()
	}
	if len(union) != n {
		t.Errorf("members stored %d distinct spans together, produced %d", len(union), n)
	}
	a.stop()
	if v := sumMetric(e.reg, "spanpipe_pipeline_oldest_unwritten_age_seconds"); v != 0 {
		t.Errorf("oldest unwritten age %vs after the drain, want 0", v)
	}
}
