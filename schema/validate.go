package schema

import (
	"fmt"
	"math"
	"time"
)

// MinTime and MaxTime bound every timestamp an event may carry. They are the range of
// ClickHouse's DateTime64(9) (int64 nanoseconds since 1970, from 1900-01-01), which
// DuckDB's TIMESTAMP contains. A time outside it would fail the ClickHouse insert of
// the whole batch it is in, so it is rejected here, as one bad record.
var (
	MinTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Unix(0, math.MaxInt64).UTC() // 2262-04-11T23:47:16.854775807Z
)

// checkTime rejects a missing time and one outside [MinTime, MaxTime].
func checkTime(field string, t time.Time) error {
	switch {
	case t.IsZero():
		return invalid(field, "missing")
	case t.Before(MinTime) || t.After(MaxTime):
		return invalid(field, fmt.Sprintf("%s is outside the storable range %s to %s",
			t.UTC().Format(time.RFC3339Nano), MinTime.Format(time.RFC3339), MaxTime.Format(time.RFC3339Nano)))
	}
	return nil
}

// Validate checks that the event is complete enough to be stored: the payload matching
// its type is present, ids have the right shape and required fields are set. It
// returns the first problem found as a *[ValidationError].
func (e *Event) Validate() error {
	if e.SchemaVersion > Version || e.SchemaVersion < 0 {
		return fmt.Errorf("%w: %d (this build reads up to %d)", ErrUnsupportedVersion, e.SchemaVersion, Version)
	}
	if err := e.strayPayload(); err != nil {
		return err
	}
	switch e.Type {
	case SpanStarted, SpanUpdated, SpanEnded:
		if e.Span == nil {
			return invalid("exportedSpan", "missing for "+string(e.Type))
		}
		return e.Span.validate(e.Type)
	case LogEvent:
		if e.Log == nil {
			return invalid("log", "missing")
		}
		l := e.Log
		switch {
		case l.LogID == "":
			return invalid("log.logId", "empty")
		case l.Level == "":
			return invalid("log.level", "empty")
		}
		if err := checkTime("log.timestamp", l.Timestamp); err != nil {
			return err
		}
		return optionalIDs("log", l.TraceID, l.SpanID)
	case MetricEvent:
		if e.Metric == nil {
			return invalid("metric", "missing")
		}
		m := e.Metric
		switch {
		case m.MetricID == "":
			return invalid("metric.metricId", "empty")
		case m.Name == "":
			return invalid("metric.name", "empty")
		case math.IsNaN(m.Value) || math.IsInf(m.Value, 0):
			return invalid("metric.value", "not a finite number")
		}
		if err := checkTime("metric.timestamp", m.Timestamp); err != nil {
			return err
		}
		return optionalIDs("metric", m.TraceID, m.SpanID)
	case ScoreEvent:
		if e.Score == nil {
			return invalid("score", "missing")
		}
		s := e.Score
		switch {
		case s.ScoreID == "":
			return invalid("score.scoreId", "empty")
		case s.ScorerID == "":
			return invalid("score.scorerId", "empty")
		case math.IsNaN(s.Score) || math.IsInf(s.Score, 0):
			return invalid("score.score", "not a finite number")
		}
		if err := checkTime("score.timestamp", s.Timestamp); err != nil {
			return err
		}
		return optionalIDs("score", s.TraceID, s.SpanID)
	case FeedbackEvent:
		if e.Feedback == nil {
			return invalid("feedback", "missing")
		}
		f := e.Feedback
		switch {
		case f.FeedbackID == "":
			return invalid("feedback.feedbackId", "empty")
		case f.FeedbackType == "":
			return invalid("feedback.feedbackType", "empty")
		case len(f.Value) == 0:
			return invalid("feedback.value", "missing")
		case f.Value.Kind() != '0' && f.Value.Kind() != '"':
			return invalid("feedback.value", "must be a number or a string")
		}
		if err := checkTime("feedback.timestamp", f.Timestamp); err != nil {
			return err
		}
		return optionalIDs("feedback", f.TraceID, f.SpanID)
	case "":
		return invalid("type", "empty")
	default:
		return invalid("type", fmt.Sprintf("unknown event type %q", e.Type))
	}
}

// strayPayload rejects a payload that does not belong to the event's type: the
// envelope carries exactly one, and TraceID and the sinks pick the payload by
// presence, so a stray one would key or route the event by the wrong signal.
func (e *Event) strayPayload() error {
	sig := e.Signal()
	for _, p := range [...]struct {
		field string
		sig   Signal
		set   bool
	}{
		{"exportedSpan", SignalTracing, e.Span != nil},
		{"log", SignalLog, e.Log != nil},
		{"metric", SignalMetric, e.Metric != nil},
		{"score", SignalScore, e.Score != nil},
		{"feedback", SignalFeedback, e.Feedback != nil},
	} {
		if p.set && p.sig != sig && sig != "" {
			return invalid(p.field, "unexpected for "+string(e.Type))
		}
	}
	return nil
}

func (s *Span) validate(t EventType) error {
	if err := hexID("exportedSpan.traceId", s.TraceID, 32); err != nil {
		return err
	}
	if err := hexID("exportedSpan.id", s.SpanID, 16); err != nil {
		return err
	}
	if s.ParentSpanID != "" {
		if err := hexID("exportedSpan.parentSpanId", s.ParentSpanID, 16); err != nil {
			return err
		}
	}
	switch {
	case s.Name == "":
		return invalid("exportedSpan.name", "empty")
	case s.Type == "":
		return invalid("exportedSpan.type", "empty")
	case s.IsEvent && t != SpanEnded:
		return invalid("type", "an event span is only ever "+string(SpanEnded))
	}
	if err := checkTime("exportedSpan.startTime", s.StartTime); err != nil {
		return err
	}
	if s.EndTime.IsZero() {
		return nil
	}
	if err := checkTime("exportedSpan.endTime", s.EndTime); err != nil {
		return err
	}
	if s.EndTime.Before(s.StartTime) {
		return invalid("exportedSpan.endTime", "before startTime")
	}
	return nil
}

func optionalIDs(prefix, traceID, spanID string) error {
	if traceID != "" {
		if err := hexID(prefix+".traceId", traceID, 32); err != nil {
			return err
		}
	}
	if spanID != "" {
		if err := hexID(prefix+".spanId", spanID, 16); err != nil {
			return err
		}
	}
	return nil
}

// hexID accepts 1..max hex digits, as Mastra does for caller-supplied ids.
func hexID(field, id string, max int) error {
	if id == "" {
		return invalid(field, "empty")
	}
	if len(id) > max {
		return invalid(field, fmt.Sprintf("%d characters, want at most %d hex digits", len(id), max))
	}
	for i := 0; i < len(id); i++ {
		if !isHex[id[i]] {
			return invalid(field, fmt.Sprintf("not hexadecimal (%q at %d)", id[i], i))
		}
	}
	return nil
}

// isHex marks the hex digits: every span carries 48 of them, checked one by one.
var isHex = func() (t [256]bool) {
	for _, c := range "0123456789abcdefABCDEF" {
		t[c] = true
	}
	return t
}()

func invalid(field, reason string) error { return &ValidationError{Field: field, Reason: reason} }
