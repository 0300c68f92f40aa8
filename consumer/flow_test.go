package consumer_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestEveryStrategyStoresEverySpanEnded(t *testing.T) {
	for _, st := range []pipeline.Strategy{pipeline.Auto, pipeline.BatchWithUpdates, pipeline.InsertOnly, pipeline.Realtime} {
		t.Run(string(st), func(t *testing.T) {
			e := newEnv(t)
			e.pipe.Strategy = st
			m := e.start()
			emitted := produceDemo(t, e.producer(), 30)
			e.waitCommitted()
			m.stop()
			if got := e.spans(); got != int64(emitted) {
				t.Fatalf("stored %d spans, emitted %d", got, emitted)
			}
			assertAllEnded(t, e)
		})
	}
}

func assertAllEnded(t *testing.T, e *env) {
	t.Helper()
	e.sink.mu.Lock()
	defer e.sink.mu.Unlock()
	running, noService := 0, 0
	for _, s := range e.sink.spans {
		if s.EndTime.IsZero() && !s.IsEvent {
			running++
		}
		if s.ServiceName != "e2e" {
			noService++
		}
	}
	if running != 0 || noService != 0 {
		t.Errorf("%d spans stored as running, %d without the service name; want 0 and 0", running, noService)
	}
}

func TestPoisonRecordsAreDroppedAndPartitionFlows(t *testing.T) {
	e := newEnv(t)
	m := e.start()
	raw := kafkatest.Client(t, e.brokers, kgo.ProducerBatchMaxBytes(8<<20), kgo.DefaultProduceTopic(spansTopic))
	good := func(span string) []byte {
		b, _ := schema.Encode(nil, &schema.Event{Type: schema.SpanEnded, Span: &schema.Span{
			TraceID: strings.Repeat("ab", 16), SpanID: span, Name: "ok", Type: "my_custom_type",
			StartTime: time.Now(), EndTime: time.Now(), Version: 1}})
		return b
	}
	poison := map[string][]byte{
		"garbage":   {0xde, 0xad, 0xbe, 0xef},
		"truncated": good("0000000000000009")[:40],
		"version":   []byte(`{"schemaVersion":7,"type":"span_ended","exportedSpan":{}}`),
		"no-ids":    []byte(`{"type":"span_ended","exportedSpan":{"name":"x","type":"tool_call","startTime":"2026-01-01T00:00:00Z"}}`),
		"huge":      []byte(`{"type":"log","log":{"logId":"x","message":"` + strings.Repeat("a", 5<<20) + `"}}`),
	}
	var recs []*kgo.Record
	i := 0
	for name, v := range poison {
		// Same key: all on one partition, interleaved with good records.
		recs = append(recs, &kgo.Record{Key: []byte("k"), Value: v, Headers: []kgo.RecordHeader{{Key: "case", Value: []byte(name)}}})
		i++
		recs = append(recs, &kgo.Record{Key: []byte("k"), Value: good(fmt.Sprintf("%016x", i))})
	}
	if err := raw.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.waitCommitted()
	m.stop()
	if got := e.spans(); got != int64(len(poison)) {
		t.Errorf("stored %d good spans, want %d", got, len(poison))
	}
	// Every poison record is on the drop topic with its payload, plus one drop event
	// per reason, signal and partition: decode-error (unknown: garbage), decode-error
	// (tracing: the type was readable, truncated included), too-large (log).
	got := kafkatest.ReadAll(t, e.brokers, dropsTopic, len(poison)+3, 20*time.Second)
	letters := map[string]*kgo.Record{}
	events, dropCount := 0, 0
	for _, r := range got {
		switch hdr(r, dropalerts.HeaderKind) {
		case dropalerts.KindDeadLetter:
			letters[hdr(r, "case")] = r
		case dropalerts.KindDropEvent:
			events++
			ev, err := dropalerts.ParseEvent(r.Value)
			if err != nil || ev.Count == 0 || ev.Source == nil || ev.Error == "" || ev.DeadLetters != ev.Count {
				t.Errorf("bad drop event %s: %v", r.Value, err)
			}
			dropCount += ev.Count
		}
	}
	for name, v := range poison {
		r := letters[name]
		if r == nil {
			t.Errorf("%s: no dead letter on the drop topic", name)
			continue
		}
		want := dropalerts.ReasonDecodeError
		if name == "huge" {
			want = dropalerts.ReasonTooLarge
		}
		if string(r.Value) != string(v) || hdr(r, dropalerts.HeaderReason) != string(want) || hdr(r, dropalerts.HeaderSourceOffset) == "" {
			t.Errorf("%s: dead letter reason=%q offset=%q payload intact=%v; want %s, an offset, the payload",
				name, hdr(r, dropalerts.HeaderReason), hdr(r, dropalerts.HeaderSourceOffset), string(r.Value) == string(v), want)
		}
	}
	if events != 3 || dropCount != len(poison) {
		t.Errorf("%d drop events counting %d records, want 3 counting %d", events, dropCount, len(poison))
	}
	for _, c := range []struct {
		signal, reason string
		want           float64
	}{{"unknown", "decode-error", 1}, {"tracing", "decode-error", 3}, {"log", "too-large", 1}} {
		if v := testutil.ToFloat64(dropped(e.reg, c.signal, c.reason)); v != c.want {
			t.Errorf("spanpipe_dropped_records_total{signal=%s,reason=%s} = %v, want %v", c.signal, c.reason, v, c.want)
		}
	}
}

