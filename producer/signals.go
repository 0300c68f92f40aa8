package producer

import (
	"github.com/spanpipe/spanpipe/schema"
)

// Log emits a log event; LogID and Timestamp are filled when empty.
func (p *Producer) Log(l *schema.Log) error {
	if l.LogID == "" {
		l.LogID = NewID()
	}
	if l.Timestamp.IsZero() {
		l.Timestamp = p.now()
	}
	return p.Emit(&schema.Event{Type: schema.LogEvent, Log: l})
}

// Metric emits a metric observation; MetricID and Timestamp are filled when empty.
func (p *Producer) Metric(m *schema.Metric) error {
	if m.MetricID == "" {
		m.MetricID = NewID()
	}
	if m.Timestamp.IsZero() {
		m.Timestamp = p.now()
	}
	return p.Emit(&schema.Event{Type: schema.MetricEvent, Metric: m})
}

// Score emits a score; ScoreID and Timestamp are filled when empty.
func (p *Producer) Score(s *schema.Score) error {
	if s.ScoreID == "" {
		s.ScoreID = NewID()
	}
	if s.Timestamp.IsZero() {
		s.Timestamp = p.now()
	}
	return p.Emit(&schema.Event{Type: schema.ScoreEvent, Score: s})
}

// Feedback emits feedback; FeedbackID and Timestamp are filled when empty.
func (p *Producer) Feedback(f *schema.Feedback) error {
	if f.FeedbackID == "" {
		f.FeedbackID = NewID()
	}
	if f.Timestamp.IsZero() {
		f.Timestamp = p.now()
	}
	return p.Emit(&schema.Event{Type: schema.FeedbackEvnt, Feedback: f})
}
