package integration

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// TestClickHouseRestartUnderLoad: ClickHouse is SIGKILLed while the consumer is
// writing, stays unreachable for SPANPIPE_IT_CH_OUTAGE (30s) while
// SPANPIPE_IT_CH_OUTAGE_SPANS more spans arrive, and is then started again on the
// same data, as after a crash or a routine restart. The consumer runs the default
// on_retry_exhausted policy (dead-letter): a store that cannot be reached is not a
// batch the store rejected, so the writer waits with backpressure. Throughout the
// outage the consumer stays up, holds at most max_buffer_size records, the backlog
// stays in Kafka (lag, not loss) and its memory stays flat; afterwards every span is
// stored exactly once (FINAL) and nothing is dead-lettered.
//
// This needs the writer to wait on pipeline.ErrUnavailable (the core change of this
// wave); a writer that retries those errors a bounded number of times dead-letters
// batches here.
func TestClickHouseRestartUnderLoad(t *testing.T) {
	s := newScenario(t, sharedBrokers(t), 6)
	srv := ownClickHouse(t)
	dsn, db := s.database(srv)
	outage := envDuration("SPANPIPE_IT_CH_OUTAGE", 30*time.Second)
	spans := envInt("SPANPIPE_IT_CH_OUTAGE_SPANS", 9000)
	const maxBuffer = 3000
	c := s.startConsumer("c0", dsn,
		"SPANPIPE_PIPELINE_MAX_BATCH_SIZE=500",
		fmt.Sprintf("SPANPIPE_PIPELINE_MAX_BUFFER_SIZE=%d", maxBuffer),
		"SPANPIPE_KAFKA_MAX_POLL_RECORDS=500")
	s.waitAssigned(c)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()

	warm, err := s.produceDemo(ctx, demoOpts{traces: 100})
	if err != nil {
		t.Fatal(err)
	}
	s.waitCommitted(2 * time.Minute)
	written0 := c.metrics().sum("spanpipe_sink_rows_written_total")

	// Under load: produce for about the first half of the outage, and kill
	// ClickHouse once the consumer is writing this run's batches.
	traces := (spans + 5) / 6
	var progress atomic.Int64
	type result struct {
		r   demoRun
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := s.produceDemo(ctx, demoOpts{traces: traces, rate: float64(traces) / (outage.Seconds() / 2), progress: &progress})
		done <- result{r, err}
	}()
	s.eventually(2*time.Minute, "the consumer to write batches of the run", func() bool {
		return c.metrics().sum("spanpipe_sink_rows_written_total") > written0
	})
	if err := srv.local.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	t.Logf("killed ClickHouse with %d of %d traces emitted", progress.Load(), traces)

	var maxLag int64
	var maxBuffered, lastWritten float64
	var pausedAt time.Time
	_, _, committedAtKill := s.mustLag()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for ; time.Since(down) < outage; <-tick.C {
		s.checkAlive()
		lag, _, _ := s.mustLag()
		maxLag = max(maxLag, lag)
		m := c.metrics()
		buffered := m.sum("spanpipe_pipeline_buffered_records")
		if buffered > maxBuffer {
			t.Fatalf("%.0f records buffered during the outage, want <= max_buffer_size %d", buffered, maxBuffer)
		}
		maxBuffered = max(maxBuffered, buffered)
		lastWritten = m.sum("spanpipe_sink_rows_written_total")
		if pausedAt.IsZero() && m.sum("spanpipe_consumer_paused_partitions") > 0 {
			pausedAt = time.Now()
		}
	}
	_, _, committedAtUp := s.mustLag()
	// The outage ends when the restart begins: ClickHouse answers before Start
	// returns, and a retry that lands then resumes fetching the backlog.
	restart := time.Now()
	if err := srv.local.Start(ctx); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	res := <-done
	if res.err != nil || res.r.dropped != 0 {
		t.Fatalf("producing: %v, %d dropped under the block policy", res.err, res.r.dropped)
	}
	if maxLag <= maxBuffer {
		t.Errorf("lag peaked at %d records; want a backlog larger than the %d-record buffer, held by Kafka", maxLag, maxBuffer)
	}
	// Flat memory: the highest RSS of the last third of the outage against the
	// second (the buffer fills in the first).
	third := outage / 3
	_, midHi := c.rssBetween(down.Add(third), down.Add(2*third))
	_, lastHi := c.rssBetween(restart.Add(-third), restart)
	if tol := max(16, midHi*0.10); lastHi > midHi+tol || midHi == 0 {
		t.Errorf("RSS grew during the outage: highest %.0f MiB in the second third, %.0f MiB in the last (tolerance %.0f MiB)", midHi, lastHi, tol)
	}

	records := s.waitCommitted(5 * time.Minute)
	drained := time.Since(up)
	s.stopAll()

	produced := warm.sent + res.r.sent
	truth := s.readSpansTopic()
	if truth.records != produced || records != produced || len(truth.spans) != warm.spans+res.r.spans {
		t.Fatalf("topic holds %d spans in %d records (end offsets %d); produced %d spans in %d records",
			len(truth.spans), truth.records, records, warm.spans+res.r.spans, produced)
	}
	view := readClickHouse(t, srv.conn(t), db)
	checkStore(t, view, truth)
	drops := s.readDropTopic()
	if n := len(drops.letters) + len(drops.events); n != 0 {
		t.Errorf("%d records on the drop topic after a ClickHouse restart, want none (the store was unavailable, it rejected nothing)", n)
	}
	m := c.final()
	logFigures(t, "records_produced", produced, "spans", len(truth.spans), "stored_distinct", view.distinct(),
		"raw_rows", view.rows, "raw_minus_distinct", view.rows-view.distinct(), "dead_lettered", len(drops.letters),
		"outage", outage, "lag_peak", maxLag, "buffered_peak", maxBuffered, "paused", !pausedAt.IsZero(),
		"committed_during_outage", committedAtUp-committedAtKill, "rows_written_during_outage", lastWritten-written0,
		"retries", m.sum("spanpipe_sink_retries_total"),
		"rss_mid_third_mib", int(midHi), "rss_last_third_mib", int(lastHi), "peak_rss_mib", int(c.peakMB()),
		"drain", drained.Round(time.Second))
}
