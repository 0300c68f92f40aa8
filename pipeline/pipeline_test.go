package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fakeSink records batches and fails the first `fail` writes.
type fakeSink struct {
	mu      sync.Mutex
	caps    pipeline.Capabilities
	fail    int
	err     error
	calls   []time.Time
	batches []*pipeline.Batch
}

func (s *fakeSink) Name() string                        { return "fake" }
func (s *fakeSink) Capabilities() pipeline.Capabilities { return s.caps }
func (s *fakeSink) Write(_ context.Context, b *pipeline.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, time.Now())
	if s.fail != 0 {
		if s.fail > 0 {
			s.fail--
		}
		if s.err != nil {
			return s.err
		}
		return errors.New("sink down")
	}
	s.batches = append(s.batches, b)
	return nil
}

type published struct {
	ev      dropalerts.Event
	letters []dropalerts.DeadLetter
}

type fakeDrops struct {
	mu   sync.Mutex
	fail int
	got  []published
}

func (d *fakeDrops) Publish(_ context.Context, ev dropalerts.Event, letters []dropalerts.DeadLetter) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail > 0 {
		d.fail--
		return errors.New("drop topic down")
	}
	d.got = append(d.got, published{ev, letters})
	return nil
}

func allCaps() pipeline.Capabilities {
	return pipeline.Capabilities{
		Preferred: pipeline.BatchWithUpdates,
		Supported: []pipeline.Strategy{pipeline.Realtime, pipeline.BatchWithUpdates, pipeline.InsertOnly},
		Signals:   schema.AllSignals,
	}
}

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func spanRecord(t testing.TB, offset int64, typ schema.EventType, trace, span string, version uint64) *kgo.Record {
	t.Helper()
	s := &schema.Span{TraceID: trace, SpanID: span, Name: "step", Type: schema.ToolCall, StartTime: t0, Version: version}
	if typ == schema.SpanEnded {
		s.EndTime = t0.Add(time.Second)
	}
	b, err := schema.Encode(nil, &schema.Event{Type: typ, Span: s})
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: "spans", Partition: 0, Offset: offset, Key: []byte(trace), Value: b}
}

func rawRecord(offset int64, v []byte) *kgo.Record {
	return &kgo.Record{Topic: "spans", Partition: 0, Offset: offset, Value: v}
}

// pl is a batcher and a writer wired the way the consumer wires them.
type pl struct {
	*pipeline.Batcher
	w *pipeline.Writer
}

func (p pl) Add(rec *kgo.Record) *pipeline.Unit { return p.Batcher.Add(rec, p.Decode(rec)) }

func (p pl) Write(ctx context.Context, u *pipeline.Unit) error {
	err := p.w.Write(ctx, u)
	if err == nil {
		p.Done(u)
	}
	return err
}

