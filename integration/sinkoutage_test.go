package integration

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestSinkOutageBlocks: the consumer's sink fails every write for
// SPANPIPE_IT_OUTAGE (30s) while SPANPIPE_IT_OUTAGE_SPANS spans are produced, under
// on_retry_exhausted=block. Throughout the outage nothing is committed, the backlog
// (lag) stays in Kafka, the consumer holds at most max_buffer_size records and pauses
// fetching, and its resident set stays flat. Once the sink is back the backlog drains
// with nothing lost and nothing dead-lettered.
//
// Note that block is not the default policy: the default, dead-letter after 4 retries
// (about 7.5 s of backoff), dead-letters batches during an outage this long; that path
// is TestSinkOutageDeadLetters.
func TestSinkOutageBlocks(t *testing.T) {
	s := newScenario(t, sharedBrokers(t), 6)
	outage := envDuration("SPANPIPE_IT_OUTAGE", 30*time.Second)
	spans := envInt("SPANPIPE_IT_OUTAGE_SPANS", 12000)
	const maxBuffer = 3000
	fault := s.faultFile()
	c := s.startConsumer("c0", s.db(0), fault.env(),
		"SPANPIPE_PIPELINE_ON_RETRY_EXHAUSTED=block",
		"SPANPIPE_PIPELINE_MAX_RETRY_DELAY=1s",
		"SPANPIPE_PIPELINE_MAX_BATCH_SIZE=500",
		fmt.Sprintf("SPANPIPE_PIPELINE_MAX_BUFFER_SIZE=%d", maxBuffer),
		"SPANPIPE_KAFKA_MAX_POLL_RECORDS=500")
	s.waitAssigned(c)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	// Warm up with the sink working: a baseline of stored spans and of memory.
	warm, err := s.produceDemo(ctx, demoOpts{traces: 100})
	if err != nil {
		t.Fatal(err)
	}
	s.waitCommitted(2 * time.Minute)
	_, _, committed0 := s.mustLag()

	if err := fault.on(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fault.off() })
	down := time.Now()
	run, err := s.produceDemo(ctx, demoOpts{traces: (spans + 5) / 6})
	if err != nil || run.dropped != 0 {
		t.Fatalf("producing during the outage: %v, %d dropped under the block policy", err, run.dropped)
	}
	var pausedAt time.Time
	s.eventually(2*time.Minute, "the consumer to pause fetching with a full buffer", func() bool {
		if c.metrics().sum("spanpipe_consumer_paused_partitions") > 0 {
			pausedAt = time.Now()
			return true
		}
		return false
	})
	if time.Since(down) > outage/2 {
		t.Fatalf("the buffer filled and fetching paused %s into a %s outage: raise SPANPIPE_IT_OUTAGE", time.Since(down).Round(time.Second), outage)
	}

	// The outage: poll the invariants until it ends.
	var maxLag int64
	var maxBuffered, retries, lagMetric float64
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for ; time.Since(down) < outage; <-tick.C {
		s.checkAlive()
		lag, end, committed := s.mustLag()
		if committed != committed0 {
			t.Fatalf("the group committed %d records during the sink outage (from %d to %d): invariant 1", committed-committed0, committed0, committed)
		}
		if want := end - committed0; lag != want {
			t.Fatalf("lag %d, want end %d - committed %d", lag, end, committed0)
		}
		maxLag = max(maxLag, lag)
		m := c.metrics()
		buffered := m.sum("spanpipe_pipeline_buffered_records")
		if buffered > maxBuffer {
			t.Fatalf("%.0f records buffered during the outage, want <= max_buffer_size %d", buffered, maxBuffer)
		}
		maxBuffered = max(maxBuffered, buffered)
		retries = m.sum("spanpipe_sink_retries_total")
		// What the consumer itself reports: updated only by fetches, so it stands
		// still while fetching is paused (reported, not asserted).
		lagMetric = m.sum("spanpipe_consumer_lag_records")
		if m.sum("spanpipe_consumer_paused_partitions") == 0 {
			t.Fatalf("fetching resumed during the outage with %.0f records buffered", buffered)
		}
	}
	up := time.Now()
	if err := fault.off(); err != nil {
		t.Fatal(err)
	}
	if maxLag <= maxBuffer || retries == 0 {
		t.Fatalf("lag peaked at %d records with %.0f retries; want a backlog larger than the %d-record buffer, held by Kafka, and retries", maxLag, retries, maxBuffer)
	}
	// Flat memory: the highest RSS of the last third of the paused outage against the
	// first third.
	third := up.Sub(pausedAt) / 3
	_, firstHi := c.rssBetween(pausedAt, pausedAt.Add(third))
	_, lastHi := c.rssBetween(up.Add(-third), up)
	if tol := max(16, firstHi*0.10); lastHi > firstHi+tol || firstHi == 0 {
		t.Errorf("RSS grew during the outage: highest %.0f MiB in the first third, %.0f MiB in the last (tolerance %.0f MiB)", firstHi, lastHi, tol)
	}

	records := s.waitCommitted(5 * time.Minute)
	drained := time.Since(up)
	s.stopAll()

	produced := warm.sent + run.sent
	truth := s.readSpansTopic()
	if truth.records != produced || records != produced || len(truth.spans) != warm.spans+run.spans {
		t.Fatalf("topic holds %d spans in %d records (end offsets %d); produced %d spans in %d records",
			len(truth.spans), truth.records, records, warm.spans+run.spans, produced)
	}
	view := readStores(t, s.dbs())
	checkStore(t, view, truth)
	drops := s.readDropTopic()
	if n := len(drops.letters) + len(drops.events); n != 0 {
		t.Errorf("%d records on the drop topic under the block policy, want none", n)
	}
	consumed := c.final().sum("spanpipe_pipeline_records_consumed_total")
	logFigures(t, "records_produced", produced, "during_outage", run.sent, "stored", view.distinct(), "rows", view.rows,
		"redelivered", consumed-float64(produced), "dead_lettered", len(drops.letters),
		"outage", outage, "lag_peak", maxLag, "lag_metric_at_end", lagMetric, "buffered_peak", maxBuffered, "retries", retries,
		"rss_first_third_mib", int(firstHi), "rss_last_third_mib", int(lastHi), "peak_rss_mib", int(c.peakMB()),
		"drain", drained.Round(time.Second))
}

