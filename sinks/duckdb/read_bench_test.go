package duckdb_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/query"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

// BenchmarkReader measures the explorer's queries on a DuckDB file of 1M spans
// (19,000 traces of 50 spans and 250 of 200, over 7 days, 4 services, 5% of traces
// with an error), read through the writer's handle as `--ui` does. Traces are
// written oldest first, as a consumer stores them, with random trace ids. Each
// sub-benchmark also reports its 95th percentile (p95-ms) and the CPU time it used
// per operation (cpu-ms/op).
//
//	go test -run '^$' -bench BenchmarkReader -benchtime 50x ./sinks/duckdb/
func BenchmarkReader(b *testing.B) {
	const (
		short, shortSpans = 19000, 50
		long, longSpans   = 250, 200
		liveTraces        = 1200 // 60k spans: a tail below the compaction step
	)
	end := time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)
	cfg := duckdb.DefaultConfig()
	cfg.Path = filepath.Join(b.TempDir(), "bench.duckdb")
	w, err := duckdb.Open(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	// Only the row threshold compacts here, as before the age trigger: the tail60k
	// case must keep its tail for the whole run.
	w.SetCompactionAfter(0)
	loadStart := time.Now()
	var batch []*schema.Span
	flush := func() {
		if err := w.Write(b.Context(), &pipeline.Batch{Strategy: pipeline.BatchWithUpdates, Spans: batch}); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	var longTrace string
	var recent []*schema.Span // the newest traces' spans, rewritten for the live case below
	ids := rand.New(rand.NewPCG(1, 2))
	for i := short + long - 1; i >= 0; i-- { // i traces before the newest
		n, traceID := shortSpans, fmt.Sprintf("%016x%016x", ids.Uint64(), ids.Uint64())
		if i%77 == 0 && i/77 < long { // long traces spread over the week
			n, longTrace = longSpans, traceID
		}
		start := end.Add(-7 * 24 * time.Hour / (short + long) * time.Duration(i))
		for j := range n {
			s := benchSpan(traceID, fmt.Sprintf("%016x", j+1))
			s.StartTime, s.EndTime = start.Add(time.Duration(j)*20*time.Millisecond), start.Add(time.Duration(j+1)*20*time.Millisecond)
			s.ServiceName = fmt.Sprintf("svc-%d", i%4)
			if j == 0 {
				s.ParentSpanID, s.IsRootSpan, s.Type, s.Name = "", true, schema.AgentRun, "agent run"
				s.EndTime = start.Add(time.Duration(n) * 20 * time.Millisecond)
			} else if j%3 == 0 {
				s.Type, s.Name = schema.ToolCall, fmt.Sprintf("tool %d", j%7)
			}
			if j == n-1 && i%20 == 0 {
				s.ErrorInfo = &schema.ErrorInfo{Message: "upstream returned 503"}
			}
			batch = append(batch, s)
			if i < liveTraces {
				recent = append(recent, s)
			}
			if len(batch) == 20000 {
				flush()
			}
		}
	}
	flush()
	n, err := w.CountSpans(b.Context())
	if err != nil || n < 1_000_000 {
		b.Fatalf("loaded %d spans (%v), want 1M", n, err)
	}
	b.Logf("loaded %d spans in %s", n, time.Since(loadStart).Round(time.Millisecond))
	r := duckdb.NewReader(w.DB())
	batch = nil
	runtime.GC() // the load's garbage is not the readers' CPU time

	// On a shared machine wall time mostly measures the wait for a core; the process's
	// CPU time per operation (cpu-ms, DuckDB's threads included) does not.
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	timed := func(b *testing.B, op func() error) {
		var d []time.Duration
		c0 := cpu()
		for b.Loop() {
			t := time.Now()
			if err := op(); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t))
		}
		b.ReportMetric(float64((cpu()-c0).Microseconds())/1000/float64(len(d)), "cpu-ms/op")
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)*95/100].Microseconds())/1000, "p95-ms")
	}
	list := func(f query.TraceFilter) func(b *testing.B) {
		return func(b *testing.B) {
			f.Limit = 50
			timed(b, func() error {
				p, err := r.ListTraces(b.Context(), f)
				if err == nil && len(p.Traces) != 50 {
					err = fmt.Errorf("got %d traces, want 50", len(p.Traces))
				}
				return err
			})
		}
	}
	all := func(prefix string) {
		b.Run(prefix+"list50/service", list(query.TraceFilter{Service: "svc-2"}))
		b.Run(prefix+"list50/status=error", list(query.TraceFilter{Status: query.StatusError}))
		b.Run(prefix+"list50/spanType+search", list(query.TraceFilter{SpanType: "tool_call", Search: "TOOL 3"}))
		b.Run(prefix+"trace200", func(b *testing.B) {
			timed(b, func() error {
				spans, err := r.TraceSpans(b.Context(), longTrace)
				if err == nil && len(spans) != longSpans {
					err = fmt.Errorf("got %d spans, want %d", len(spans), longSpans)
				}
				query.BuildTrace(longTrace, spans)
				return err
			})
		})
		b.Run(prefix+"stats24h", func(b *testing.B) {
			q := query.StatsQuery{From: end.Add(-24 * time.Hour), To: end}
			if err := q.Validate(); err != nil {
				b.Fatal(err)
			}
			timed(b, func() error {
				st, err := r.Stats(b.Context(), q)
				if err == nil && len(st.Series) != query.DefaultBuckets {
					err = fmt.Errorf("got %d buckets", len(st.Series))
				}
				return err
			})
		})
	}
	all("")
	// A live file: the newest traces' spans written again as newer versions, not yet
	// compacted, so that every read resolves versions in its range (a background
	// compaction may start while it runs).
	for _, s := range recent {
		s.Version++
		batch = append(batch, s)
		if len(batch) == 20000 {
			flush()
		}
	}
	flush()
	runtime.GC()
	all("tail60k/")
}
