package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/promx"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
)

// rejectingSink refuses (as a permanent error naming the span) every batch holding
// one of the bad span ids, and stores the others.
type rejectingSink struct {
	mu     sync.Mutex
	bad    map[string]bool
	stored map[string]bool
	writes int
}

func (s *rejectingSink) Name() string                        { return "rejecting" }
func (s *rejectingSink) Capabilities() pipeline.Capabilities { return allCaps() }
func (s *rejectingSink) Write(_ context.Context, b *pipeline.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	for _, sp := range b.Spans {
		if s.bad[sp.SpanID] {
			return pipeline.Permanent(fmt.Errorf("span %s: DateTime64 out of range", sp.SpanID))
		}
	}
	for _, sp := range b.Spans {
		s.stored[sp.SpanID] = true
	}
	return nil
}

// A permanent error on a batch is split down to the records the sink refuses: those,
// and only those, are dead-lettered, each with its own error; the rest is stored.
// Never both.
func TestPermanentErrorSplitsDownToTheBadRecords(t *testing.T) {
	bad := map[string]bool{fmt.Sprintf("%016x", 17): true, fmt.Sprintf("%016x", 64): true, fmt.Sprintf("%016x", 65): true}
	sink := &rejectingSink{bad: bad, stored: map[string]bool{}}
	drops := &fakeDrops{}
	reg := prometheus.NewRegistry()
	p := newPipeline(t, pipeline.DefaultConfig(), sink, drops, pipeline.WithRegisterer(reg))
	const n = 101
	for i := range int64(n) {
		p.Add(spanRecord(t, i, schema.SpanEnded, trace, fmt.Sprintf("%016x", i), 1))
	}
	if err := p.Write(t.Context(), p.Seal(pipeline.TriggerShutdown)); err != nil {
		t.Fatal(err)
	}
	var lettered []string
	for _, d := range drops.got {
		if d.ev.Reason != dropalerts.ReasonSinkRejected {
			t.Errorf("drop event reason %s, want sink-rejected", d.ev.Reason)
		}
		for _, l := range d.letters {
			id := fmt.Sprintf("%016x", l.Record.Offset)
			lettered = append(lettered, id)
			if l.Err == nil || !errors.Is(l.Err, pipeline.ErrPermanent) || !contains(l.Err.Error(), id) {
				t.Errorf("dead letter %s carries error %v, want its own rejection", id, l.Err)
			}
			if sink.stored[id] {
				t.Errorf("span %s both stored and dead-lettered", id)
			}
		}
	}
	slices.Sort(lettered)
	if fmt.Sprint(lettered) != fmt.Sprint([]string{fmt.Sprintf("%016x", 17), fmt.Sprintf("%016x", 64), fmt.Sprintf("%016x", 65)}) {
		t.Errorf("dead-lettered %v, want exactly the 3 bad spans", lettered)
	}
	if len(sink.stored) != n-3 {
		t.Errorf("stored %d spans, want %d", len(sink.stored), n-3)
	}
	if v := testutil.ToFloat64(dropped(reg, "tracing", "sink-rejected")); v != 3 {
		t.Errorf("dropped_records_total{sink-rejected} = %v, want 3", v)
	}
	t.Logf("%d writes for %d records with 3 bad", sink.writes, n)
}

// An Unavailable error is retried with capped backoff for as long as it lasts, under
// the dead-letter policy too: never retry-exhausted, never dead-lettered.
func TestUnavailableIsRetriedForeverWithCappedBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &fakeSink{caps: allCaps(), fail: 40, err: pipeline.Unavailable(errors.New("dial tcp: connection refused"))}
		drops := &fakeDrops{}
		reg := prometheus.NewRegistry()
		cfg := pipeline.DefaultConfig()
		cfg.MaxRetryDelay = 2 * time.Second
		p := newPipeline(t, cfg, sink, drops, pipeline.WithRegisterer(reg))
		p.Add(spanRecord(t, 0, schema.SpanEnded, trace, "0000000000000001", 1))
		if err := p.Write(t.Context(), p.Seal(pipeline.TriggerShutdown)); err != nil {
			t.Fatal(err)
		}
		if len(drops.got) != 0 || len(sink.batches) != 1 || len(sink.calls) != 41 {
			t.Fatalf("%d drops, %d writes stored, %d attempts; want 0 drops and the batch stored after 40 failures", len(drops.got), len(sink.batches), len(sink.calls))
		}
		for i := 1; i < len(sink.calls); i++ {
			if gap := sink.calls[i].Sub(sink.calls[i-1]); gap > cfg.MaxRetryDelay {
				t.Fatalf("retry %d waited %s, above max_retry_delay %s", i, gap, cfg.MaxRetryDelay)
			}
		}
		if v := testutil.ToFloat64(errorsByKind(reg, "unavailable")); v != 40 {
			t.Errorf("spanpipe_sink_errors_total{kind=unavailable} = %v, want 40", v)
		}
	})
}

// While the writer waits out an unavailable store, the oldest unwritten record ages:
// the stall is visible without any new event.
func TestOldestUnwrittenAgeShowsAStall(t *testing.T) {
	now := t0
	sink := &fakeSink{caps: allCaps()}
	reg := prometheus.NewRegistry()
	p := newPipeline(t, pipeline.DefaultConfig(), sink, &fakeDrops{}, pipeline.WithRegisterer(reg), pipeline.WithClock(func() time.Time { return now }))
	age := func() float64 { return gathered(t, reg, "spanpipe_pipeline_oldest_unwritten_age_seconds") }
	if age() != 0 {
		t.Fatalf("age %v with nothing held, want 0", age())
	}
	p.Add(spanRecord(t, 0, schema.SpanEnded, trace, "0000000000000001", 1))
	u := p.Seal(pipeline.TriggerSize)
	now = now.Add(3 * time.Second)
	p.Add(spanRecord(t, 1, schema.SpanEnded, trace, "0000000000000002", 1))
	now = now.Add(10 * time.Minute)
	if got, want := age(), (10*time.Minute + 3*time.Second).Seconds(); got != want {
		t.Fatalf("age %v, want %v (the sealed unit, not the open one)", got, want)
	}
	if err := p.Write(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	if got, want := age(), (10 * time.Minute).Seconds(); got != want {
		t.Fatalf("age %v after the first unit is written, want %v (the open one)", got, want)
	}
	if err := p.Write(t.Context(), p.Seal(pipeline.TriggerShutdown)); err != nil {
		t.Fatal(err)
	}
	if age() != 0 {
		t.Fatalf("age %v with everything written, want 0", age())
	}
}

func dropped(reg prometheus.Registerer, signal, reason string) prometheus.Collector {
	return promx.DroppedRecords(reg).WithLabelValues(signal, reason, "consumer")
}

func errorsByKind(g prometheus.Gatherer, kind string) prometheus.Collector {
	return labelled{g, "spanpipe_sink_errors_total", "kind", kind}
}

func gathered(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// labelled collects the counter series of name whose label has value.
type labelled struct {
	g                  prometheus.Gatherer
	name, label, value string
}

func (x labelled) Describe(chan<- *prometheus.Desc) {}
func (x labelled) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := x.g.Gather()
	for _, mf := range mfs {
		if mf.GetName() != x.name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == x.label && l.GetValue() == x.value {
					ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(x.name, "", nil, nil), prometheus.CounterValue, m.GetCounter().GetValue())
				}
			}
		}
	}
}
