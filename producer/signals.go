package producer

import (
	"time"

	"github.com/spanpipe/spanpipe/schema"
)

// Log emits a log event; LogID and Timestamp are filled when empty.
func (p *Producer) Log(l *schema.Log) error {
	p.identify(&l.LogID, &l.Timestamp)
	return p.Emit(&schema.Event{Type: schema.LogEvent, Log: l})
}

// Metric emits a metric observation; MetricID and Timestamp are filled when empty.
func (p *Producer) Metric(m *schema.Metric) error {
	p.identify(&m.MetricID, &m.Timestamp)
	return p.Emit(&schema.Event{Type: schema.MetricEvent, Metric: m})
}

// Score emits a score; ScoreID and Timestamp are filled when empty.
func (p *Producer) Score(s *schema.Score) error {
	p.identify(&s.ScoreID, &s.Timestamp)
	return p.Emit(&schema.Event{Type: schema.ScoreEvent, Score: s})
}

// Feedback emits feedback; FeedbackID and Timestamp are filled when empty.
func (p *Producer) Feedback(f *schema.Feedback) error {
	p.identify(&f.FeedbackID, &f.Timestamp)
	return p.Emit(&schema.Event{Type: schema.FeedbackEvent, Feedback: f})
}

// identify fills an empty id (the sinks' idempotency key, so it is fixed before the
// first send and never changes on retries) and an empty timestamp.
func (p *Producer) identify(id *string, ts *time.Time) {
	if *id == "" {
		*id = NewID()
	}
	if ts.IsZero() {
		*ts = p.now()
	}
}