func newPipeline(t testing.TB, cfg pipeline.Config, sink pipeline.Sink, drops *fakeDrops, opts ...pipeline.Option) pl {
	t.Helper()
	b, err := pipeline.NewBatcher(cfg, sink.Capabilities(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pipeline.NewWriter(cfg, sink, drops, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return pl{b, w}
}

const trace = "0123456789abcdef0123456789abcdef"

func TestStrategyRouting(t *testing.T) {
	tests := []struct {
		name      string
		strategy  pipeline.Strategy
		wantSpans map[string]uint64 // span id -> stored version
	}{
		{"batch-with-updates keeps newest of every span, running ones too", pipeline.BatchWithUpdates,
			map[string]uint64{"00000000000000a1": 3, "00000000000000a2": 2}},
		{"insert-only keeps only ended spans", pipeline.InsertOnly,
			map[string]uint64{"00000000000000a1": 3}},
		{"auto is the sink's preferred", pipeline.Auto,
			map[string]uint64{"00000000000000a1": 3, "00000000000000a2": 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &fakeSink{caps: allCaps()}
			cfg := pipeline.DefaultConfig()
			cfg.Strategy = tt.strategy
			p := newPipeline(t, cfg, sink, &fakeDrops{})
			recs := []*kgo.Record{
				spanRecord(t, 0, schema.SpanStarted, trace, "00000000000000a1", 1),
				spanRecord(t, 1, schema.SpanUpdated, trace, "00000000000000a1", 2),
				spanRecord(t, 2, schema.SpanStarted, trace, "00000000000000a2", 1),
				spanRecord(t, 3, schema.SpanEnded, trace, "00000000000000a1", 3),
				spanRecord(t, 4, schema.SpanUpdated, trace, "00000000000000a2", 2),
				spanRecord(t, 5, schema.SpanUpdated, trace, "00000000000000a1", 2), // late, older
			}
			for _, r := range recs {
				if u := p.Add(r); u != nil {
					t.Fatalf("sealed early at offset %d", r.Offset)
				}
			}
			u := p.Seal(pipeline.TriggerShutdown)
			if err := p.Write(t.Context(), u); err != nil {
				t.Fatal(err)
			}
			got := map[string]uint64{}
			for _, s := range sink.batches[0].Spans {
				got[s.SpanID] = s.Version
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.wantSpans) {
				t.Errorf("stored %v, want %v", got, tt.wantSpans)
			}
			if u.Records() != 6 {
				t.Errorf("unit of %d records, want 6 (every record handled, skipped ones included)", u.Records())
			}
			if p.Buffered() != 0 {
				t.Errorf("buffered %d after write, want 0", p.Buffered())
			}
		})
	}
}

func TestResolveFallsBackToPreferred(t *testing.T) {
	caps := pipeline.Capabilities{Preferred: pipeline.InsertOnly, Supported: []pipeline.Strategy{pipeline.InsertOnly}}
	tests := []struct {
		req      pipeline.Strategy
		want     pipeline.Strategy
		fallback bool
	}{
		{pipeline.Auto, pipeline.InsertOnly, false},
		{pipeline.InsertOnly, pipeline.InsertOnly, false},
		{pipeline.BatchWithUpdates, pipeline.InsertOnly, true},
		{pipeline.Realtime, pipeline.InsertOnly, true},
	}
	for _, tt := range tests {
		got, fb := pipeline.Resolve(tt.req, caps)
		if got != tt.want || fb != tt.fallback {
			t.Errorf("Resolve(%s) = %s, %v; want %s, %v", tt.req, got, fb, tt.want, tt.fallback)
		}
	}
}

func TestFlushTriggers(t *testing.T) {
	t.Run("size", func(t *testing.T) {
		cfg := pipeline.DefaultConfig()
		cfg.MaxBatchSize = 3
		p := newPipeline(t, cfg, &fakeSink{caps: allCaps()}, &fakeDrops{})
		var sealed []int64
		for i := range int64(7) {
			if u := p.Add(spanRecord(t, i, schema.SpanEnded, trace, fmt.Sprintf("%016x", i+1), 1)); u != nil {
				sealed = append(sealed, i)
			}
		}
		if fmt.Sprint(sealed) != "[2 5]" {
			t.Errorf("sealed after offsets %v, want [2 5]", sealed)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		cfg := pipeline.DefaultConfig()
		rec := spanRecord(t, 0, schema.SpanEnded, trace, "0000000000000001", 1)
		cfg.MaxBatchBytes = int64(len(rec.Value)) * 2
		p := newPipeline(t, cfg, &fakeSink{caps: allCaps()}, &fakeDrops{})
		if p.Add(rec) != nil {
			t.Fatal("sealed after one record")
		}
		if u := p.Add(spanRecord(t, 1, schema.SpanEnded, trace, "0000000000000002", 1)); u == nil {
			t.Fatal("not sealed at the byte limit")
		}
	})
	t.Run("realtime", func(t *testing.T) {
		cfg := pipeline.DefaultConfig()
		cfg.Strategy = pipeline.Realtime
		p := newPipeline(t, cfg, &fakeSink{caps: allCaps()}, &fakeDrops{})
		if u := p.Add(spanRecord(t, 0, schema.SpanStarted, trace, "0000000000000001", 1)); u == nil || u.Records() != 1 {
			t.Fatal("realtime did not seal a batch of one")
		}
	})
	t.Run("interval", func(t *testing.T) {
		now := t0
		cfg := pipeline.DefaultConfig()
		p := newPipeline(t, cfg, &fakeSink{caps: allCaps()}, &fakeDrops{}, pipeline.WithClock(func() time.Time { return now }))
		if u, at := p.Due(); u != nil || !at.IsZero() {
			t.Fatal("empty buffer due")
		}
		p.Add(spanRecord(t, 0, schema.SpanEnded, trace, "0000000000000001", 1))
		now = now.Add(cfg.MaxBatchWait - time.Millisecond)
		if u, at := p.Due(); u != nil || !at.Equal(t0.Add(cfg.MaxBatchWait)) {
			t.Fatalf("due=%v at=%v before the wait elapsed", u != nil, at)
		}
		now = now.Add(time.Millisecond)
		if u, _ := p.Due(); u == nil || u.Trigger() != pipeline.TriggerInterval {
			t.Fatal("not sealed after MaxBatchWait")
		}
	})
	t.Run("pressure", func(t *testing.T) {
		cfg := pipeline.DefaultConfig()
		cfg.MaxBatchSize, cfg.MaxBufferSize = 2, 3
		p := newPipeline(t, cfg, &fakeSink{caps: allCaps()}, &fakeDrops{})
		p.Add(spanRecord(t, 0, schema.SpanEnded, trace, "0000000000000001", 1))
		if u := p.Add(spanRecord(t, 1, schema.SpanEnded, trace, "0000000000000002", 1)); u == nil {
			t.Fatal("size trigger did not fire")
		}
		// The sealed batch is not written yet: it still counts against the buffer.
		if u := p.Add(spanRecord(t, 2, schema.SpanEnded, trace, "0000000000000003", 1)); u == nil {
			t.Fatal("pressure trigger did not fire at MaxBufferSize")
		}
		if !p.Full() {
			t.Fatal("Full() false with MaxBufferSize records held")
		}
	})
	t.Run("pressure by bytes", func(t *testing.T) {
		first := spanRecord(t, 0, schema.SpanEnded, trace, "0000000000000001", 1)
		cfg := pipeline.DefaultConfig()
		// Two records reach the byte bound long before the record bound.
		cfg.MaxBatchBytes = int64(len(first.Value))
		cfg.MaxBufferBytes = int64(2 * len(first.Value))
		p := newPipeline(t, cfg, &fakeSink{caps: allCaps()}, &fakeDrops{})
		if u := p.Add(first); u == nil {
			t.Fatal("byte trigger did not seal the batch")
		}
		if p.Full() {
			t.Fatal("Full() with half of MaxBufferBytes held")
		}
		u := p.Add(spanRecord(t, 1, schema.SpanEnded, trace, "0000000000000002", 1))
		if !p.Full() {
			t.Fatalf("Full() false with MaxBufferBytes held (%d records)", p.Buffered())
		}
		if err := p.Write(t.Context(), u); err != nil {
			t.Fatal(err)
		}
		if p.Full() {
			t.Fatal("still Full() after a batch was written: its bytes were not released")
		}
	})
}

func TestBadRecordsBecomeDrops(t *testing.T) {
	valid := spanRecord(t, 0, schema.SpanEnded, trace, "0000000000000001", 1)
	validBin := binaryRecord(t, valid)
	missingIDs, err := schema.EncodeBinary(nil, &schema.Event{Type: schema.SpanEnded, Span: &schema.Span{Name: "x", Type: schema.ToolCall, StartTime: t0}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		value  []byte
		reason dropalerts.Reason
		codec  string
	}{
		{"unknown codec", valid.Value, dropalerts.ReasonDecodeError, "avro"},
		{"JSON under the binary codec's header", valid.Value, dropalerts.ReasonDecodeError, schema.CodecBinary},
		{"binary under the JSON codec's header", validBin.Value, dropalerts.ReasonDecodeError, schema.CodecJSON},
		{"truncated binary", validBin.Value[:len(validBin.Value)/2], dropalerts.ReasonDecodeError, schema.CodecBinary},
		{"binary missing ids", missingIDs, dropalerts.ReasonDecodeError, schema.CodecBinary},
		{"garbage bytes", []byte{0xff, 0x00, 0x13, 0x37}, dropalerts.ReasonDecodeError, ""},
		{"truncated json", valid.Value[:len(valid.Value)/2], dropalerts.ReasonDecodeError, ""},
		{"unknown schema version", []byte(`{"schemaVersion":99,"type":"span_ended","exportedSpan":{}}`), dropalerts.ReasonDecodeError, ""},
		{"missing ids", []byte(`{"type":"span_ended","exportedSpan":{"name":"x","type":"tool_call","startTime":"2026-01-01T00:00:00Z"}}`), dropalerts.ReasonDecodeError, ""},
		{"5 MB payload", make([]byte, 5<<20), dropalerts.ReasonTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink, drops := &fakeSink{caps: allCaps()}, &fakeDrops{}
			p := newPipeline(t, pipeline.DefaultConfig(), sink, drops)
			bad := rawRecord(10, tt.value)
			if tt.codec != "" {
				bad.Headers = []kgo.RecordHeader{{Key: schema.HeaderCodec, Value: []byte(tt.codec)}}
			}
			p.Add(bad)
			p.Add(spanRecord(t, 11, schema.SpanEnded, trace, "0000000000000002", 1))
			u := p.Seal(pipeline.TriggerShutdown)
			if err := p.Write(t.Context(), u); err != nil {
				t.Fatal(err)
			}
			if len(sink.batches) != 1 || len(sink.batches[0].Spans) != 1 {
				t.Fatalf("the good record was not written: %d batches", len(sink.batches))
			}
			if len(drops.got) != 1 {
				t.Fatalf("%d drop events, want 1", len(drops.got))
			}
			d := drops.got[0]
			if d.ev.Reason != tt.reason || d.ev.Count != 1 || d.ev.Source.FirstOffset != 10 || d.ev.Error == "" {
				t.Errorf("drop event %+v, want reason %s, count 1, offset 10, an error", d.ev, tt.reason)
			}
			if len(d.letters) != 1 || string(d.letters[0].Record.Value) != string(tt.value) {
				t.Errorf("dead letter does not carry the original payload")
			}
			if u.Records() != 2 {
				t.Errorf("unit of %d records, want 2: the partition must move past poison", u.Records())
			}
		})
	}
}

// binaryRecord is rec (a JSON record) written with the binary codec.
func binaryRecord(t testing.TB, rec *kgo.Record) *kgo.Record {
	t.Helper()
	ev, err := schema.Decode(schema.CodecJSON, rec.Value)
	if err != nil {
		t.Fatal(err)
	}
	b, err := schema.EncodeBinary(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	c := *rec
	c.Value, c.Headers = b, []kgo.RecordHeader{{Key: schema.HeaderCodec, Value: []byte(schema.CodecBinary)}}
	return &c
}

// TestBinaryCodecStoresTheSameSpans: records of either codec, mixed on one
// partition, reach the sink as the same spans.
func TestBinaryCodecStoresTheSameSpans(t *testing.T) {
	sink, drops := &fakeSink{caps: allCaps()}, &fakeDrops{}
	p := newPipeline(t, pipeline.DefaultConfig(), sink, drops)
	j := spanRecord(t, 0, schema.SpanEnded, trace, "0000000000000001", 1)
	p.Add(j)
	p.Add(binaryRecord(t, spanRecord(t, 1, schema.SpanEnded, trace, "0000000000000002", 1)))
	if err := p.Write(t.Context(), p.Seal(pipeline.TriggerShutdown)); err != nil {
		t.Fatal(err)
	}
	if len(drops.got) != 0 || len(sink.batches) != 1 || len(sink.batches[0].Spans) != 2 {
		t.Fatalf("%d drops, %d batches; want both spans in one batch", len(drops.got), len(sink.batches))
	}
	a, b := *sink.batches[0].Spans[0], *sink.batches[0].Spans[1]
	b.SpanID = a.SpanID
	if a.Name != b.Name || !a.StartTime.Equal(b.StartTime) || !a.EndTime.Equal(b.EndTime) || a.TraceID != b.TraceID ||
		a.Version != b.Version || a.Event != b.Event || a.Type != b.Type {
		t.Errorf("the codecs gave different spans:\njson   %+v\nbinary %+v", a, b)
	}
}

func TestUnsupportedSignal(t *testing.T) {
	caps := allCaps()
	caps.Signals = []schema.Signal{schema.SignalTracing}
	sink, drops := &fakeSink{caps: caps}, &fakeDrops{}
	p := newPipeline(t, pipeline.DefaultConfig(), sink, drops)
	b, _ := schema.Encode(nil, &schema.Event{Type: schema.LogEvent, Log: &schema.Log{LogID: "l1", Timestamp: t0, Level: "info", Message: "m"}})
	p.Add(rawRecord(0, b))
	if err := p.Write(t.Context(), p.Seal(pipeline.TriggerShutdown)); err != nil {
		t.Fatal(err)
	}
	if len(drops.got) != 1 || drops.got[0].ev.Reason != dropalerts.ReasonUnsupportedStorage || drops.got[0].ev.Signal != schema.SignalLog {
		t.Fatalf("got %+v, want one unsupported-storage drop for log", drops.got)
	}
}

func TestRetrySchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &fakeSink{caps: allCaps(), fail: 3}
		p := newPipeline(t, pipeline.DefaultConfig(), sink, &fakeDrops{})
		p.Add(spanRecord(t, 0, schema.SpanEnded, trace, "0000000000000001", 1))
		if err := p.Write(t.Context(), p.Seal(pipeline.TriggerShutdown)); err != nil {
			t.Fatal(err)
		}
		var gaps []time.Duration
		for i := 1; i < len(sink.calls); i++ {
			gaps = append(gaps, sink.calls[i].Sub(sink.calls[i-1]))
		}
		if fmt.Sprint(gaps) != "[500ms 1s 2s]" || len(sink.batches) != 1 {
			t.Errorf("retry gaps %v, %d writes; want [500ms 1s 2s] then success", gaps, len(sink.batches))
		}
	})
}

func TestRetryExhaustedDeadLetters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink, drops := &fakeSink{caps: allCaps(), fail: -1}, &fakeDrops{fail: 2}
		p := newPipeline(t, pipeline.DefaultConfig(), sink, drops)
		for i := range int64(3) {
			p.Add(spanRecord(t, i, schema.SpanEnded, trace, fmt.Sprintf("%016x", i+1), 1))
		}
		start := time.Now()
		if err := p.Write(t.Context(), p.Seal(pipeline.TriggerShutdown)); err != nil {
			t.Fatal(err)
		}
		if len(sink.calls) != 5 {
			t.Errorf("%d attempts, want 5 (1 + maxRetries 4)", len(sink.calls))
		}
		// 0.5+1+2+4 s of retries, then the drop topic failed twice (0.5s, 1s).
		if el := time.Since(start); el != 9*time.Second {
			t.Errorf("took %s, want 9s", el)
		}
		if len(drops.got) != 1 {
			t.Fatalf("%d drop events, want 1", len(drops.got))
		}
		d := drops.got[0]
		if d.ev.Reason != dropalerts.ReasonRetryExhausted || d.ev.Count != 3 || len(d.letters) != 3 || d.letters[0].Attempts != 5 {
			t.Errorf("drop %+v with %d letters, want retry-exhausted x3 with 5 attempts", d.ev, len(d.letters))
		}
	})
}