func TestCancelledMidBatchThenRestartedStoresEverySpanOnce(t *testing.T) {
	e := newEnv(t)
	emitted := produceDemo(t, e.producer(), 300)
	// First run: stop as soon as some batches are in, with more still buffered.
	m := e.start()
	kafkatest.Eventually(t, 60*time.Second, "first spans stored", func() bool { return e.spans() > 0 })
	m.stop()
	first := e.spans()
	// Second run picks up from the committed offsets; anything redelivered collapses.
	m = e.run(e.sink, nil)
	e.waitCommitted()
	m.stop()
	t.Logf("first run stored %d spans; emitted %d, distinct %d", first, emitted, e.spans())
	if e.spans() != int64(emitted) {
		t.Fatalf("distinct spans %d, want emitted %d", e.spans(), emitted)
	}
	assertAllEnded(t, e)
}

func TestRedeliveryAndReverseOrderKeepNewestSnapshot(t *testing.T) {
	e := newEnv(t)
	m := e.start()
	raw := kafkatest.Client(t, e.brokers, kgo.DefaultProduceTopic(spansTopic))
	tr, sp := strings.Repeat("cd", 16), "00000000000000ff"
	snap := func(v uint64, typ schema.EventType, name string) *kgo.Record {
		s := &schema.Span{TraceID: tr, SpanID: sp, Name: name, Type: schema.AgentRun, StartTime: time.Unix(1000, 0), Version: v}
		if typ == schema.SpanEnded {
			s.EndTime = time.Unix(1001, 0)
		}
		b, _ := schema.Encode(nil, &schema.Event{Type: typ, Span: s})
		return &kgo.Record{Key: []byte(tr), Value: b}
	}
	// Newest first, then older ones, then the newest again (a redelivery).
	batch1 := []*kgo.Record{snap(3, schema.SpanEnded, "final"), snap(2, schema.SpanUpdated, "mid"), snap(1, schema.SpanStarted, "start")}
	if err := raw.ProduceSync(t.Context(), batch1...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.waitCommitted()
	if err := raw.ProduceSync(t.Context(), snap(1, schema.SpanStarted, "start"), snap(3, schema.SpanEnded, "final"), snap(2, schema.SpanUpdated, "mid")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.waitCommitted()
	m.stop()
	got := e.sink.span(tr, sp)
	if got == nil || got.Version != 3 || got.Name != "final" || got.EndTime.IsZero() || e.spans() != 1 {
		t.Fatalf("stored %+v (%d rows); want version 3 \"final\" ended, 1 row", got, e.spans())
	}
}

// newOutageEnv is an env whose sink is down (until sink.down is cleared) under the
// block policy with fast retries.
func newOutageEnv(t *testing.T) *env {
	e := newEnv(t)
	e.sink.down.Store(true)
	e.pipe.OnRetryExhausted = pipeline.OnExhaustedBlock
	e.pipe.RetryDelay = 10 * time.Millisecond
	e.pipe.MaxRetryDelay = 50 * time.Millisecond
	return e
}

func TestSinkOutageThenRecoveryLosesNothingAndBoundsMemory(t *testing.T) {
	e := newOutageEnv(t)
	m := e.start()
	emitted := produceDemo(t, e.producer(), 400)
	// While the sink is down the consumer fills its buffer, then pauses fetching.
	kafkatest.Eventually(t, 30*time.Second, "fetching paused", func() bool {
		return sumMetric(e.reg, "spanpipe_consumer_paused_partitions") > 0
	})
	if n := sumMetric(e.reg, "spanpipe_consumer_fetch_pauses_total"); n < 1 {
		t.Errorf("spanpipe_consumer_fetch_pauses_total = %v while paused, want >= 1", n)
	}
	maxBuffered := 0
	for range 20 {
		maxBuffered = max(maxBuffered, m.batcher.Buffered())
		time.Sleep(10 * time.Millisecond)
	}
	// Bounded: at most the limit plus one partition's share of one poll.
	if limit := e.pipe.MaxBufferSize + e.pipe.MaxBatchSize; maxBuffered > limit {
		t.Errorf("buffered %d records while the sink was down, limit %d", maxBuffered, limit)
	}
	if e.spans() != 0 {
		t.Fatalf("spans stored while the sink was down")
	}
	e.sink.down.Store(false)
	e.waitCommitted()
	m.stop()
	if got := e.spans(); got != int64(emitted) {
		t.Fatalf("stored %d spans after recovery, emitted %d", got, emitted)
	}
	if v := sumDropped(e.reg); v != 0 {
		t.Fatalf("%v records dropped under the block policy, want 0", v)
	}
	t.Logf("%d failed writes during the outage, peak buffer %d records", e.sink.fails.Load(), maxBuffered)
}

// polledRecords counts the records the Kafka client hands out to polls.
type polledRecords struct{ n atomic.Int64 }

func (p *polledRecords) OnFetchRecordUnbuffered(_ *kgo.Record, polled bool) {
	if polled {
		p.n.Add(1)
	}
}

// While the sink is down the consumer takes no more records from the client than its
// buffer holds, though a poll may take ten times that: the rest waits in the client
// as fetched bytes, not decoded beside the full buffer.
func TestSinkOutageTakesNoMoreThanTheBufferHolds(t *testing.T) {
	e := newOutageEnv(t)
	var polled polledRecords
	e.kopts = append(e.kopts, kgo.WithHooks(&polled))
	if e.kafka.MaxPollRecords < 5*e.pipe.MaxBufferSize {
		t.Fatalf("max_poll_records %d: the test needs polls larger than the buffer (%d)", e.kafka.MaxPollRecords, e.pipe.MaxBufferSize)
	}
	m := e.start()
	emitted := produceDemo(t, e.producer(), 600)
	if emitted < 3*e.pipe.MaxBufferSize {
		t.Fatalf("emitted %d records: the test needs several buffers' worth", emitted)
	}
	kafkatest.Eventually(t, 30*time.Second, "fetching paused", func() bool {
		return sumMetric(e.reg, "spanpipe_consumer_paused_partitions") > 0
	})
	for range 20 {
		if n := polled.n.Load(); n > int64(e.pipe.MaxBufferSize) {
			t.Fatalf("the consumer took %d records from the client while the sink was down, its buffer holds %d", n, e.pipe.MaxBufferSize)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.sink.down.Store(false)
	e.waitCommitted()
	m.stop()
	if got := e.spans(); got != int64(emitted) {
		t.Fatalf("stored %d spans after recovery, emitted %d", got, emitted)
	}
}

func TestSinkThatKeepsFailingIsDeadLetteredAndOffsetsMoveOn(t *testing.T) {
	e := newEnv(t)
	e.sink.down.Store(true)
	e.pipe.RetryDelay = 5 * time.Millisecond
	e.pipe.MaxRetries = 2
	m := e.start()
	raw := kafkatest.Client(t, e.brokers, kgo.DefaultProduceTopic(spansTopic))
	const n = 50
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("%032x", i)), Value: endedSpan(t, i)})
	}
	if err := raw.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.waitCommitted()
	m.stop()
	got := kafkatest.ReadAll(t, e.brokers, dropsTopic, n, 20*time.Second)
	letters := 0
	for _, r := range got {
		if hdr(r, dropalerts.HeaderKind) == dropalerts.KindDeadLetter {
			letters++
			if hdr(r, dropalerts.HeaderReason) != string(dropalerts.ReasonRetryExhausted) || hdr(r, dropalerts.HeaderAttempts) != "3" {
				t.Errorf("dead letter reason %q attempts %q, want retry-exhausted after 3", hdr(r, dropalerts.HeaderReason), hdr(r, dropalerts.HeaderAttempts))
			}
		}
	}
	if letters != n {
		t.Errorf("%d dead letters, want %d (every record not stored)", letters, n)
	}
	if v := testutil.ToFloat64(dropped(e.reg, "tracing", "retry-exhausted")); v != n {
		t.Errorf("dropped_records_total{retry-exhausted} = %v, want %d", v, n)
	}
}
