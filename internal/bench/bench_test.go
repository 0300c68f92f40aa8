package bench

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

// The ceiling must store what the drain stores: the workload's spans through the
// sink's Write and through AppendSpans give the same rows, whatever the sink's
// tables look like.
func TestAppendCeilingStoresTheDrainRows(t *testing.T) {
	const n = 300
	gen := newSpanGen(1024, drainStream)
	spans := make([]*schema.Span, n)
	for i := range spans {
		s, _ := gen.next()
		var err error
		if spans[i], err = stored(s, i%2 == 0); err != nil {
			t.Fatal(err)
		}
	}
	open := func(name string) *duckdb.Writer {
		cfg := duckdb.DefaultConfig()
		cfg.Path = filepath.Join(t.TempDir(), name+".duckdb")
		w, err := duckdb.Open(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Close() })
		return w
	}
	drained, ceiling := open("drain"), open("ceiling")
	if err := drained.Write(t.Context(), &pipeline.Batch{Strategy: pipeline.InsertOnly, Spans: spans}); err != nil {
		t.Fatal(err)
	}
	if err := ceiling.AppendSpans(t.Context(), spans); err != nil {
		t.Fatal(err)
	}
	want, got := spanRows(t, drained.DB()), spanRows(t, ceiling.DB())
	if len(got) != n || len(want) != n {
		t.Fatalf("got %d rows appended, %d written, want %d each", len(got), len(want), n)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("row %d:\nappended %s\nwritten  %s", i, got[i], want[i])
		}
	}
}

