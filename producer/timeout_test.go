package producer_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDeliveryTimeoutFailsRecordsInFlight: a broker that went away with a produce
// request in flight, unanswered, does not hold records past
// DeliveryTimeout. kgo used to refuse to fail an idempotent record whose request was
// written, so a load generator sat 14 minutes on a stopped broker.
func TestDeliveryTimeoutFailsRecordsInFlight(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.spans", "spanpipe.drops")
	hold := holdProduce(c)
	cfg := producer.DefaultConfig()
	cfg.Brokers, cfg.ServiceName = c.ListenAddrs(), "timeout-test"
	cfg.DeliveryTimeout = 2 * time.Second
	cfg.DropReportInterval = time.Hour
	var failed atomic.Int64
	p, err := producer.New(cfg, producer.WithOnDrop(func(d producer.Drop) { failed.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	sp := p.StartSpan(producer.SpanOptions{Name: "run", Type: schema.AgentRun})
	sp.End(producer.EndOptions{})
	began := time.Now()
	kafkatest.Eventually(t, 30*time.Second, "both events failed", func() bool { return failed.Load() == 2 })
	// Failed at the first retry after DeliveryTimeout. (A request the broker keeps
	// open without answering fails only when it times out: 20 s with kgo's defaults.)
	t.Logf("failed after %s", time.Since(began).Round(time.Millisecond))
	close(hold)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = p.Close(ctx)
}

// TestCloseEndsEmitWaitingForRoom: under the block policy an Emit waiting for room
// does not hold Close for BlockTimeout; it returns at once, its event counted as
// lost. SIGTERM to `spanpipe produce` on a stopped broker used to take 127 s.
func TestCloseEndsEmitWaitingForRoom(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.spans", "spanpipe.drops")
	hold := holdProduce(c)
	defer close(hold)
	cfg := producer.DefaultConfig()
	cfg.Brokers, cfg.ServiceName = c.ListenAddrs(), "block-test"
	cfg.MaxBufferedRecords, cfg.OnBufferFull, cfg.BlockTimeout = 4, producer.OnFullBlock, time.Hour
	reg := prometheus.NewRegistry()
	var lost atomic.Int64
	p, err := producer.New(cfg, producer.WithRegisterer(reg), producer.WithOnDrop(func(producer.Drop) {
		// A slow callback: Close must still wait until every drop has been passed to it.
		time.Sleep(20 * time.Millisecond)
		lost.Add(1)
	}))
	if err != nil {
		t.Fatal(err)
	}
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		for range 3 { // 6 events for 4 slots: the fifth waits for room
			p.StartSpan(producer.SpanOptions{Name: "run", Type: schema.AgentRun}).End(producer.EndOptions{})
		}
	}()
	kafkatest.Eventually(t, 10*time.Second, "4 events in the Kafka client", func() bool {
		return gauge(reg, "spanpipe_producer_buffered_records") == 4
	})
	closed := make(chan struct{})
	began := time.Now()
	go func() {
		defer close(closed)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = p.Close(ctx)
	}()
	for _, ch := range []chan struct{}{closed, emitted} {
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Fatal("Close or Emit still waiting 30 s after Close began (BlockTimeout is an hour)")
		}
	}
	if lost.Load() != 6 {
		t.Fatalf("%d of 6 events counted lost", lost.Load())
	}
	t.Logf("Close and the waiting Emit returned after %s", time.Since(began).Round(time.Millisecond))
}

func gauge(g prometheus.Gatherer, name string) float64 {
	mfs, _ := g.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// holdProduce makes c drop the connection of every produce request, unanswered,
// until hold is closed: a broker that goes away with the requests in flight, as
// often as the client comes back.
func holdProduce(c *kfake.Cluster) (hold chan struct{}) {
	hold = make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case <-hold:
			return nil, nil, false
		default:
			c.KeepControl()
			return nil, errors.New("broker gone"), true
		}
	})
	return hold
}
