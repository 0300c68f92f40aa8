package integration

import (
	"context"
	"testing"
	"time"
)

// TestConsumerKill9MidBatch: a consumer is SIGKILLed while it holds a batch it has
// consumed but not yet written (so not committed), then restarted on the same DuckDB
// file, as an operator would. Nothing is lost; the records after the last commit are
// delivered again, and their rows collapse on the (trace_id, span_id) key, so the file
// holds every span exactly once at its newest version.
//
// The kill happens while the producer is idle and the consumer has consumed every
// record produced so far, so that the killed process's consumed count is exact and
// the redelivered count (records consumed by both processes - records produced) can be
// asserted, not merely reported.
func TestConsumerKill9MidBatch(t *testing.T) {
	s := newScenario(t, sharedBrokers(t), 6)
	spans := envInt("SPANPIPE_IT_KILL_SPANS", 6000)
	// A long batch wait keeps the tail of phase one buffered until the kill.
	c1 := s.startConsumer("c0-first", s.db(0), "SPANPIPE_PIPELINE_MAX_BATCH_WAIT=60s", "SPANPIPE_PIPELINE_MAX_BATCH_SIZE=1000")
	s.waitAssigned(c1)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	traces := (spans + 5) / 6
	a, err := s.produceDemo(ctx, demoOpts{traces: traces / 2, rate: float64(traces) / 10})
	if err != nil || a.dropped != 0 {
		t.Fatalf("phase one: %v, %d dropped under the block policy", err, a.dropped)
	}

	// Mid-batch: every record of phase one consumed, some of it still held unwritten.
	// Fewer than max_batch_size buffered means only the open batch, which nothing
	// seals for a minute: the counts cannot move between this scrape and the kill. A
	// tail that happens to be empty (flushed by size) gets one more trace.
	var consumed1, buffered float64
	extra := 0
	s.eventually(2*time.Minute, "the consumer to consume phase one and hold a partial batch", func() bool {
		m := c1.metrics()
		consumed1 = m.sum("spanpipe_pipeline_records_consumed_total")
		buffered = m.sum("spanpipe_pipeline_buffered_records")
		if consumed1 == float64(a.sent) && buffered == 0 {
			r, err := s.produceDemo(ctx, demoOpts{traces: 1})
			if err != nil {
				t.Fatal(err)
			}
			a.sent += r.sent
			a.spans += r.spans
			extra++
		}
		return consumed1 == float64(a.sent) && buffered > 0 && buffered < 1000
	})
	c1.kill()
	_, _, committedAtKill := s.mustLag()
	t.Logf("killed %s with %.0f of %d records consumed, %.0f buffered unwritten, %d committed (extra traces %d)",
		c1.name, consumed1, a.sent, buffered, committedAtKill, extra)
	if committedAtKill == 0 || float64(committedAtKill) > consumed1-buffered {
		t.Fatalf("committed %d at the kill, want 0 < committed <= consumed %.0f - buffered %.0f", committedAtKill, consumed1, buffered)
	}

	// Restart on the same file (DuckDB recovers its WAL), then produce phase two.
	c2 := s.startConsumer("c0-restarted", s.db(0))
	b, err := s.produceDemo(ctx, demoOpts{traces: traces - traces/2, rate: float64(traces) / 10})
	if err != nil || b.dropped != 0 {
		t.Fatalf("phase two: %v, %d dropped under the block policy", err, b.dropped)
	}
	records := s.waitCommitted(5 * time.Minute)
	took := time.Since(start)
	s.stopAll()

	produced := a.sent + b.sent
	truth := s.readSpansTopic()
	if truth.records != produced || records != produced || len(truth.spans) != a.spans+b.spans {
		t.Fatalf("topic holds %d spans in %d records (end offsets %d); produced %d spans in %d records",
			len(truth.spans), truth.records, records, a.spans+b.spans, produced)
	}
	view := readStores(t, s.dbs())
	checkStore(t, view, truth)
	if view.files != 1 || view.rows != view.distinct() {
		t.Errorf("%d files, %d rows for %d distinct spans: redelivered rows did not collapse", view.files, view.rows, view.distinct())
	}
	drops := s.readDropTopic()
	if n := len(drops.letters) + len(drops.events); n != 0 {
		t.Errorf("%d records on the drop topic, want none", n)
	}
	consumed2 := c2.final().sum("spanpipe_pipeline_records_consumed_total")
	// The restarted member starts at the committed offsets: it reads exactly what was
	// not committed, neither less (loss) nor more.
	if want := float64(produced - committedAtKill); consumed2 != want {
		t.Errorf("restarted consumer consumed %.0f records, want produced %d - committed at kill %d = %.0f", consumed2, produced, committedAtKill, want)
	}
	redelivered := consumed1 + consumed2 - float64(produced)
	if want := consumed1 - float64(committedAtKill); redelivered != want {
		t.Errorf("redelivered %.0f records, want consumed before the kill %.0f - committed %d = %.0f", redelivered, consumed1, committedAtKill, want)
	}
	if redelivered < buffered {
		t.Errorf("redelivered %.0f records, want at least the %.0f that were buffered at the kill", redelivered, buffered)
	}
	_, top := peaks(s.all())
	logFigures(t, "records_produced", produced, "spans_produced", a.spans+b.spans, "stored", view.distinct(),
		"rows", view.rows, "records_consumed", consumed1+consumed2, "redelivered", redelivered,
		"buffered_at_kill", buffered, "committed_at_kill", committedAtKill, "dead_lettered", len(drops.letters),
		"peak_rss_mib", int(top), "duration", took.Round(time.Second))
}
