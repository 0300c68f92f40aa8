package query

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/spanpipe/spanpipe/schema"
)

// Trace is one trace as a tree: Spans in depth-first order (children by start time),
// each with its depth, so that a client draws the tree and the waterfall in one pass.
type Trace struct {
	TraceID    string     `json:"traceId"`
	StartedAt  time.Time  `json:"startedAt"`
	EndedAt    *time.Time `json:"endedAt,omitempty"`
	DurationMS *float64   `json:"durationMs,omitempty"`
	SpanCount  int        `json:"spanCount"`
	ErrorCount int        `json:"errorCount"`
	Status     Status     `json:"status"`
	Spans      []SpanNode `json:"spans"`
}

// SpanNode is a span of a [Trace], without payloads.
type SpanNode struct {
	SpanID       string     `json:"spanId"`
	ParentSpanID string     `json:"parentSpanId,omitempty"`
	Depth        int        `json:"depth"`
	Name         string     `json:"name"`
	SpanType     string     `json:"spanType"`
	EntityType   string     `json:"entityType,omitempty"`
	EntityName   string     `json:"entityName,omitempty"`
	StartedAt    time.Time  `json:"startedAt"`
	EndedAt      *time.Time `json:"endedAt,omitempty"`
	DurationMS   *float64   `json:"durationMs,omitempty"`
	IsEvent      bool       `json:"isEvent,omitempty"`
	Status       Status     `json:"status"`
	Error        string     `json:"error,omitempty"`
	// Orphan is set on a span whose parent is not in the trace (not stored yet).
	Orphan bool `json:"orphan,omitempty"`
}

// BuildTrace orders spans into a tree. A span whose parent is missing is a root
// (marked Orphan); spans only reachable through a parent cycle come last, once each.
func BuildTrace(traceID string, spans []*schema.Span) *Trace {
	t := &Trace{TraceID: traceID, SpanCount: len(spans), Spans: make([]SpanNode, 0, len(spans))}
	if len(spans) == 0 {
		return t
	}
	byID := make(map[string]*schema.Span, len(spans))
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	children := map[string][]*schema.Span{}
	var roots []*schema.Span
	var end time.Time
	running := false
	t.StartedAt = spans[0].StartTime
	for _, s := range spans {
		if p := s.ParentSpanID; p != "" && p != s.SpanID && byID[p] != nil {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
		if s.ErrorInfo != nil {
			t.ErrorCount++
		}
		if s.StartTime.Before(t.StartedAt) {
			t.StartedAt = s.StartTime
		}
		end = maxTime(end, s.StartTime, s.EndTime)
		if s.ParentSpanID == "" && !s.IsEvent && s.EndTime.IsZero() {
			running = true
		}
	}
	byStart := func(a, b *schema.Span) int {
		return cmp.Or(a.StartTime.Compare(b.StartTime), strings.Compare(a.SpanID, b.SpanID))
	}
	slices.SortFunc(roots, byStart)
	for _, c := range children {
		slices.SortFunc(c, byStart)
	}
	seen := make(map[string]bool, len(spans))
	var walk func(s *schema.Span, depth int)
	walk = func(s *schema.Span, depth int) {
		seen[s.SpanID] = true
		n := node(s, depth)
		n.Orphan = s.ParentSpanID != "" && byID[s.ParentSpanID] == nil
		t.Spans = append(t.Spans, n)
		for _, c := range children[s.SpanID] {
			if !seen[c.SpanID] {
				walk(c, depth+1)
			}
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	for _, s := range spans {
		if !seen[s.SpanID] {
			walk(s, 0)
		}
	}
	if !running {
		e := end
		t.EndedAt = &e
		d := durationMS(t.StartedAt, e)
		t.DurationMS = &d
	}
	switch {
	case t.ErrorCount > 0:
		t.Status = StatusError
	case running:
		t.Status = StatusRunning
	default:
		t.Status = StatusOK
	}
	return t
}

func node(s *schema.Span, depth int) SpanNode {
	n := SpanNode{
		SpanID: s.SpanID, ParentSpanID: s.ParentSpanID, Depth: depth, Name: s.Name, SpanType: string(s.Type),
		EntityType: s.EntityType, EntityName: s.EntityName, StartedAt: s.StartTime, IsEvent: s.IsEvent,
		Status: SpanStatus(s),
	}
	if !s.EndTime.IsZero() {
		e := s.EndTime
		n.EndedAt = &e
		d := durationMS(s.StartTime, e)
		n.DurationMS = &d
	}
	if s.ErrorInfo != nil {
		n.Error = cmp.Or(s.ErrorInfo.Message, s.ErrorInfo.Name, s.ErrorInfo.ID, "(no message)")
	}
	return n
}

// SpanStatus is error for a span with an error, running for one not ended (event
// spans never run), else ok.
func SpanStatus(s *schema.Span) Status {
	switch {
	case s.ErrorInfo != nil:
		return StatusError
	case !s.IsEvent && s.EndTime.IsZero():
		return StatusRunning
	}
	return StatusOK
}

func maxTime(a time.Time, ts ...time.Time) time.Time {
	for _, t := range ts {
		if t.After(a) {
			a = t
		}
	}
	return a
}
