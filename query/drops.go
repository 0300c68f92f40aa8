package query

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/schema"
)

// Bounds of the drop summary: it lives in memory, fed by the drop topic, so what it
// keeps is capped whatever the topic holds.
const (
	// DropWindow is how far back the summary counts.
	DropWindow = 24 * time.Hour
	// dropSlot is the resolution the counts are kept at.
	dropSlot = time.Minute
	// MaxDropSamples is how many of the newest drop events the summary keeps whole.
	MaxDropSamples = 50
	// maxDropBuckets bounds the series an API request may ask for.
	maxDropBuckets = 1440
)

// unknownLabel stands for a reason or signal outside the allow-lists: the drop topic
// is input like any other and must not grow the summary's keys.
const unknownLabel = "unknown"

type dropKey struct {
	slot           int64 // unix minute
	reason, signal string
}

// Drops is the drop summary: counts of dropped records by reason and signal per
// minute over the last [DropWindow], and the newest [MaxDropSamples] drop events.
// Safe for concurrent use.
type Drops struct {
	topic string
	now   func() time.Time

	mu         sync.Mutex
	counts     map[dropKey]int64
	samples    []dropalerts.Event // newest last
	unreadable int64
	evicted    int64 // the minute evict last ran for
}

// NewDrops returns an empty summary of topic.
func NewDrops(topic string) *Drops {
	return &Drops{topic: topic, now: time.Now, counts: make(map[dropKey]int64)}
}

// Add counts one record of the drop topic: drop events are counted, dead letters and
// other records are skipped (each dead letter has its drop event), and unreadable
// drop events are counted as such.
func (d *Drops) Add(r *kgo.Record) {
	kind := dropalerts.Kind(r)
	if kind != "" && kind != dropalerts.KindDropEvent {
		return
	}
	ev, err := dropalerts.ParseEvent(r.Value)
	if err != nil || ev.Type != "drop" {
		if kind == dropalerts.KindDropEvent {
			d.mu.Lock()
			d.unreadable++
			d.mu.Unlock()
		}
		return
	}
	t := ev.LastTime
	if t.IsZero() {
		t = ev.FirstTime
	}
	if t.IsZero() {
		t = r.Timestamp
	}
	ev.LastTime = t.UTC()
	reason, signal := labels(*ev)
	if len(ev.SampleTraceIDs) > dropalerts.MaxSampleTraceIDs {
		ev.SampleTraceIDs = ev.SampleTraceIDs[:dropalerts.MaxSampleTraceIDs]
	}
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.evict(now)
	if t.Before(now.Add(-DropWindow)) || ev.Count < 0 {
		return
	}
	d.counts[dropKey{t.Unix() / 60, reason, signal}] += int64(ev.Count)
	d.samples = append(d.samples, *ev)
	if len(d.samples) > MaxDropSamples {
		d.samples = slices.Delete(d.samples, 0, len(d.samples)-MaxDropSamples)
	}
}

// evict forgets counts older than the window, once a minute at most: Add runs it for
// every record while the topic is read from its start.
func (d *Drops) evict(now time.Time) {
	oldest := now.Add(-DropWindow).Unix() / 60
	if oldest == d.evicted {
		return
	}
	d.evicted = oldest
	for k := range d.counts {
		if k.slot < oldest {
			delete(d.counts, k)
		}
	}
}

// DropCount is the number of records lost for one reason and signal.
type DropCount struct {
	Reason string `json:"reason"`
	Signal string `json:"signal"`
	Count  int64  `json:"count"`
}

// DropBucket is one interval of the series.
type DropBucket struct {
	Start  time.Time   `json:"start"`
	Counts []DropCount `json:"counts"`
}

// DropSummary is what GET /api/v1/drops returns.
type DropSummary struct {
	Topic         string       `json:"topic"`
	From          time.Time    `json:"from"`
	To            time.Time    `json:"to"`
	BucketSeconds int64        `json:"bucketSeconds"`
	Totals        []DropCount  `json:"totals"`
	Series        []DropBucket `json:"series"`
	// Samples are the newest drop events in the range, newest first.
	Samples []dropalerts.Event `json:"samples"`
	// Unreadable counts records marked as drop events that did not parse.
	Unreadable int64 `json:"unreadable"`
}

// DropQuery selects a drop summary; zero From/To mean the whole window.
type DropQuery struct {
	From, To time.Time
	Bucket   time.Duration
	Reason   string
	Signal   string
	Samples  int
}

