package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/internal/demo"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	spansTopic = "spanpipe.spans"
	dropsTopic = "spanpipe.drops"
)

type env struct {
	t       *testing.T
	brokers []string
	cfg     app.Config
	sink    *duckdb.Writer
	reg     *prometheus.Registry
	fault   func(context.Context, *pipeline.Batch) error // see app.WithFault
}

func newEnv(t *testing.T) *env {
	c := kafkatest.Cluster(t, 4, spansTopic, dropsTopic)
	cfg := app.DefaultConfig()
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.Kafka.Group = "test-" + strings.ReplaceAll(t.Name(), "/", "-")
	cfg.Kafka.ShutdownTimeout = 20 * time.Second
	cfg.Pipeline.MaxBatchWait = 100 * time.Millisecond
	cfg.Pipeline.MaxBatchSize = 200
	cfg.Pipeline.MaxBufferSize = 1000
	cfg.Sink.DuckDB.Path = t.TempDir() + "/spans.duckdb"
	sink, err := duckdb.Open(t.Context(), cfg.Sink.DuckDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	return &env{t: t, brokers: c.ListenAddrs(), cfg: cfg, sink: sink, reg: prometheus.NewRegistry()}
}

// run starts a consumer process (in this test process) and returns a stop function
// that cancels it and waits for its clean shutdown.
func (e *env) run() (c *app.Consumer, stop func()) {
	e.t.Helper()
	c, err := app.NewConsumer(e.cfg, app.WithFault(e.sink, e.fault), testLogger(e.t), e.reg, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			e.t.Errorf("consumer: %v", err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	e.t.Cleanup(stop)
	return c, stop
}

func (e *env) producer() *producer.Producer {
	e.t.Helper()
	cfg := producer.DefaultConfig()
	cfg.Brokers = e.brokers
	cfg.ServiceName = "e2e"
	cfg.OnBufferFull = producer.OnFullBlock
	cfg.BlockTimeout = time.Minute
	p, err := producer.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func (e *env) spans() int64 {
	n, err := e.sink.CountSpans(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// waitCommitted waits until the group's committed offsets reach the end of the spans
// topic: everything is durably handled.
func (e *env) waitCommitted(c *app.Consumer) {
	e.t.Helper()
	cl := kafkatest.Client(e.t, e.brokers)
	kafkatest.Eventually(e.t, 60*time.Second, "committed offsets to reach the end of the topic", func() bool {
		return lag(e.t, cl, e.cfg.Kafka.Group) == 0
	})
}

func produceDemo(t *testing.T, p *producer.Producer, traces int) int {
	g := demo.New(p, demo.Options{MinPayload: 100, MaxPayload: 3000, Seed: 7})
	n := 0
	for range traces {
		n += g.Trace()
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEndToEndEveryStrategy(t *testing.T) {
	for _, st := range []pipeline.Strategy{pipeline.Auto, pipeline.BatchWithUpdates, pipeline.InsertOnly, pipeline.Realtime} {
		t.Run(string(st), func(t *testing.T) {
			e := newEnv(t)
			e.cfg.Pipeline.Strategy = st
			c, stop := e.run()
			emitted := produceDemo(t, e.producer(), 30)
			e.waitCommitted(c)
			stop()
			if got := e.spans(); got != int64(emitted) {
				t.Fatalf("stored %d spans, emitted %d", got, emitted)
			}
			assertAllEnded(t, e)
		})
	}
}

func assertAllEnded(t *testing.T, e *env) {
	t.Helper()
	db := e.sink.DB()
	var running, noService int64
	if err := db.QueryRow(`SELECT count(*) FILTER (WHERE ended_at IS NULL AND NOT is_event), count(*) FILTER (WHERE service_name IS DISTINCT FROM 'e2e') FROM spans`).Scan(&running, &noService); err != nil {
		t.Fatal(err)
	}
	if running != 0 || noService != 0 {
		t.Errorf("%d spans stored as running, %d without the service name; want 0 and 0", running, noService)
	}
}

func TestPoisonRecordsAreDroppedAndPartitionFlows(t *testing.T) {
	e := newEnv(t)
	c, stop := e.run()
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
	e.waitCommitted(c)
	stop()
	if got := e.spans(); got != int64(len(poison)) {
		t.Errorf("stored %d good spans, want %d", got, len(poison))
	}
	// Every poison record is on the drop topic with its payload, plus one drop event each.
	// A drop event per reason and partition: 2 here (decode-error, too-large).
	got := kafkatest.ReadAll(t, e.brokers, dropsTopic, len(poison)+2, 20*time.Second)
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
	if events == 0 || dropCount != len(poison) {
		t.Errorf("%d drop events counting %d records, want them to count %d", events, dropCount, len(poison))
	}
	if v := testutil.ToFloat64(dropped(e.reg, "unknown", "decode-error")); v != 4 {
		t.Errorf("spanpipe_dropped_records_total{reason=decode-error} = %v, want 4", v)
	}
}

func TestCancelledMidBatchThenRestartedStoresEverySpanOnce(t *testing.T) {
	e := newEnv(t)
	emitted := produceDemo(t, e.producer(), 300)
	// First run: stop as soon as some batches are in, with more still buffered.
	c, stop := e.run()
	kafkatest.Eventually(t, 60*time.Second, "first spans stored", func() bool { return e.spans() > 0 })
	stop()
	first := e.spans()
	// Second run picks up from the committed offsets; anything redelivered collapses.
	c, stop = e.run()
	e.waitCommitted(c)
	stop()
	var rows, distinct int64
	if err := e.sink.DB().QueryRow(`SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	t.Logf("first run stored %d spans; emitted %d, rows %d, distinct %d", first, emitted, rows, distinct)
	if rows != int64(emitted) || distinct != int64(emitted) {
		t.Fatalf("rows %d, distinct %d, want both = emitted %d", rows, distinct, emitted)
	}
	assertAllEnded(t, e)
}

func TestRedeliveryAndReverseOrderKeepNewestSnapshot(t *testing.T) {
	e := newEnv(t)
	c, stop := e.run()
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
	e.waitCommitted(c)
	// Across batches too: older snapshots and a duplicate arrive after the row is stored.
	if err := raw.ProduceSync(t.Context(), snap(1, schema.SpanStarted, "start"), snap(3, schema.SpanEnded, "final"), snap(2, schema.SpanUpdated, "mid")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.waitCommitted(c)
	stop()
	got, err := e.sink.Span(t.Context(), tr, sp)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 3 || got.Name != "final" || got.EndTime.IsZero() || e.spans() != 1 {
		t.Fatalf("stored version %d name %q ended %v (%d rows); want version 3 \"final\" ended, 1 row", got.Version, got.Name, !got.EndTime.IsZero(), e.spans())
	}
}

// flaky fails every write while down is set.
type flaky struct {
	down  atomic.Bool
	fails atomic.Int64
}

func (f *flaky) inject(context.Context, *pipeline.Batch) error {
	if f.down.Load() {
		f.fails.Add(1)
		return errors.New("injected: sink unavailable")
	}
	return nil
}

// newOutageEnv is an env whose sink is down (until f.down is cleared) under the block
// policy with fast retries.
func newOutageEnv(t *testing.T) (*env, *flaky) {
	f := &flaky{}
	f.down.Store(true)
	e := newEnv(t)
	e.fault = f.inject
	e.cfg.Pipeline.OnRetryExhausted = pipeline.OnExhaustedBlock
	e.cfg.Pipeline.RetryDelay = 10 * time.Millisecond
	e.cfg.Pipeline.MaxRetryDelay = 50 * time.Millisecond
	return e, f
}

func TestSinkOutageThenRecoveryLosesNothingAndBoundsMemory(t *testing.T) {
	e, f := newOutageEnv(t)
	c, stop := e.run()
	emitted := produceDemo(t, e.producer(), 400)
	// While the sink is down the consumer fills its buffer, then pauses fetching.
	kafkatest.Eventually(t, 30*time.Second, "fetching paused", func() bool {
		return testutil.ToFloat64(gauge(e.reg, "spanpipe_consumer_paused_partitions")) > 0
	})
	maxBuffered := 0
	for range 20 {
		maxBuffered = max(maxBuffered, c.Pipeline.Buffered())
		time.Sleep(10 * time.Millisecond)
	}
	// Bounded: at most the limit plus one partition's share of one poll.
	if limit := e.cfg.Pipeline.MaxBufferSize + e.cfg.Pipeline.MaxBatchSize; maxBuffered > limit {
		t.Errorf("buffered %d records while the sink was down, limit %d", maxBuffered, limit)
	}
	if e.spans() != 0 {
		t.Fatalf("spans stored while the sink was down")
	}
	f.down.Store(false)
	e.waitCommitted(c)
	stop()
	if got := e.spans(); got != int64(emitted) {
		t.Fatalf("stored %d spans after recovery, emitted %d", got, emitted)
	}
	if v := sumDropped(e.reg); v != 0 {
		t.Fatalf("%v records dropped under the block policy, want 0", v)
	}
	t.Logf("%d failed writes during the outage, peak buffer %d records", f.fails.Load(), maxBuffered)
}

func TestSinkThatKeepsFailingIsDeadLetteredAndOffsetsMoveOn(t *testing.T) {
	f := &flaky{}
	f.down.Store(true)
	e := newEnv(t)
	e.fault = f.inject
	e.cfg.Pipeline.RetryDelay = 5 * time.Millisecond
	e.cfg.Pipeline.MaxRetries = 2
	c, stop := e.run()
	raw := kafkatest.Client(t, e.brokers, kgo.DefaultProduceTopic(spansTopic))
	const n = 50
	var recs []*kgo.Record
	for i := range n {
		b, _ := schema.Encode(nil, &schema.Event{Type: schema.SpanEnded, Span: &schema.Span{
			TraceID: fmt.Sprintf("%032x", i), SpanID: "0000000000000001", Name: "s", Type: schema.ToolCall,
			StartTime: time.Now(), EndTime: time.Now(), Version: 1}})
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("%032x", i)), Value: b})
	}
	if err := raw.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.waitCommitted(c)
	stop()
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

func hdr(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}
