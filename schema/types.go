package schema

import (
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// Version is the envelope schema version this build writes and the newest it reads.
const Version = 1

// EventType discriminates the envelope. The values are Mastra's.
type EventType string

// Event types.
const (
	SpanStarted   EventType = "span_started"
	SpanUpdated   EventType = "span_updated"
	SpanEnded     EventType = "span_ended"
	LogEvent      EventType = "log"
	MetricEvent   EventType = "metric"
	ScoreEvent    EventType = "score"
	FeedbackEvent EventType = "feedback"
)

// Signal is the kind of data an event carries; sinks declare which signals they store.
type Signal string

// Signals.
const (
	SignalTracing  Signal = "tracing"
	SignalLog      Signal = "log"
	SignalMetric   Signal = "metric"
	SignalScore    Signal = "score"
	SignalFeedback Signal = "feedback"
)

// AllSignals lists every signal, in a stable order used for metric labels.
var AllSignals = []Signal{SignalTracing, SignalLog, SignalMetric, SignalScore, SignalFeedback}

// Event is the envelope for every signal. Exactly one payload is set, matching Type.
//
// Optional fields use omitzero rather than omitempty: in this JSON library omitempty
// also drops a present but empty object, array or string (so "metadata":{} or
// "correlationContext":{} would not survive a round trip) and never drops false.
type Event struct {
	// SchemaVersion is the envelope version; a missing value (0) is read as 1 so that
	// events from Mastra-shaped producers that do not set it are accepted.
	SchemaVersion int       `json:"schemaVersion,omitzero"`
	Type          EventType `json:"type"`
	Span          *Span     `json:"exportedSpan,omitzero"`
	Log           *Log      `json:"log,omitzero"`
	Metric        *Metric   `json:"metric,omitzero"`
	Score         *Score    `json:"score,omitzero"`
	Feedback      *Feedback `json:"feedback,omitzero"`

	// Repairs lists the repairs [Decode] made to accept the record, each kind once;
	// nil for a record taken as it was. It is not part of the wire form.
	Repairs []Repair `json:"-"`
}

// Repair is a kind of defect [Decode] repairs instead of rejecting the record. The
// values are metric label values (spanpipe_pipeline_repaired_records_total{kind}).
type Repair string

// Repairs.
const (
	// RepairLoneSurrogate: a JSON string held a \uD800-\uDFFF escape that is not half
	// of a surrogate pair. JSON.stringify writes one for a JavaScript string cut inside
	// an emoji (routine in streamed LLM output); RFC 8259's grammar allows it, UTF-8
	// cannot hold it. Each one is replaced with U+FFFD, as a UTF-8 encoder would.
	RepairLoneSurrogate Repair = "lone_surrogate"
)

// AllRepairs lists every repair kind, for initialising metric labels.
var AllRepairs = []Repair{RepairLoneSurrogate}

// Signal returns the signal of the event's type, or "" for an unknown type.
func (e *Event) Signal() Signal { return e.Type.Signal() }

// Signal returns the signal of events of type t, or "" for an unknown type.
func (t EventType) Signal() Signal {
	switch t {
	case SpanStarted, SpanUpdated, SpanEnded:
		return SignalTracing
	case LogEvent:
		return SignalLog
	case MetricEvent:
		return SignalMetric
	case ScoreEvent:
		return SignalScore
	case FeedbackEvent:
		return SignalFeedback
	}
	return ""
}

// TraceID returns the trace the event belongs to ("" when it belongs to none). It is
// the Kafka record key, so that a trace's events stay in order on one partition.
func (e *Event) TraceID() string {
	switch {
	case e.Span != nil:
		return e.Span.TraceID
	case e.Log != nil:
		return e.Log.TraceID
	case e.Metric != nil:
		return e.Metric.TraceID
	case e.Score != nil:
		return e.Score.TraceID
	case e.Feedback != nil:
		return e.Feedback.TraceID
	}
	return ""
}

// Correlation holds the entity hierarchy and the context ids shared by spans and the
// other signals. On a span these are top-level fields; on the other signals they sit in
// "correlationContext", as in Mastra.
type Correlation struct {
	EntityType            string `json:"entityType,omitempty"`
	EntityID              string `json:"entityId,omitempty"`
	EntityName            string `json:"entityName,omitempty"`
	EntityVersionID       string `json:"entityVersionId,omitempty"`
	ParentEntityType      string `json:"parentEntityType,omitempty"`
	ParentEntityID        string `json:"parentEntityId,omitempty"`
	ParentEntityName      string `json:"parentEntityName,omitempty"`
	ParentEntityVersionID string `json:"parentEntityVersionId,omitempty"`
	RootEntityType        string `json:"rootEntityType,omitempty"`
	RootEntityID          string `json:"rootEntityId,omitempty"`
	RootEntityName        string `json:"rootEntityName,omitempty"`
	RootEntityVersionID   string `json:"rootEntityVersionId,omitempty"`

	UserID         string `json:"userId,omitempty"`
	OrganizationID string `json:"organizationId,omitempty"`
	ResourceID     string `json:"resourceId,omitempty"`
	RunID          string `json:"runId,omitempty"`
	SessionID      string `json:"sessionId,omitempty"`
	ThreadID       string `json:"threadId,omitempty"`
	RequestID      string `json:"requestId,omitempty"`
	Environment    string `json:"environment,omitempty"`
	Source         string `json:"source,omitempty"`
	ServiceName    string `json:"serviceName,omitempty"`
	ExperimentID   string `json:"experimentId,omitempty"`

	Tags []string `json:"tags,omitzero"`
}

// Span is a full snapshot of a span at one point of its life.
type Span struct {
	TraceID              string   `json:"traceId"`
	SpanID               string   `json:"id"`
	ParentSpanID         string   `json:"parentSpanId,omitempty"`
	ExternalParentSpanID string   `json:"externalParentSpanId,omitempty"`
	Name                 string   `json:"name"`
	Type                 SpanType `json:"type"`

	Correlation `json:",inline"`

	StartTime time.Time `json:"startTime"`
	// EndTime is zero while the span runs, and on event spans.
	EndTime time.Time `json:"endTime,omitzero"`

	// Payloads are kept as raw JSON: the pipeline never needs their structure, and
	// not decoding them is most of what makes decoding fast.
	Attributes     jsontext.Value `json:"attributes,omitzero"`
	Metadata       jsontext.Value `json:"metadata,omitzero"`
	Input          jsontext.Value `json:"input,omitzero"`
	Output         jsontext.Value `json:"output,omitzero"`
	ErrorInfo      *ErrorInfo     `json:"errorInfo,omitzero"`
	RequestContext jsontext.Value `json:"requestContext,omitzero"`

	IsEvent    bool `json:"isEvent,omitzero"`
	IsRootSpan bool `json:"isRootSpan,omitzero"`
	IsInternal bool `json:"isInternal,omitzero"`

	// Version increases with every snapshot of the span; the highest one wins in the
	// store. When a producer does not set it, [Decode] derives it from the event type
	// (started 1, updated 2, ended 3), which orders the lifecycle but not several updates.
	Version uint64 `json:"version,omitzero"`

	// Event is the lifecycle event this snapshot came with (span_started, span_updated
	// or span_ended). It is set by Decode and is not part of the wire form.
	Event EventType `json:"-"`
}

// Ended reports whether the snapshot is final: the span has ended, or is an event span.
func (s *Span) Ended() bool { return s.IsEvent || s.Event == SpanEnded || !s.EndTime.IsZero() }

// Rank orders the lifecycle events of one version: ended beats updated beats started
// (and an event span, final by nature, ranks as ended).
func (s *Span) Rank() uint8 {
	switch {
	case s.IsEvent || s.Event == SpanEnded:
		return 3
	case s.Event == SpanUpdated:
		return 2
	case s.Event == SpanStarted:
		return 1
	}
	return 0
}

// Supersedes reports whether snapshot s replaces o of the same span: a higher version
// wins, and on a tie the higher rank, so that the newest snapshot wins whatever the
// arrival order. Equal snapshots do not supersede each other (the one held stays).
func (s *Span) Supersedes(o *Span) bool {
	if s.Version != o.Version {
		return s.Version > o.Version
	}
	return s.Rank() > o.Rank()
}

// ErrorInfo describes the error a span ended with.
type ErrorInfo struct {
	Message  string         `json:"message"`
	ID       string         `json:"id,omitempty"`
	Name     string         `json:"name,omitempty"`
	Stack    string         `json:"stack,omitempty"`
	Domain   string         `json:"domain,omitempty"`
	Category string         `json:"category,omitempty"`
	Details  jsontext.Value `json:"details,omitzero"`
}

// Log is one log line, optionally tied to a span.
type Log struct {
	LogID       string         `json:"logId"`
	Timestamp   time.Time      `json:"timestamp"`
	TraceID     string         `json:"traceId,omitempty"`
	SpanID      string         `json:"spanId,omitempty"`
	Level       string         `json:"level"`
	Message     string         `json:"message"`
	Data        jsontext.Value `json:"data,omitzero"`
	Correlation *Correlation   `json:"correlationContext,omitzero"`
	Metadata    jsontext.Value `json:"metadata,omitzero"`
	// Tags is Mastra's deprecated top-level tags of a log; [Decode] copies them to
	// Correlation.Tags when that has none.
	Tags []string `json:"tags,omitzero"`
}

// Metric is one raw observation; aggregation happens at query time.
type Metric struct {
	MetricID    string            `json:"metricId"`
	Timestamp   time.Time         `json:"timestamp"`
	TraceID     string            `json:"traceId,omitempty"`
	SpanID      string            `json:"spanId,omitempty"`
	Name        string            `json:"name"`
	Value       float64           `json:"value"`
	Labels      map[string]string `json:"labels,omitzero"`
	Correlation *Correlation      `json:"correlationContext,omitzero"`
	CostContext *CostContext      `json:"costContext,omitzero"`
	Metadata    jsontext.Value    `json:"metadata,omitzero"`
}

// CostContext is the estimated cost attached to a token metric.
type CostContext struct {
	Provider      string         `json:"provider,omitempty"`
	Model         string         `json:"model,omitempty"`
	EstimatedCost *float64       `json:"estimatedCost,omitzero"`
	CostUnit      string         `json:"costUnit,omitempty"`
	CostMetadata  jsontext.Value `json:"costMetadata,omitzero"`
}

// Score is the result of a scorer run.
type Score struct {
	ScoreID       string    `json:"scoreId"`
	Timestamp     time.Time `json:"timestamp"`
	TraceID       string    `json:"traceId,omitempty"`
	SpanID        string    `json:"spanId,omitempty"`
	ScoreTraceID  string    `json:"scoreTraceId,omitempty"`
	ScorerID      string    `json:"scorerId"`
	ScorerName    string    `json:"scorerName,omitempty"`
	ScorerVersion string    `json:"scorerVersion,omitempty"`
	ScoreSource   string    `json:"scoreSource,omitempty"`
	// Source is Mastra's deprecated name of ScoreSource; [Decode] copies it there
	// when ScoreSource is empty.
	Source           string         `json:"source,omitempty"`
	Score            float64        `json:"score"`
	Reason           string         `json:"reason,omitempty"`
	TargetEntityType string         `json:"targetEntityType,omitempty"`
	Correlation      *Correlation   `json:"correlationContext,omitzero"`
	Metadata         jsontext.Value `json:"metadata,omitzero"`
	// ExperimentID is Mastra's deprecated top-level experimentId; [Decode] copies it
	// to Correlation.ExperimentID when that is empty.
	ExperimentID string `json:"experimentId,omitempty"`
}

// Feedback is a user's or reviewer's judgement of a trace or span.
type Feedback struct {
	FeedbackID     string    `json:"feedbackId"`
	Timestamp      time.Time `json:"timestamp"`
	TraceID        string    `json:"traceId,omitempty"`
	SpanID         string    `json:"spanId,omitempty"`
	FeedbackSource string    `json:"feedbackSource,omitempty"`
	FeedbackType   string    `json:"feedbackType"`
	// Value is a JSON number or string.
	Value          jsontext.Value `json:"value"`
	Comment        string         `json:"comment,omitempty"`
	SourceID       string         `json:"sourceId,omitempty"`
	FeedbackUserID string         `json:"feedbackUserId,omitempty"`
	Correlation    *Correlation   `json:"correlationContext,omitzero"`
	Metadata       jsontext.Value `json:"metadata,omitzero"`

	// Mastra's deprecated names, still emitted: [Decode] copies Source to
	// FeedbackSource, UserID to FeedbackUserID and ExperimentID to
	// Correlation.ExperimentID, each when the current field is empty.
	Source       string `json:"source,omitempty"`
	UserID       string `json:"userId,omitempty"`
	ExperimentID string `json:"experimentId,omitempty"`
}