// Summary answers q, after checking it against the summary's bounds.
func (d *Drops) Summary(q DropQuery) (*DropSummary, error) {
	now := d.now().UTC()
	if q.To.IsZero() || q.To.After(now) {
		q.To = now
	}
	if q.From.IsZero() || q.From.Before(now.Add(-DropWindow)) {
		q.From = now.Add(-DropWindow)
	}
	var errs []error
	if !q.From.Before(q.To) {
		errs = append(errs, invalidf("from must be before to (and within the last %s)", DropWindow))
	}
	if q.Reason != "" && q.Reason != unknownLabel && !dropalerts.Reason(q.Reason).Known() {
		errs = append(errs, invalidf("reason: unknown %q (known: %v)", clip(q.Reason), dropalerts.AllReasons))
	}
	if q.Signal != "" && q.Signal != unknownLabel && !slices.Contains(schema.AllSignals, schema.Signal(q.Signal)) {
		errs = append(errs, invalidf("signal: unknown %q (known: %v)", clip(q.Signal), schema.AllSignals))
	}
	if q.Samples < 0 || q.Samples > MaxDropSamples {
		errs = append(errs, invalidf("samples must be 0 to %d, got %d", MaxDropSamples, q.Samples))
	}
	span := q.To.Sub(q.From)
	if q.Bucket == 0 {
		q.Bucket = max(dropSlot, (span / 60).Truncate(dropSlot))
	}
	if q.Bucket < dropSlot || q.Bucket%dropSlot != 0 || q.Bucket > DropWindow {
		errs = append(errs, invalidf("bucket must be whole minutes from 1m to %s, got %s", DropWindow, q.Bucket))
	} else if span/q.Bucket > maxDropBuckets {
		errs = append(errs, invalidf("bucket %s over %s is more than %d buckets", q.Bucket, span, maxDropBuckets))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	match := func(reason, signal string) bool {
		return (q.Reason == "" || q.Reason == reason) && (q.Signal == "" || q.Signal == signal)
	}
	start := q.From.Truncate(q.Bucket)
	s := &DropSummary{Topic: d.topic, From: q.From, To: q.To, BucketSeconds: int64(q.Bucket / time.Second),
		Totals: []DropCount{}, Series: []DropBucket{}, Samples: []dropalerts.Event{}}
	totals := map[[2]string]int64{}
	buckets := map[int64]map[[2]string]int64{}
	d.mu.Lock()
	d.evict(now)
	for k, n := range d.counts {
		t := time.Unix(k.slot*60, 0).UTC()
		if t.Before(q.From.Truncate(dropSlot)) || !t.Before(q.To) || !match(k.reason, k.signal) {
			continue
		}
		rs := [2]string{k.reason, k.signal}
		totals[rs] += n
		b := int64(t.Sub(start) / q.Bucket)
		if buckets[b] == nil {
			buckets[b] = map[[2]string]int64{}
		}
		buckets[b][rs] += n
	}
	for i := len(d.samples) - 1; i >= 0 && len(s.Samples) < q.Samples; i-- {
		e := d.samples[i]
		if !e.LastTime.Before(q.From) && !e.LastTime.After(q.To) && match(labels(e)) {
			s.Samples = append(s.Samples, e)
		}
	}
	s.Unreadable = d.unreadable
	d.mu.Unlock()
	s.Totals = sortedCounts(totals)
	for b := range int64(span/q.Bucket) + 1 {
		if c := buckets[b]; c != nil {
			s.Series = append(s.Series, DropBucket{Start: start.Add(time.Duration(b) * q.Bucket), Counts: sortedCounts(c)})
		}
	}
	return s, nil
}

func labels(e dropalerts.Event) (reason, signal string) {
	reason, signal = string(e.Reason), string(e.Signal)
	if !e.Reason.Known() {
		reason = unknownLabel
	}
	if !slices.Contains(schema.AllSignals, e.Signal) {
		signal = unknownLabel
	}
	return reason, signal
}

func sortedCounts(m map[[2]string]int64) []DropCount {
	out := make([]DropCount, 0, len(m))
	for k, n := range m {
		out = append(out, DropCount{Reason: k[0], Signal: k[1], Count: n})
	}
	slices.SortFunc(out, func(a, b DropCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Reason, b.Reason), strings.Compare(a.Signal, b.Signal))
	})
	return out
}

// DropFeed reads the drop topic from its start into a [Drops]: every partition
// directly, no consumer group, nothing committed (it only reads).
type DropFeed struct {
	Drops *Drops
	cl    *kgo.Client
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

// StartDropFeed starts reading topic with a client built from opts (brokers,
// security); Close stops it and waits.
func StartDropFeed(ctx context.Context, topic string, log *slog.Logger, opts ...kgo.Opt) (*DropFeed, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ClientID("spanpipe-explorer-drops"))...)
	if err != nil {
		return nil, fmt.Errorf("explorer: drop topic %s: %w", topic, err)
	}
	ctx, stop := context.WithCancel(ctx)
	f := &DropFeed{Drops: NewDrops(topic), cl: cl, stop: stop}
	f.wg.Go(func() {
		var lastErr string
		for {
			fetches := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fetches.EachError(func(t string, p int32, err error) {
				if s := err.Error(); s != lastErr { // kgo retries; say each new problem once
					lastErr = s
					log.Warn("reading the drop topic", "topic", t, "partition", p, "err", err)
				}
			})
			fetches.EachRecord(f.Drops.Add)
		}
	})
	return f, nil
}

// Close stops the feed and waits for it.
func (f *DropFeed) Close() {
	f.stop()
	f.wg.Wait()
	f.cl.Close()
}
