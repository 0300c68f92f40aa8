package integration

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/producer"
)

// TestBrokerRestart: on a 1-broker cluster of its own, the broker is SIGKILLed while
// spans are produced (SPANPIPE_IT_BROKER_RATE per second) and consumed, stays down for
// at least SPANPIPE_IT_BROKER_DOWN, and is restarted from its data dir; producing goes
// on until SPANPIPE_IT_BROKER_AFTER more records were acknowledged after the restart.
// The producer runs the drop policy with a small buffer (SPANPIPE_IT_PRODUCER_BUFFER
// records): while the broker is down Emit never blocks, the buffered records wait for
// the broker, and what does not fit is dropped and counted. Once the broker is back:
//   - the producer's books balance: emitted = acknowledged + dropped, and nothing that
//     entered its buffer failed (acks=all, idempotent producer: no duplicates either);
//   - every producer-side drop is on the drop topic as a drop event: the events' counts
//     add up to the producer's reported drops, reason by reason;
//   - every acknowledged record is stored, once, at its newest version.
func TestBrokerRestart(t *testing.T) {
	l := ownLauncher(t, 1)
	s := newScenario(t, l.bootstrap, 6)
	rate := float64(envInt("SPANPIPE_IT_BROKER_RATE", 300))
	downFor := envDuration("SPANPIPE_IT_BROKER_DOWN", 10*time.Second)
	buffer := envInt("SPANPIPE_IT_PRODUCER_BUFFER", 300)
	after := int64(envInt("SPANPIPE_IT_BROKER_AFTER", 1500))

	c := s.startConsumer("c0", s.db(0))
	s.waitAssigned(c)

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	var progress, dropped atomic.Int64
	reg := prometheus.NewRegistry()
	sent := func() int64 { return int64(gatherSum(reg, "spanpipe_producer_records_sent_total")) }
	produceCtx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	done := make(chan spanRun, 1)
	go func() {
		done <- s.produceSpans(produceCtx, spanOpts{n: 1 << 30, rate: rate, onFull: producer.OnFullDrop, buffer: buffer,
			progress: &progress, dropped: &dropped, reg: reg})
	}()

	// Kill once the producer is well under way and the consumer has committed some.
	s.eventually(2*time.Minute, "spans produced and some committed", func() bool {
		_, _, committed := s.mustLag()
		return sent() >= int64(4*buffer) && committed > 0
	})
	if err := l.kill(ctx, 1); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	t.Logf("broker killed after %d spans emitted, %d acknowledged", progress.Load(), sent())
	// Down until the producer has dropped (its buffer is full: the policy is at work)
	// and for at least downFor.
	s.eventually(downFor+2*time.Minute, "the producer to drop with the broker down", func() bool {
		return dropped.Load() > 0 && time.Since(killed) >= downFor
	})
	if err := l.restartNode(ctx, 1); err != nil {
		t.Fatalf("restart: %v\n%s", err, l.serverLog(1, 40))
	}
	downtime := time.Since(killed)
	sentAtRestart, droppedAtRestart := sent(), dropped.Load()
	t.Logf("broker back after %s; %d acknowledged, %d dropped so far", downtime.Round(100*time.Millisecond), sentAtRestart, droppedAtRestart)
	// The producer recovers by itself: what it held is delivered, and new spans are
	// acknowledged again.
	s.eventually(3*time.Minute, "the producer to deliver again after the restart", func() bool {
		return sent() > sentAtRestart
	})
	recovered := time.Since(killed) - downtime
	s.eventually(3*time.Minute, "the producer to deliver what it held and new spans", func() bool {
		return sent() >= sentAtRestart+int64(buffer)+after
	})
	stopProducing()

	var r spanRun
	select {
	case r = <-done:
	case <-ctx.Done():
		t.Fatal("producer did not finish")
	}
	if r.closeErr != nil {
		t.Fatalf("producer close: %v", r.closeErr)
	}
	if r.sent+r.droppedTotal() != int64(r.emitted) {
		t.Fatalf("producer: emitted %d, %d acknowledged + %d dropped %v != emitted", r.emitted, r.sent, r.droppedTotal(), r.dropped)
	}
	if r.dropped[dropalerts.ReasonProducerBufferFull] == 0 || r.dropped[dropalerts.ReasonProducerBufferFull] != int64(r.emitDrops) {
		t.Errorf("producer-buffer-full drops %d, Emit returned ErrDropped %d times; want equal and > 0", r.dropped[dropalerts.ReasonProducerBufferFull], r.emitDrops)
	}
	if other := r.droppedTotal() - r.dropped[dropalerts.ReasonProducerBufferFull]; other != 0 {
		t.Errorf("%d records failed after entering the producer's buffer (%v): acks=all and the delivery timeout should carry them over the restart", other, r.dropped)
	}
	if r.maxEmit > time.Second {
		t.Errorf("Emit blocked for %s under the drop policy", r.maxEmit)
	}

	records := s.waitCommitted(5 * time.Minute)
	took := time.Since(start)
	s.stopAll()

	truth := s.readSpansTopic()
	if truth.records != r.sent || records != r.sent || int64(len(truth.spans)) != r.sent {
		t.Fatalf("topic holds %d spans in %d records (end offsets %d); the producer had %d acknowledged (one span each)",
			len(truth.spans), truth.records, records, r.sent)
	}
	view := readStores(t, s.dbs())
	checkStore(t, view, truth)
	if view.rows != view.distinct() {
		t.Errorf("%d rows for %d distinct spans", view.rows, view.distinct())
	}
	drops := s.readDropTopic()
	if len(drops.letters) != 0 || drops.other != 0 {
		t.Errorf("%d dead letters and %d other records on the drop topic, want none", len(drops.letters), drops.other)
	}
	for _, reason := range []dropalerts.Reason{dropalerts.ReasonProducerBufferFull, dropalerts.ReasonProducerSendFailed} {
		if got := drops.count(dropalerts.ComponentProducer, reason); int64(got) != r.dropped[reason] {
			t.Errorf("drop events count %d %s drops, the producer reported %d", got, reason, r.dropped[reason])
		}
	}
	if got := drops.count(dropalerts.ComponentProducer, ""); int64(got) != r.droppedTotal() {
		t.Errorf("drop events count %d producer drops, the producer reported %d", got, r.droppedTotal())
	}
	consumed := c.final().sum("spanpipe_pipeline_records_consumed_total")
	logFigures(t, "spans_emitted", r.emitted, "records_produced", r.sent, "producer_dropped", r.droppedTotal(),
		"drop_event_count", drops.count(dropalerts.ComponentProducer, ""), "drop_events", len(drops.events),
		"stored", view.distinct(), "rows", view.rows, "redelivered", consumed-float64(r.sent),
		"dead_lettered", len(drops.letters), "broker_down", downtime.Round(100*time.Millisecond),
		"first_ack_after_restart", recovered.Round(100*time.Millisecond),
		"max_emit", r.maxEmit.Round(time.Microsecond), "peak_rss_mib", int(c.peakMB()), "duration", took.Round(time.Second))
}
