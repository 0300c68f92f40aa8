package producer

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/spanpipe/spanpipe/schema"
)

// SpanOptions describe a span when it starts.
type SpanOptions struct {
	Name string
	Type schema.SpanType
	// TraceID and ParentSpanID continue an existing trace; both empty starts a new
	// trace. [Span.StartChild] fills them for you.
	TraceID      string
	ParentSpanID string
	// Entity fields name what the span runs (an agent, a tool, a workflow step...).
	EntityType, EntityID, EntityName string
	// Correlation carries the context ids (user, thread, session, run...). Children
	// inherit it; the producer adds the service name and environment.
	Correlation schema.Correlation
	// Attributes, Metadata and Input are encoded to JSON; use jsontext.Value for JSON
	// you already have.
	Attributes, Metadata, Input any
	// StartTime defaults to now.
	StartTime time.Time
}

// Span is a live span. Every Update and End emits a full snapshot with a higher
// version, so the store always ends up with the newest state whatever the order
// in which the snapshots arrive. Methods are safe for concurrent use.
type Span struct {
	p    *Producer
	mu   sync.Mutex
	snap schema.Span
	done bool
}

// StartSpan starts a span and emits span_started.
func (p *Producer) StartSpan(o SpanOptions) *Span {
	s := &Span{p: p}
	sn := &s.snap
	sn.TraceID = o.TraceID
	if sn.TraceID == "" {
		sn.TraceID = NewTraceID()
	}
	sn.SpanID = NewSpanID()
	sn.ParentSpanID = o.ParentSpanID
	sn.IsRootSpan = o.ParentSpanID == ""
	sn.Name, sn.Type = o.Name, o.Type
	sn.Correlation = o.Correlation
	sn.EntityType, sn.EntityID, sn.EntityName = o.EntityType, o.EntityID, o.EntityName
	if sn.IsRootSpan {
		sn.RootEntityType, sn.RootEntityID, sn.RootEntityName = o.EntityType, o.EntityID, o.EntityName
	}
	sn.Attributes, sn.Metadata, sn.Input = toJSON(o.Attributes), toJSON(o.Metadata), toJSON(o.Input)
	sn.StartTime = o.StartTime
	if sn.StartTime.IsZero() {
		sn.StartTime = p.now()
	}
	s.emit(schema.SpanStarted)
	return s
}

// StartChild starts a child span in the same trace. The child inherits the context
// ids and records this span's entity as its parent entity and the root entity.
func (s *Span) StartChild(o SpanOptions) *Span {
	s.mu.Lock()
	parent := s.snap
	s.mu.Unlock()
	o.TraceID, o.ParentSpanID = parent.TraceID, parent.SpanID
	c := o.Correlation
	o.Correlation = parent.Correlation
	if c.UserID != "" || c.ThreadID != "" || c.SessionID != "" || c.RunID != "" || c.RequestID != "" || len(c.Tags) > 0 {
		o.Correlation = mergeCorrelation(parent.Correlation, c)
	}
	o.Correlation.Tags = nil // tags live on the root span only, as in Mastra
	o.Correlation.ParentEntityType, o.Correlation.ParentEntityID, o.Correlation.ParentEntityName =
		parent.EntityType, parent.EntityID, parent.EntityName
	child := s.p.StartSpan(o)
	return child
}

func mergeCorrelation(base, over schema.Correlation) schema.Correlation {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&base.UserID, over.UserID)
	set(&base.OrganizationID, over.OrganizationID)
	set(&base.ResourceID, over.ResourceID)
	set(&base.RunID, over.RunID)
	set(&base.SessionID, over.SessionID)
	set(&base.ThreadID, over.ThreadID)
	set(&base.RequestID, over.RequestID)
	set(&base.ExperimentID, over.ExperimentID)
	return base
}

// TraceID is the span's trace id.
func (s *Span) TraceID() string { return s.snap.TraceID }

// SpanID is the span's id.
func (s *Span) SpanID() string { return s.snap.SpanID }

// Update changes the span and emits span_updated. fn receives the current snapshot
// to modify (set Attributes with [JSON], change Name...). Updates after End are ignored.
func (s *Span) Update(fn func(*schema.Span)) {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return
	}
	fn(&s.snap)
	s.mu.Unlock()
	s.emit(schema.SpanUpdated)
}

// EndOptions describe how a span ended.
type EndOptions struct {
	Output     any
	Attributes any // replaces the attributes when set
	Err        error
	EndTime    time.Time // defaults to now
}

// End ends the span and emits span_ended. A second End is ignored, as in Mastra.
func (s *Span) End(o EndOptions) {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return
	}
	s.done = true
	sn := &s.snap
	if o.Output != nil {
		sn.Output = toJSON(o.Output)
	}
	if o.Attributes != nil {
		sn.Attributes = toJSON(o.Attributes)
	}
	if o.Err != nil {
		sn.ErrorInfo = &schema.ErrorInfo{Message: o.Err.Error()}
	}
	sn.EndTime = o.EndTime
	if sn.EndTime.IsZero() {
		sn.EndTime = s.p.now()
	}
	if sn.EndTime.Before(sn.StartTime) {
		sn.EndTime = sn.StartTime
	}
	s.mu.Unlock()
	s.emit(schema.SpanEnded)
}

// Event emits an event span: a point in time with an output, only ever span_ended.
func (s *Span) Event(o SpanOptions, output any) {
	s.mu.Lock()
	parent := s.snap
	s.mu.Unlock()
	sn := schema.Span{
		TraceID: parent.TraceID, SpanID: NewSpanID(), ParentSpanID: parent.SpanID,
		Name: o.Name, Type: o.Type, Correlation: parent.Correlation,
		Attributes: toJSON(o.Attributes), Metadata: toJSON(o.Metadata), Output: toJSON(output),
		StartTime: o.StartTime, IsEvent: true, Version: 1,
	}
	sn.Tags = nil
	sn.EntityType, sn.EntityID, sn.EntityName = o.EntityType, o.EntityID, o.EntityName
	if sn.StartTime.IsZero() {
		sn.StartTime = s.p.now()
	}
	_ = s.p.Emit(&schema.Event{Type: schema.SpanEnded, Span: &sn})
}

// emit sends a copy of the current snapshot with the next version. The copy matters:
// Emit owns what it is given, and later updates must not change queued snapshots.
func (s *Span) emit(t schema.EventType) {
	s.mu.Lock()
	s.snap.Version++
	sn := s.snap
	s.mu.Unlock()
	_ = s.p.Emit(&schema.Event{Type: t, Span: &sn})
}

// JSON encodes v for a payload field; a jsontext.Value or []byte of JSON is kept as is.
// A value that cannot be encoded becomes {"error":"..."} rather than losing the span.
func JSON(v any) jsontext.Value { return toJSON(v) }

func toJSON(v any) jsontext.Value {
	switch x := v.(type) {
	case nil:
		return nil
	case jsontext.Value:
		return x
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": "spanpipe: cannot encode value: " + err.Error()})
	}
	return b
}

// NewTraceID returns a random 32-hex-digit trace id.
func NewTraceID() string { return randomHex(16) }

// NewSpanID returns a random 16-hex-digit span id.
func NewSpanID() string { return randomHex(8) }

// NewID returns a random 32-hex-digit id for logs, metrics, scores and feedback.
func NewID() string { return randomHex(16) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on supported platforms (Go 1.24+)
	return hex.EncodeToString(b)
}