func TestPermanentErrorSkipsRetries(t *testing.T) {
	sink := &fakeSink{caps: allCaps(), fail: -1, err: pipeline.Permanent(errors.New("column type mismatch"))}
	drops := &fakeDrops{}
	p := newPipeline(t, pipeline.DefaultConfig(), sink, drops)
	p.Add(spanRecord(t, 0, schema.SpanEnded, trace, "0000000000000001", 1))
	if err := p.Write(t.Context(), p.Seal(pipeline.TriggerShutdown)); err != nil {
		t.Fatal(err)
	}
	if len(sink.calls) != 1 || len(drops.got) != 1 || drops.got[0].ev.Reason != dropalerts.ReasonSinkRejected {
		t.Fatalf("%d attempts, drops %+v; want 1 attempt and a sink-rejected drop", len(sink.calls), drops.got)
	}
}

func TestBlockPolicyNeverDeadLetters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink, drops := &fakeSink{caps: allCaps(), fail: 20}, &fakeDrops{}
		cfg := pipeline.DefaultConfig()
		cfg.OnRetryExhausted = pipeline.OnExhaustedBlock
		p := newPipeline(t, cfg, sink, drops)
		p.Add(spanRecord(t, 0, schema.SpanEnded, trace, "0000000000000001", 1))
		if err := p.Write(t.Context(), p.Seal(pipeline.TriggerShutdown)); err != nil {
			t.Fatal(err)
		}
		if len(drops.got) != 0 || len(sink.batches) != 1 {
			t.Fatalf("drops %d, writes %d; want 0 drops and the batch stored after 20 failures", len(drops.got), len(sink.batches))
		}
	})
}

func TestWriteStopsOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink, drops := &fakeSink{caps: allCaps(), fail: -1}, &fakeDrops{}
		p := newPipeline(t, pipeline.DefaultConfig(), sink, drops)
		p.Add(spanRecord(t, 0, schema.SpanEnded, trace, "0000000000000001", 1))
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		if err := p.Write(ctx, p.Seal(pipeline.TriggerShutdown)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Write = %v, want the context error (and no commit)", err)
		}
		if len(drops.got) != 0 {
			t.Fatalf("dead-lettered on shutdown: %+v", drops.got)
		}
	})
}

func TestConfigValidateListsEveryProblem(t *testing.T) {
	cfg := pipeline.Config{Strategy: "fast", MaxBatchSize: 10, MaxBufferSize: 5, OnRetryExhausted: "maybe"}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, key := range []string{"pipeline.strategy", "pipeline.max_batch_bytes", "pipeline.max_batch_wait", "pipeline.max_buffer_size",
		"pipeline.max_record_bytes", "pipeline.retry_delay", "pipeline.on_retry_exhausted"} {
		if !contains(err.Error(), key) {
			t.Errorf("error does not name %s:\n%v", key, err)
		}
	}
	if err := pipeline.DefaultConfig().Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestMergeCoalescesAcrossUnits(t *testing.T) {
	sink := &fakeSink{caps: allCaps()}
	cfg := pipeline.DefaultConfig()
	cfg.MaxBatchSize = 2
	p := newPipeline(t, cfg, sink, &fakeDrops{})
	var units []*pipeline.Unit
	for i, r := range []*kgo.Record{
		spanRecord(t, 0, schema.SpanStarted, trace, "00000000000000a1", 1),
		spanRecord(t, 1, schema.SpanStarted, trace, "00000000000000a2", 1),
		spanRecord(t, 2, schema.SpanEnded, trace, "00000000000000a1", 3),
		rawRecord(3, []byte("poison")),
	} {
		if u := p.Add(r); u != nil {
			units = append(units, u)
		} else if i == 3 {
			t.Fatal("no seal at size 2")
		}
	}
	m := pipeline.Merge(units)
	if m.Records() != 4 || p.Buffered() != 4 {
		t.Fatalf("merged %d records, %d buffered; want 4 and 4", m.Records(), p.Buffered())
	}
	if err := p.Write(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, s := range sink.batches[0].Spans {
		got[s.SpanID] = s.Version
	}
	if fmt.Sprint(got) != "map[00000000000000a1:3 00000000000000a2:1]" || len(sink.batches) != 1 {
		t.Errorf("one write with %v, want a1 at v3 and a2 at v1", got)
	}
	if p.Buffered() != 0 {
		t.Errorf("buffered %d after the merged write, want 0", p.Buffered())
	}
}

// A span_ended without endTime is final whatever its fields say: under insert-only it
// used to be skipped as running, counted as skipped and committed, stored nowhere. It
// is stored, ending at its record's Kafka timestamp (never before it started), and
// the repair is counted.
func TestSpanEndedWithoutEndTimeIsStoredAndRepaired(t *testing.T) {
	tests := []struct {
		name    string
		kafkaTS time.Time
		want    time.Time
	}{
		{"ends at the record's time", t0.Add(5 * time.Second), t0.Add(5 * time.Second)},
		{"never before it started", t0.Add(-time.Hour), t0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &fakeSink{caps: allCaps()}
			cfg := pipeline.DefaultConfig()
			cfg.Strategy = pipeline.InsertOnly
			reg := prometheus.NewRegistry()
			p := newPipeline(t, cfg, sink, &fakeDrops{}, pipeline.WithRegisterer(reg))
			rec := spanRecord(t, 0, schema.SpanStarted, trace, "00000000000000e1", 1)
			b, _ := schema.Encode(nil, &schema.Event{Type: schema.SpanEnded, Span: &schema.Span{
				TraceID: trace, SpanID: "00000000000000e1", Name: "step", Type: schema.ToolCall, StartTime: t0}})
			rec.Value, rec.Timestamp = b, tt.kafkaTS
			p.Add(rec)
			if err := p.Write(t.Context(), p.Seal(pipeline.TriggerShutdown)); err != nil {
				t.Fatal(err)
			}
			if len(sink.batches) != 1 || len(sink.batches[0].Spans) != 1 {
				t.Fatalf("span_ended without endTime not stored under insert-only (%d batches)", len(sink.batches))
			}
			if got := sink.batches[0].Spans[0].EndTime; !got.Equal(tt.want) {
				t.Errorf("stored end time %v, want %v", got, tt.want)
			}
			if v := testutil.ToFloat64(labelled{reg, "spanpipe_pipeline_repaired_records_total", "kind", "missing_end_time"}); v != 1 {
				t.Errorf("spanpipe_pipeline_repaired_records_total{kind=missing_end_time} = %v, want 1", v)
			}
		})
	}
}

// A record whose envelope type is readable names its signal in the drop event even
// when the rest does not decode; only unreadable bytes are "unknown".
func TestDecodeErrorKeepsTheSignalWhenTheTypeIsReadable(t *testing.T) {
	tests := []struct {
		value  string
		signal schema.Signal
	}{
		{`{"type":"log","log":{"logId":""}}`, schema.SignalLog},
		{`{"type":"span_ended","exportedSpan":{"name":"x"}}`, schema.SignalTracing},
		{`{"type":"mystery"}`, "unknown"},
		{"\xde\xad", "unknown"},
	}
	for _, tt := range tests {
		drops := &fakeDrops{}
		p := newPipeline(t, pipeline.DefaultConfig(), &fakeSink{caps: allCaps()}, drops)
		p.Add(rawRecord(0, []byte(tt.value)))
		if err := p.Write(t.Context(), p.Seal(pipeline.TriggerShutdown)); err != nil {
			t.Fatal(err)
		}
		if len(drops.got) != 1 || drops.got[0].ev.Signal != tt.signal || drops.got[0].ev.Reason != dropalerts.ReasonDecodeError {
			t.Errorf("%s: drops %+v, want one decode-error drop for signal %s", tt.value, drops.got, tt.signal)
		}
	}
}

// JSON.stringify of a JavaScript string cut inside an emoji leaves a lone surrogate
// escape: the record is stored (the half replaced by U+FFFD) and the repair counted,
// instead of the span vanishing as a decode error and orphaning its children.
func TestLoneSurrogateIsStoredAndCounted(t *testing.T) {
	sink := &fakeSink{caps: allCaps()}
	drops := &fakeDrops{}
	reg := prometheus.NewRegistry()
	p := newPipeline(t, pipeline.DefaultConfig(), sink, drops, pipeline.WithRegisterer(reg))
	v := `{"type":"span_ended","exportedSpan":{"traceId":"` + trace + `","id":"00000000000000f1","name":"chunk \ud83d","type":"model_chunk",` +
		`"startTime":"2025-03-01T12:00:00Z","endTime":"2025-03-01T12:00:01Z"}}`
	p.Add(rawRecord(0, []byte(v)))
	if err := p.Write(t.Context(), p.Seal(pipeline.TriggerShutdown)); err != nil {
		t.Fatal(err)
	}
	if len(sink.batches) != 1 || len(sink.batches[0].Spans) != 1 {
		t.Fatalf("span with a lone surrogate not stored (%d batches, drops %d)", len(sink.batches), len(drops.got))
	}
	if got := sink.batches[0].Spans[0].Name; got != "chunk \uFFFD" {
		t.Errorf("stored name %q, want the lone surrogate replaced by U+FFFD", got)
	}
	if v := testutil.ToFloat64(labelled{reg, "spanpipe_pipeline_repaired_records_total", "kind", "lone_surrogate"}); v != 1 {
		t.Errorf("spanpipe_pipeline_repaired_records_total{kind=lone_surrogate} = %v, want 1", v)
	}
}

// Under insert-only a span that never ends is skipped like every running snapshot;
// the tracker makes it visible: counted as running, then as never ended once it has
// run longer than the tracker keeps it. A span that ends leaves the tracker.
func TestNeverEndedSpansAreCounted(t *testing.T) {
	now := t0
	cfg := pipeline.DefaultConfig()
	cfg.Strategy = pipeline.InsertOnly
	reg := prometheus.NewRegistry()
	p := newPipeline(t, cfg, &fakeSink{caps: allCaps()}, &fakeDrops{}, pipeline.WithRegisterer(reg), pipeline.WithClock(func() time.Time { return now }))
	p.Add(spanRecord(t, 0, schema.SpanStarted, trace, "00000000000000a1", 1)) // never ends
	p.Add(spanRecord(t, 1, schema.SpanStarted, trace, "00000000000000a2", 1))
	p.Add(spanRecord(t, 2, schema.SpanEnded, trace, "00000000000000a2", 3))
	if v := unlabelled(t, reg, "spanpipe_pipeline_running_spans"); v != 1 {
		t.Errorf("spanpipe_pipeline_running_spans = %v, want 1 (a2 ended)", v)
	}
	now = now.Add(2 * time.Hour)
	p.Add(spanRecord(t, 3, schema.SpanStarted, trace, "00000000000000a3", 1))
	if v := unlabelled(t, reg, "spanpipe_pipeline_spans_never_ended_total"); v != 1 {
		t.Errorf("spanpipe_pipeline_spans_never_ended_total = %v, want 1 (a1, running for 2h)", v)
	}
}

// unlabelled is the value of a metric without labels in reg.
func unlabelled(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestConfigValidateGoMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		limit int64
		want  string // "" = valid
	}{
		{0, ""}, {-1, ""}, {64 << 20, ""}, {1 << 30, ""},
		{-2, "pipeline.go_memory_limit_bytes must be -1 (none), 0 (derived) or a size, got -2"},
		{64<<20 - 1, "pipeline.go_memory_limit_bytes (67108863) must be >= pipeline.max_buffer_bytes (67108864)"},
	} {
		cfg := pipeline.DefaultConfig()
		cfg.GoMemoryLimitBytes = tc.limit
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%d rejected: %v", tc.limit, err)
		case tc.want != "" && (err == nil || !contains(err.Error(), tc.want)):
			t.Errorf("%d: got %v, want an error containing %q", tc.limit, err, tc.want)
		}
	}
}