// spanRows returns every stored span row as text, the write times left out.
func spanRows(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(),
		`SELECT * EXCLUDE (created_at, updated_at) FROM spans ORDER BY trace_id, span_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out []string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(vals))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAppendCeilingMeasures(t *testing.T) {
	rate, cpu, err := appendCeiling(context.Background(), Options{Spans: ceilingChunk + 10, PayloadAvg: 256, DBDir: t.TempDir()}, "ceiling")
	if err != nil {
		t.Fatal(err)
	}
	if rate <= 0 || cpu <= 0 {
		t.Fatalf("got %v spans/s at %v ms CPU per span", rate, cpu)
	}
}

// TestChunkOfHoldsWholeBatches: the ceiling never commits a batch smaller than the
// drain's because its chunk of generated spans ended mid-batch.
func TestChunkOfHoldsWholeBatches(t *testing.T) {
	for _, tc := range []struct{ batch, want int }{
		{1, ceilingChunk},
		{1000, 10000},
		{3000, 12000},
		{ceilingChunk, ceilingChunk},
		{16384, 16384},
		{25000, 25000},
	} {
		if got := chunkOf(tc.batch); got != tc.want {
			t.Errorf("chunkOf(%d) = %d, want %d", tc.batch, got, tc.want)
		}
	}
}

// TestOptionsConfig: the sink settings of Options.Config reach the append ceiling
// (a row group size that DuckDB's Open refuses fails it) and the settings line, and
// so do its fetch sizes.
func TestOptionsConfig(t *testing.T) {
	cfg := app.DefaultConfig()
	cfg.Sink.DuckDB.MemoryLimit, cfg.Sink.DuckDB.RowGroupSize = "80MB", 7
	cfg.Kafka.FetchMaxBytes, cfg.Kafka.MaxPollRecords = 16<<20, 20000
	_, _, err := appendCeiling(t.Context(), Options{Spans: 10, PayloadAvg: 256, DBDir: t.TempDir(), Config: &cfg}, "ceiling")
	if err == nil || !strings.Contains(err.Error(), "row_group_size") {
		t.Errorf("ceiling with row_group_size 7: got %v, want Open's refusal", err)
	}
	o := Options{Config: &cfg}
	if got := settingsOf(o.config(), "duckdb"); !strings.Contains(got, "memory_limit 80MB") || !strings.Contains(got, "row_group_size 7") {
		t.Errorf("settings: %s", got)
	}
	if got := settingsOf(o.config(), "null"); !strings.Contains(got, "fetch_max_bytes 16777216") || !strings.Contains(got, "max_poll_records 20000") {
		t.Errorf("settings with fetch sizes: %s", got)
	}
	if got := settingsOf(Options{}.config(), "duckdb"); !strings.Contains(got, "memory_limit "+duckdb.DefaultConfig().MemoryLimit) || strings.Contains(got, "fetch_max_bytes") {
		t.Errorf("default settings: %s", got)
	}
}

func TestTargets(t *testing.T) {
	const rssGrowth = "RSS growth, p90 of 2nd to 4th quarter"
	enough := [4]int{minQuarterSamples, minQuarterSamples, minQuarterSamples, minQuarterSamples}
	pass := func(r Result, name string) (bool, bool) {
		for _, tg := range targets(&r) {
			if tg.Name == name {
				return tg.Pass, true
			}
		}
		return false, false
	}
	cases := []struct {
		name   string
		r      Result
		target string
		want   bool
		absent bool
	}{
		{"null at 61% of raw", Result{Sink: "null", RatioToRaw: 0.61}, "drain / raw fetch", true, false},
		{"null at 59% of raw", Result{Sink: "null", RatioToRaw: 0.59}, "drain / raw fetch", false, false},
		{"duckdb raw share is no target", Result{Sink: "duckdb", RatioToRaw: 0.01}, "drain / raw fetch", false, true},
		{"duckdb insert-only at 65% of the ceiling", Result{Sink: "duckdb", Strategy: "insert-only", RatioToCeiling: 0.65}, "drain / DuckDB append ceiling", false, false},
		{"duckdb with updates at 55% of the ceiling", Result{Sink: "duckdb", Strategy: "batch-with-updates", RatioToCeiling: 0.55}, "drain / DuckDB append ceiling", true, false},
		{"duckdb CPU", Result{Sink: "duckdb", ConsumerCPUMs: 0.016}, "consumer CPU per span", false, false},
		{"clickhouse CPU", Result{Sink: "clickhouse", ConsumerCPUMs: 0.012}, "consumer CPU per span", true, false},
		{"duckdb bytes per span", Result{Sink: "duckdb", DuckDBBytesPerSpan: 1151}, "DuckDB bytes on disk per span", false, false},
		{"peak RSS", Result{Sink: "clickhouse", PeakRSSMB: 250}, "peak RSS", true, false},
		// The sample at half the drain fell on a low of the sawtooth; the sawtooth did not move.
		{"RSS sawtooth", Result{Sink: "duckdb", RSSMB: [3]float64{200, 140, 240}, RSSP90ByQuarterMB: [4]float64{180, 240, 245, 250}, RSSSamplesByQuarter: enough}, rssGrowth, true, false},
		// The first quarter fills the buffers: no growth to count.
		{"RSS filling first", Result{Sink: "null", RSSP90ByQuarterMB: [4]float64{120, 200, 205, 210}, RSSSamplesByQuarter: enough}, rssGrowth, true, false},
		{"RSS growing", Result{Sink: "null", RSSP90ByQuarterMB: [4]float64{200, 200, 210, 221}, RSSSamplesByQuarter: enough}, rssGrowth, false, false},
		// Two samples a quarter: one tooth of the sawtooth against another.
		{"RSS quarters too short", Result{Sink: "null", RSSP90ByQuarterMB: [4]float64{200, 200, 210, 260}, RSSSamplesByQuarter: [4]int{2, 2, 2, 2}}, rssGrowth, false, true},
		{"RSS last quarter too short", Result{Sink: "null", RSSP90ByQuarterMB: [4]float64{200, 200, 210, 260}, RSSSamplesByQuarter: [4]int{8, 8, 8, 7}}, rssGrowth, false, true},
		{"RSS not sampled", Result{Sink: "null"}, rssGrowth, false, true},
		{"p99 within the bound", Result{Sink: "null", LatencyRate: 1, LatencyP99ms: 5400, LatencyBoundMs: 5500}, "p99 latency at half the drain rate", true, false},
		{"p99 over the bound", Result{Sink: "null", LatencyRate: 1, LatencyP99ms: 5600, LatencyBoundMs: 5500}, "p99 latency at half the drain rate", false, false},
		{"no latency phase", Result{Sink: "null"}, "p99 latency at half the drain rate", false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, found := pass(c.r, c.target)
			if found == c.absent || got != c.want {
				t.Errorf("target %q: got pass=%v present=%v, want pass=%v present=%v", c.target, got, found, c.want, !c.absent)
			}
		})
	}
}

func TestLatencyBound(t *testing.T) {
	if got := latencyBound(5 * time.Second); got != 5500*time.Millisecond {
		t.Fatalf("got %s, want 5.5s", got)
	}
}

// A drain too short to judge flatness says so, with its sample counts, rather than
// printing a growth that is one sample against another; a long enough one judges.
func TestWriteTableRSSGrowthJudgedOnEnoughSamples(t *testing.T) {
	for _, c := range []struct {
		samples [4]int
		want    string
	}{
		{[4]int{2, 2, 2, 2}, "not judged: 2 / 2 samples in the 2nd / 4th quarter, 8 needed"},
		{[4]int{9, 9, 9, 9}, "PASS  4.762 %"},
	} {
		var b strings.Builder
		r := &Result{Sink: "null", RSSP90ByQuarterMB: [4]float64{100, 105, 108, 110}, RSSSamplesByQuarter: c.samples}
		r.Targets = targets(r)
		if err := r.WriteTable(&b); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("samples %v: the table lacks %q:\n%s", c.samples, c.want, b.String())
		}
	}
}

// An external ClickHouse's CPU is unknown, and so is the total: the table says so
// instead of printing a consumer-only figure as the total.
func TestWriteTableUnknownServerCPU(t *testing.T) {
	var b strings.Builder
	r := &Result{Sink: "clickhouse", ConsumerCPUMs: 0.02}
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ClickHouse server CPU  unknown", "total CPU              unknown"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// The latency phase writes spans of its own: a span id the drain already stored
// would be an update, whose older version compaction deletes while the phase is
// measured.
func TestLatencyPhaseSpansAreNew(t *testing.T) {
	const n = 20000
	ids := func(stream uint64) map[[2]string]bool {
		gen, seen := newSpanGen(64, stream), make(map[[2]string]bool, n)
		for range n {
			s, _ := gen.next()
			seen[[2]string{s.TraceID, s.SpanID}] = true
		}
		return seen
	}
	drained, latency := ids(drainStream), ids(latencyStream)
	if len(drained) != n || len(latency) != n {
		t.Fatalf("a stream repeats its own ids: %d and %d distinct of %d", len(drained), len(latency), n)
	}
	for id := range latency {
		if drained[id] {
			t.Fatalf("span %v is in both the drain's and the latency phase's streams", id)
		}
	}
}

// TestLatencyWindow: the latency phase measures the spans that ended in its window,
// not the unmeasured tail that keeps the stream going past it, nor spans without an
// end (started snapshots).
func TestLatencyWindow(t *testing.T) {
	until := time.Now()
	lat := &latencies{}
	sink := timed{nullSink{}, lat}
	in, after := until.Add(-time.Second), until.Add(time.Millisecond)
	spans := []*schema.Span{{EndTime: in}, {EndTime: in}, {EndTime: after}, {}}
	if err := sink.Write(t.Context(), &pipeline.Batch{Strategy: pipeline.InsertOnly, Spans: spans}); err != nil {
		t.Fatal(err)
	}
	if len(lat.d) != 0 {
		t.Fatalf("recorded %d latencies before start, want 0", len(lat.d))
	}
	lat.start(until)
	if err := sink.Write(t.Context(), &pipeline.Batch{Strategy: pipeline.InsertOnly, Spans: spans}); err != nil {
		t.Fatal(err)
	}
	if len(lat.d) != 2 {
		t.Fatalf("recorded %d latencies, want the 2 spans that ended before the window's end", len(lat.d))
	}
}

// The sampler files each sample under the quarter of the drain it was taken in.
func TestRSSSamplerQuarters(t *testing.T) {
	rs := &rssSampler{}
	var seen []int
	rs.onPeak = func(q int, overall bool) { seen = append(seen, q) }
	rs.quarter.Store(2)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); rs.run(ctx) }()
	for rs.quarterPeak[2].Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	for q := range rs.quarterPeak {
		if got := rs.quarterPeak[q].Load(); (got > 0) != (q == 2) {
			t.Errorf("quarter %d: peak %d bytes, want a peak only in quarter 2", q, got)
		}
	}
	if rs.peak.Load() != rs.quarterPeak[2].Load() || len(seen) == 0 || seen[0] != 2 {
		t.Errorf("overall peak %d, quarter 2's %d, onPeak saw quarters %v", rs.peak.Load(), rs.quarterPeak[2].Load(), seen)
	}
}

// A sawtooth whose one tooth spikes higher is flat; one that rises is not.
func TestQuarterP90(t *testing.T) {
	saw := func(n int, lo, hi int64) []int64 {
		var s []int64
		for i := range n {
			s = append(s, lo+(hi-lo)*int64(i%10)/9)
		}
		return s
	}
	spiked := append(saw(50, 100, 200), 300)
	flat := saw(50, 100, 200)
	cases := []struct {
		name    string
		samples [4][]int64
		want    [4]int64
	}{
		{"flat", [4][]int64{flat, flat, flat, flat}, [4]int64{200, 200, 200, 200}},
		{"one spike", [4][]int64{flat, flat, flat, spiked}, [4]int64{200, 200, 200, 200}},
		{"rising", [4][]int64{flat, flat, saw(50, 115, 215), saw(50, 130, 230)}, [4]int64{200, 200, 215, 230}},
		{"unsampled quarters", [4][]int64{flat, nil, nil, flat}, [4]int64{200, 0, 0, 200}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs := &rssSampler{samples: c.samples}
			if got := rs.quarterP90(); got != c.want {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}
