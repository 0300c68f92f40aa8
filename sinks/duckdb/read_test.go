package duckdb_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/query"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

// TestListTracesAcrossWindows lists traces whose ages straddle every window the
// reader searches before it searches everything: pages, filters and time bounds
// must give the same answer as one scan of the whole table would.
func TestListTracesAcrossWindows(t *testing.T) {
	w := openWriter(t, dbPath(t))
	newest := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	ages := []time.Duration{0, 30 * time.Minute, 5 * time.Hour, 2 * 24 * time.Hour, 10 * 24 * time.Hour, 100 * 24 * time.Hour}
	var spans []*schema.Span
	for i, age := range ages {
		trace := fmt.Sprintf("%031x%d", 0, i)
		root := &schema.Span{TraceID: trace, SpanID: "0000000000000001", Name: "root", Type: schema.AgentRun,
			StartTime: newest.Add(-age), EndTime: newest.Add(-age + time.Second), IsRootSpan: true, Version: 3,
			Correlation: schema.Correlation{ServiceName: []string{"a", "b"}[i%2]}}
		// The child's clock is 30 minutes behind the root's.
		child := &schema.Span{TraceID: trace, SpanID: "0000000000000002", ParentSpanID: root.SpanID, Name: "tool",
			Type: schema.ToolCall, StartTime: root.StartTime.Add(-30 * time.Minute), EndTime: root.StartTime, Version: 3}
		if i == 1 || i == len(ages)-1 {
			child.ErrorInfo = &schema.ErrorInfo{Message: "boom"}
		}
		spans = append(spans, root, child)
	}
	write(t, w, &pipeline.Batch{Strategy: pipeline.BatchWithUpdates, Spans: spans})
	r := duckdb.NewReader(w.DB())

	list := func(f query.TraceFilter) string {
		t.Helper()
		if err := f.Validate(); err != nil {
			t.Fatal(err)
		}
		var pages []string
		for range len(ages) + 1 {
			p, err := r.ListTraces(t.Context(), f)
			if err != nil {
				t.Fatalf("ListTraces(%+v): %v", f, err)
			}
			var ids []string
			for _, tr := range p.Traces {
				ids = append(ids, tr.TraceID[len(tr.TraceID)-1:]+":"+string(tr.Status)+fmt.Sprint(tr.SpanCount))
			}
			pages = append(pages, strings.Join(ids, " "))
			if p.NextCursor == "" {
				break
			}
			c, err := query.ParseCursor(p.NextCursor)
			if err != nil {
				t.Fatal(err)
			}
			f.Cursor = c
		}
		return strings.Join(pages, " | ")
	}
	at := func(age time.Duration) time.Time { return newest.Add(-age) }
	tests := []struct {
		name string
		f    query.TraceFilter
		want string
	}{
		{"all, pages of 2", query.TraceFilter{Limit: 2}, "0:ok2 1:error2 | 2:ok2 3:ok2 | 4:ok2 5:error2"},
		{"all in one page", query.TraceFilter{}, "0:ok2 1:error2 2:ok2 3:ok2 4:ok2 5:error2"},
		{"errors", query.TraceFilter{Limit: 1, Status: query.StatusError}, "1:error2 | 5:error2"},
		{"ok, one service", query.TraceFilter{Service: "a", Status: query.StatusOK}, "0:ok2 2:ok2 4:ok2"},
		{"to", query.TraceFilter{Limit: 2, To: at(time.Hour)}, "2:ok2 3:ok2 | 4:ok2 5:error2"},
		{"from", query.TraceFilter{Limit: 2, From: at(11 * 24 * time.Hour)}, "0:ok2 1:error2 | 2:ok2 3:ok2 | 4:ok2"},
		// The error is on a span that started before from, within the allowed skew.
		{"error before from", query.TraceFilter{Status: query.StatusError, From: at(40 * time.Minute), To: at(20 * time.Minute)}, "1:error2"},
		{"span type, old", query.TraceFilter{SpanType: "tool_call", Search: "TOO", To: at(50 * 24 * time.Hour)}, "5:error2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := list(tt.f); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestListTracesResolvesVersions lists a trace whose spans have a started and an
// ended snapshot stored side by side (no compaction yet): the list shows the newest
// of each, once.
func TestListTracesResolvesVersions(t *testing.T) {
	w := openWriter(t, dbPath(t))
	start := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	trace := fmt.Sprintf("%032x", 7)
	snap := func(version uint64, ended bool) []*schema.Span {
		root := &schema.Span{TraceID: trace, SpanID: "0000000000000001", Name: "root", Type: schema.AgentRun,
			StartTime: start, IsRootSpan: true, Version: version}
		child := &schema.Span{TraceID: trace, SpanID: "0000000000000002", ParentSpanID: root.SpanID, Name: "tool",
			Type: schema.ToolCall, StartTime: start.Add(time.Millisecond), Version: version}
		if ended {
			root.EndTime, child.EndTime = start.Add(time.Second), start.Add(500*time.Millisecond)
			child.ErrorInfo = &schema.ErrorInfo{Message: "boom"}
		}
		return []*schema.Span{root, child}
	}
	write(t, w, &pipeline.Batch{Strategy: pipeline.BatchWithUpdates, Spans: snap(1, false)})
	write(t, w, &pipeline.Batch{Strategy: pipeline.BatchWithUpdates, Spans: snap(2, true)})
	r := duckdb.NewReader(w.DB())
	checkStatuses(t, r, start.Add(-time.Hour), map[query.Status]string{
		"": "error 2/1", query.StatusError: "error 2/1", query.StatusRunning: ""})
}

// checkStatuses lists the traces started since from with each status filter and
// compares their status and span/error counts with want's.
func checkStatuses(t *testing.T, r *duckdb.Reader, from time.Time, want map[query.Status]string) {
	t.Helper()
	for status, want := range want {
		p, err := r.ListTraces(t.Context(), query.TraceFilter{Limit: 10, Status: status, From: from})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tr := range p.Traces {
			got = append(got, fmt.Sprintf("%s %d/%d", tr.Status, tr.SpanCount, tr.ErrorCount))
		}
		if s := strings.Join(got, ", "); s != want {
			t.Errorf("status %q: got %q, want %q", status, s, want)
		}
	}
}

// TestReadsResolveCompactedAndTail lists and aggregates spans whose versions are
// split between compacted rows and the tail written since, in both orders: a newer
// version in the tail hides the compacted one, and an older version arriving late
// (in the tail) stays hidden behind the compacted one. Each span counts once, as
// its newest version, in lists, stats and the trace. Reads match the tail by
// key_hash: with every row's hash the same (set by hand), they still rank each
// span's versions apart.
func TestReadsResolveCompactedAndTail(t *testing.T) {
	for _, collide := range []bool{false, true} {
		t.Run(fmt.Sprintf("collide=%v", collide), func(t *testing.T) { readsResolveCompactedAndTail(t, collide) })
	}
}

func readsResolveCompactedAndTail(t *testing.T, collide bool) {
	path := dbPath(t)
	start := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	trace := fmt.Sprintf("%032x", 9)
	span := func(id string, version uint64, ended bool, failed bool) *schema.Span {
		s := &schema.Span{TraceID: trace, SpanID: id, ParentSpanID: "0000000000000001", Name: "tool " + id[15:],
			Type: schema.ToolCall, StartTime: start.Add(time.Millisecond), Version: version}
		if id == "0000000000000001" {
			s.ParentSpanID, s.IsRootSpan, s.Type, s.Name, s.StartTime = "", true, schema.AgentRun, "root", start
		}
		if ended {
			s.EndTime = start.Add(time.Second)
		}
		if failed {
			s.ErrorInfo = &schema.ErrorInfo{Message: "boom"}
		}
		return s
	}
	w := openWriter(t, path)
	// Compacted: the root and span 2 ended (2 failed), span 3 started.
	write(t, w, &pipeline.Batch{Strategy: pipeline.BatchWithUpdates, Spans: []*schema.Span{
		span("0000000000000001", 2, true, false), span("0000000000000002", 2, true, true), span("0000000000000003", 1, false, false)}})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openWriter(t, path)
	// Tail: late started snapshots of the root and span 2, span 3 ended and failed.
	write(t, w, &pipeline.Batch{Strategy: pipeline.BatchWithUpdates, Spans: []*schema.Span{
		span("0000000000000001", 1, false, false), span("0000000000000002", 1, false, false), span("0000000000000003", 2, true, true)}})
	if collide {
		if _, err := w.DB().ExecContext(t.Context(), "UPDATE span_versions SET key_hash = 42"); err != nil {
			t.Fatal(err)
		}
	}
	r := duckdb.NewReader(w.DB())

	checkStatuses(t, r, time.Time{}, map[query.Status]string{
		"": "error 3/2", query.StatusError: "error 3/2", query.StatusRunning: "", query.StatusOK: ""})

	spans, err := r.TraceSpans(t.Context(), trace)
	if err != nil {
		t.Fatal(err)
	}
	var versions []string
	for _, s := range spans {
		versions = append(versions, fmt.Sprintf("%s v%d", s.SpanID[15:], s.Version))
	}
	if got, want := strings.Join(versions, ", "), "1 v2, 2 v2, 3 v2"; got != want {
		t.Errorf("trace: got %s, want %s", got, want)
	}
	if s, err := r.Span(t.Context(), trace, "0000000000000002"); err != nil || s == nil || s.Version != 2 || s.ErrorInfo == nil {
		t.Errorf("span 2: got %+v, %v; want version 2 with its error", s, err)
	}

	q := query.StatsQuery{From: start.Add(-time.Hour), To: start.Add(time.Hour), Bucket: time.Hour}
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	st, err := r.Stats(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	var series []string
	for _, b := range st.Series {
		series = append(series, fmt.Sprintf("%d/%d/%d", b.Traces, b.Spans, b.ErrorSpans))
	}
	var durations []string
	for _, d := range st.Durations {
		durations = append(durations, fmt.Sprintf("%s %d", d.Entity, d.Count))
	}
	if got, want := strings.Join(series, " "), "0/0/0 1/3/2"; got != want {
		t.Errorf("series: got %s, want %s", got, want)
	}
	if got, want := strings.Join(durations, ", "), "root 1, tool 2 1, tool 3 1"; got != want {
		t.Errorf("durations: got %s, want %s", got, want)
	}
}

// TestListTracesErrorOfNewestVersion lists traces whose error is in one version of
// a span only, older or newer, compacted or in the tail, and written before or
// after the other version: only the newest version decides the status.
func TestListTracesErrorOfNewestVersion(t *testing.T) {
	start := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	snap := func(trace string, at time.Time, version uint64, failed bool) []*schema.Span {
		root := &schema.Span{TraceID: trace, SpanID: "0000000000000001", Name: "root", Type: schema.AgentRun,
			StartTime: at, EndTime: at.Add(time.Second), IsRootSpan: true, Version: version}
		child := &schema.Span{TraceID: trace, SpanID: "0000000000000002", ParentSpanID: root.SpanID, Name: "tool",
			Type: schema.ToolCall, StartTime: at.Add(time.Millisecond), EndTime: at.Add(time.Second), Version: version}
		if failed {
			child.ErrorInfo = &schema.ErrorInfo{Message: "boom"}
		}
		return []*schema.Span{root, child}
	}
	// Newest first: the child of fixed failed in version 1 and ended without error in
	// version 2, broke's the reverse; lateFixed and lateBroke are the same with
	// version 2 written first and version 1 arriving late.
	type trace struct {
		at                 time.Time
		first, then        uint64 // the versions in write order
		firstFailed, later bool   // whether each failed
	}
	traces := []trace{
		{start, 1, 2, true, false},
		{start.Add(-time.Minute), 1, 2, false, true},
		{start.Add(-2 * time.Minute), 2, 1, false, true},
		{start.Add(-3 * time.Minute), 2, 1, true, false},
	}
	for _, compacted := range []bool{false, true} {
		t.Run(fmt.Sprintf("compacted=%v", compacted), func(t *testing.T) {
			path := dbPath(t)
			w := openWriter(t, path)
			var first, then []*schema.Span
			for i, tr := range traces {
				id := fmt.Sprintf("%032x", i+1)
				first = append(first, snap(id, tr.at, tr.first, tr.firstFailed)...)
				then = append(then, snap(id, tr.at, tr.then, tr.later)...)
			}
			write(t, w, &pipeline.Batch{Strategy: pipeline.BatchWithUpdates, Spans: first})
			if compacted { // closing compacts: the first writes are compacted, the others the tail
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				w = openWriter(t, path)
			}
			write(t, w, &pipeline.Batch{Strategy: pipeline.BatchWithUpdates, Spans: then})
			checkStatuses(t, duckdb.NewReader(w.DB()), start.Add(-time.Hour), map[query.Status]string{
				"":                  "ok 2/0, error 2/1, ok 2/0, error 2/1",
				query.StatusError:   "error 2/1, error 2/1",
				query.StatusOK:      "ok 2/0, ok 2/0",
				query.StatusRunning: ""})
		})
	}
}