// max_buffer_size 0 derives the buffer from the sink: smaller for one that stores in
// this process, whose memory adds up with the buffer's; a set size wins.
func TestBufferSizeDerivedFromTheSink(t *testing.T) {
	for _, c := range []struct {
		name      string
		set       int
		inProcess bool
		want      int
	}{
		{"derived, in process", 0, true, 4000},
		{"derived, remote", 0, false, 10000},
		{"set, in process", 2500, true, 2500},
		{"set, remote", 2500, false, 2500},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := pipeline.DefaultConfig()
			cfg.MaxBufferSize = c.set
			caps := pipeline.Capabilities{Preferred: pipeline.InsertOnly, Supported: []pipeline.Strategy{pipeline.InsertOnly}, InProcess: c.inProcess}
			reg := prometheus.NewRegistry()
			b, err := pipeline.NewBatcher(cfg, caps, pipeline.WithRegisterer(reg))
			if err != nil {
				t.Fatal(err)
			}
			if got := b.BufferSize(); got != c.want {
				t.Fatalf("buffer size %d, want %d", got, c.want)
			}
			if got := unlabelled(t, reg, "spanpipe_pipeline_buffer_limit_records"); got != float64(c.want) {
				t.Fatalf("spanpipe_pipeline_buffer_limit_records %v, want %d", got, c.want)
			}
			if got := b.Room(); got != c.want {
				t.Fatalf("room of an empty buffer %d, want %d", got, c.want)
			}
		})
	}
	cfg := pipeline.DefaultConfig()
	cfg.MaxBufferSize = -1
	if err := cfg.Validate(); err == nil || !contains(err.Error(), "pipeline.max_buffer_size") {
		t.Errorf("max_buffer_size -1: got %v, want an error naming the key", err)
	}
}
