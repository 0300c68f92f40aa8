package pipeline

import (
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Unit is a sealed batch: the rows for the sink, the records they came from, and the
// records that cannot be stored. The consumer keeps the Kafka offsets a unit covers;
// the unit only knows its records.
type Unit struct {
	batch   Batch
	spanIdx map[spanKey]int
	// items are the records whose events are in batch, in the order they were added;
	// a rejected batch is rebuilt from halves of them.
	items   []item
	drops   []drop
	sources map[topicPartition]*offsetRange
	records int
	bytes   int64
	firstAt time.Time
	trigger Trigger
	// seq orders units for [Batcher.Done]: the last unit a merged unit contains.
	seq uint64
}

type item struct {
	rec *kgo.Record
	ev  *schema.Event
}

// drop is a record that will not be stored, and why.
type drop struct {
	rec    *kgo.Record
	signal string
	reason dropalerts.Reason
	err    error
	trace  string
}

type spanKey struct{ trace, span string }

type topicPartition struct {
	topic     string
	partition int32
}

type offsetRange struct{ first, last int64 }

// Records is the number of Kafka records in the unit (stored, skipped and dropped).
func (u *Unit) Records() int { return u.records }

// Batch is what the unit writes to the sink.
func (u *Unit) Batch() *Batch { return &u.batch }

// Trigger is why the unit was sealed ("" for a merged unit).
func (u *Unit) Trigger() Trigger { return u.trigger }

// add puts the event of it into the batch, coalescing a span's snapshots into the one
// that supersedes the others. It reports whether a snapshot was coalesced.
func (u *Unit) add(it item) (coalesced bool) {
	u.items = append(u.items, it)
	b := &u.batch
	switch ev := it.ev; ev.Signal() {
	case schema.SignalTracing:
		s := ev.Span
		k := spanKey{s.TraceID, s.SpanID}
		if i, ok := u.spanIdx[k]; ok {
			if s.Supersedes(b.Spans[i]) {
				b.Spans[i] = s
			}
			return true
		}
		u.spanIdx[k] = len(b.Spans)
		b.Spans = append(b.Spans, s)
	case schema.SignalLog:
		b.Logs = append(b.Logs, ev.Log)
	case schema.SignalMetric:
		b.Metrics = append(b.Metrics, ev.Metric)
	case schema.SignalScore:
		b.Scores = append(b.Scores, ev.Score)
	case schema.SignalFeedback:
		b.Feedback = append(b.Feedback, ev.Feedback)
	}
	return false
}

// seal fills the batch's source ranges.
func (u *Unit) seal() {
	u.batch.Sources = make([]SourceRange, 0, len(u.sources))
	for tp, r := range u.sources {
		u.batch.Sources = append(u.batch.Sources, SourceRange{Topic: tp.topic, Partition: tp.partition, First: r.first, Last: r.last})
	}
}

// fromItems builds a unit holding only items (no drops): a part of a rejected batch.
// Its sources cover only those records, so that a sink deriving an idempotency token
// from them never mistakes a part for the whole.
func fromItems(strategy Strategy, items []item) *Unit {
	u := &Unit{batch: Batch{Strategy: strategy}, spanIdx: make(map[spanKey]int), sources: make(map[topicPartition]*offsetRange)}
	for _, it := range items {
		u.add(it)
		u.cover(it.rec)
	}
	u.seal()
	return u
}

func (u *Unit) cover(rec *kgo.Record) {
	tp := topicPartition{rec.Topic, rec.Partition}
	if r := u.sources[tp]; r == nil {
		u.sources[tp] = &offsetRange{first: rec.Offset, last: rec.Offset}
	} else {
		r.first, r.last = min(r.first, rec.Offset), max(r.last, rec.Offset)
	}
}

// Merge combines sealed units into one, in order, coalescing span snapshots across
// them. The consumer merges what queued up behind a slow write, so a store that
// favours large transactions (DuckDB, ClickHouse) gets them exactly when it is behind,
// while a quiet pipeline keeps small batches and low latency. Pass the merged unit,
// not its parts, to [Batcher.Done].
func Merge(units []*Unit) *Unit {
	switch len(units) {
	case 0:
		return nil
	case 1:
		return units[0]
	}
	n := 0
	for _, u := range units {
		n += len(u.items)
	}
	m := &Unit{batch: Batch{Strategy: units[0].batch.Strategy}, spanIdx: make(map[spanKey]int, n),
		items: make([]item, 0, n), sources: make(map[topicPartition]*offsetRange), firstAt: units[0].firstAt}
	for _, u := range units {
		m.records += u.records
		m.bytes += u.bytes
		m.seq = max(m.seq, u.seq)
		for _, it := range u.items {
			m.add(it)
		}
		m.drops = append(m.drops, u.drops...)
		for tp, r := range u.sources {
			if cur := m.sources[tp]; cur == nil {
				c := *r
				m.sources[tp] = &c
			} else {
				cur.first, cur.last = min(cur.first, r.first), max(cur.last, r.last)
			}
		}
	}
	m.seal()
	return m
}
