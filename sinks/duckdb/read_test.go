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
	for _, tt := range []struct {
		status query.Status
		want   string
	}{{"", "error 2/1"}, {query.StatusError, "error 2/1"}, {query.StatusRunning, ""}} {
		p, err := r.ListTraces(t.Context(), query.TraceFilter{Limit: 10, Status: tt.status, From: start.Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tr := range p.Traces {
			got = append(got, fmt.Sprintf("%s %d/%d", tr.Status, tr.SpanCount, tr.ErrorCount))
		}
		if s := strings.Join(got, ", "); s != tt.want {
			t.Errorf("status %q: got %q, want %q", tt.status, s, tt.want)
		}
	}
}