// TestSinkOutageDeadLetters: with on_retry_exhausted=dead-letter and a short retry
// window (2 retries, 200ms then 400ms), spans are produced in three phases: sink up,
// sink down, sink up again, each phase committed before the next begins. Exactly the
// records of the outage phase are dead letters (original bytes, reason
// retry-exhausted, the attempt count, the source offset); every other record is
// stored; no record is both, and the drop events and the dropped-records metric count
// exactly the dead letters. One consumer and no rebalance: nothing is redelivered, so
// "both" would be a bug.
func TestSinkOutageDeadLetters(t *testing.T) {
	s := newScenario(t, sharedBrokers(t), 6)
	perPhase := envInt("SPANPIPE_IT_DEADLETTER_SPANS", 3000) / 3
	const retries = 2
	fault := s.faultFile()
	c := s.startConsumer("c0", s.db(0), fault.env(),
		"SPANPIPE_PIPELINE_ON_RETRY_EXHAUSTED=dead-letter",
		"SPANPIPE_PIPELINE_MAX_RETRIES="+strconv.Itoa(retries),
		"SPANPIPE_PIPELINE_RETRY_DELAY=200ms",
		"SPANPIPE_PIPELINE_MAX_RETRY_DELAY=1s",
		"SPANPIPE_PIPELINE_MAX_BATCH_SIZE=500")
	s.waitAssigned(c)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	start := time.Now()

	phase := func(name string) spanRun {
		r := s.produceSpans(ctx, spanOpts{n: perPhase})
		if r.closeErr != nil || r.sent != int64(perPhase) {
			t.Fatalf("%s: %d of %d sent: %v", name, r.sent, perPhase, r.closeErr)
		}
		s.waitCommitted(3 * time.Minute)
		return r
	}
	phase("phase 1 (sink up)")
	ctxE, cancelE := context.WithTimeout(ctx, time.Minute)
	beforeOutage, err := s.endOffsets(ctxE)
	cancelE()
	if err != nil {
		t.Fatal(err)
	}
	if err := fault.on(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fault.off() })
	phase("phase 2 (sink down)")
	ctxE, cancelE = context.WithTimeout(ctx, time.Minute)
	afterOutage, err := s.endOffsets(ctxE)
	cancelE()
	if err != nil {
		t.Fatal(err)
	}
	if err := fault.off(); err != nil {
		t.Fatal(err)
	}
	phase("phase 3 (sink up)")
	took := time.Since(start)
	s.stopAll()

	inOutage := func(p int32, o int64) bool { return o >= beforeOutage[p] && o < afterOutage[p] }
	type at struct {
		p int32
		o int64
	}
	keyAt := make(map[at]spanKey)
	valueAt := make(map[at][]byte)
	readTopic(t, s.brokers, s.topic, func(r *kgo.Record) {
		ev, err := schema.Decode(header(r, schema.HeaderCodec), r.Value)
		if err != nil || ev.Span == nil {
			t.Fatalf("%s[%d]@%d: not a span event: %v", s.topic, r.Partition, r.Offset, err)
		}
		keyAt[at{r.Partition, r.Offset}] = spanKey{ev.Span.TraceID, ev.Span.SpanID}
		valueAt[at{r.Partition, r.Offset}] = r.Value
	})
	view := readStores(t, s.dbs())
	drops := s.readDropTopic()

	lettered := make(map[at]bool)
	for _, l := range drops.letters {
		p, _ := strconv.ParseInt(header(l, dropalerts.HeaderSourcePartition), 10, 32)
		o, err := strconv.ParseInt(header(l, dropalerts.HeaderSourceOffset), 10, 64)
		where := at{int32(p), o}
		switch {
		case err != nil || valueAt[where] == nil:
			t.Errorf("dead letter with no source record on %s: headers %v", s.topic, l.Headers)
		case lettered[where]:
			t.Errorf("%v dead-lettered twice", where)
		case string(l.Value) != string(valueAt[where]):
			t.Errorf("dead letter of %v is not the original record", where)
		case header(l, dropalerts.HeaderReason) != string(dropalerts.ReasonRetryExhausted):
			t.Errorf("dead letter of %v: reason %q, want %s", where, header(l, dropalerts.HeaderReason), dropalerts.ReasonRetryExhausted)
		case header(l, dropalerts.HeaderAttempts) != strconv.Itoa(retries+1):
			t.Errorf("dead letter of %v: attempts %q, want %d", where, header(l, dropalerts.HeaderAttempts), retries+1)
		}
		lettered[where] = true
	}
	// Every record is stored or dead-lettered, never both, and the outage decides which.
	var stored, both, neither, wrong int
	for where, k := range keyAt {
		_, isStored := view.spans[k]
		isLettered := lettered[where]
		switch {
		case isStored && isLettered:
			both++
		case !isStored && !isLettered:
			neither++
		case isLettered != inOutage(where.p, where.o):
			wrong++
		}
		if isStored {
			stored++
		}
	}
	if both+neither+wrong != 0 {
		t.Errorf("of %d records: %d both stored and dead-lettered, %d neither (lost), %d on the wrong side of the outage", len(keyAt), both, neither, wrong)
	}
	if len(keyAt) != 3*perPhase || len(lettered) != perPhase || stored != 2*perPhase || view.rows != int64(stored) {
		t.Errorf("%d records, %d dead-lettered, %d stored in %d rows; want %d, %d, %d, %d", len(keyAt), len(lettered), stored, view.rows, 3*perPhase, perPhase, 2*perPhase, 2*perPhase)
	}
	if got := drops.count(dropalerts.ComponentConsumer, dropalerts.ReasonRetryExhausted); got != perPhase || len(drops.events) == 0 {
		t.Errorf("drop events count %d retry-exhausted records in %d events, want %d", got, len(drops.events), perPhase)
	}
	fin := c.final()
	if got := fin.sum("spanpipe_dropped_records_total", "reason=retry-exhausted"); got != float64(perPhase) {
		t.Errorf("spanpipe_dropped_records_total{reason=retry-exhausted} = %.0f, want %d", got, perPhase)
	}
	logFigures(t, "records_produced", len(keyAt), "stored", stored, "rows", view.rows,
		"redelivered", fin.sum("spanpipe_pipeline_records_consumed_total")-float64(len(keyAt)),
		"dead_lettered", len(drops.letters), "drop_events", len(drops.events),
		"retries", fin.sum("spanpipe_sink_retries_total"), "peak_rss_mib", int(c.peakMB()),
		"duration", took.Round(time.Second))
}
