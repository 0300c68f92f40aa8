package pipeline

import (
	"container/list"
	"time"
)

// Under insert-only a running snapshot is skipped: its span is stored when it ends.
// A span that never ends (the app crashed, the producer lost its span_ended) would
// therefore vanish among the ordinary skips. unendedTracker keeps the spans seen
// started but not yet ended, bounded in count and age, so that the ones that never
// end are counted (spanpipe_pipeline_spans_never_ended_total) instead of lost from
// sight. It is an observation, not storage: nothing is dead-lettered for it, because
// the record that would be kept is a running snapshot the strategy chose not to
// store. Batch-with-updates stores running spans, so it needs no tracker.
//
// Every event of a span reaches the same member (records are keyed by trace id), so
// one member's tracker sees a span's start and end unless a rebalance moves the
// partition between them: then the span is counted as never ended by the member that
// lost it although it ended elsewhere. The count is an upper bound, good for an alert
// on a trend, not for accounting.
type unendedTracker struct {
	maxSpans int
	maxAge   time.Duration
	order    *list.List // of *unended, oldest first
	byKey    map[spanKey]*list.Element
}

type unended struct {
	key  spanKey
	seen time.Time
}

// Defaults of the tracker: a span running longer than an hour is counted as never
// ended, and at most 100,000 are tracked (about 10 MB).
const (
	unendedMaxSpans = 100_000
	unendedMaxAge   = time.Hour
)

func newUnendedTracker(maxSpans int, maxAge time.Duration) *unendedTracker {
	return &unendedTracker{maxSpans: maxSpans, maxAge: maxAge, order: list.New(), byKey: make(map[spanKey]*list.Element)}
}

// started notes a running snapshot seen at now; it returns how many tracked spans were
// given up on (too old, or pushed out by the bound).
func (t *unendedTracker) started(k spanKey, now time.Time) (expired int) {
	if _, ok := t.byKey[k]; !ok {
		// The ids share one allocation with every other string of their span (schema's
		// decoder allocates them together): a copy keeps only the ids alive.
		ids := k.trace + k.span
		k = spanKey{ids[:len(k.trace)], ids[len(k.trace):]}
		t.byKey[k] = t.order.PushBack(&unended{key: k, seen: now})
	}
	return t.expire(now)
}

// ended forgets a span that ended.
func (t *unendedTracker) ended(k spanKey) {
	if e, ok := t.byKey[k]; ok {
		t.order.Remove(e)
		delete(t.byKey, k)
	}
}

func (t *unendedTracker) expire(now time.Time) (n int) {
	for e := t.order.Front(); e != nil; e = t.order.Front() {
		u := e.Value.(*unended)
		if t.order.Len() <= t.maxSpans && now.Sub(u.seen) < t.maxAge {
			break
		}
		t.order.Remove(e)
		delete(t.byKey, u.key)
		n++
	}
	return n
}

func (t *unendedTracker) len() int { return t.order.Len() }
