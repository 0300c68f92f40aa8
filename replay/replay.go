// Package replay re-publishes dead letters from the dead-letter topic to the topic
// and partition they came from, with their original key, value, timestamp and
// headers, so that the consumers store them once the cause of their failure is fixed.
//
// What it guards against: publishing anywhere the operator did not allow (the
// headers of a dead letter are data anyone with write access to the dead-letter
// topic can forge, so the target topic must be in [Config.AllowedTopics]); batches
// the target topic rejects (writes are cut to its real max.message.bytes); truncated
// dead letters (never re-published); and multiplying poison. Every re-published
// record carries its lineage (dropalerts.HeaderReplayOf, the coordinates of the first
// dead letter it descends from, and dropalerts.HeaderReplayCount), so a copy that
// fails again is recognisably the same failure; a run replays each lineage at most
// once; and a consumer group ([Config.Group]) remembers how far runs got, so the next
// run starts after what was replayed. Poison replayed twice is still the same number
// of failures, not twice as many.
//
// [Run] owns its Kafka client and returns after closing it. It starts no goroutines
// of its own. No metrics: it is a command, its [Result] is the report.
package replay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config says what to replay and where it may go.
type Config struct {
	// DeadLetterTopic holds the dead letters (drops.dead_letter_topic, or the drop
	// topic). Default "spanpipe.drops".
	DeadLetterTopic string
	// AllowedTopics are the only topics replay publishes to, whatever a dead letter's
	// headers say; dead letters from other topics are counted and left. Default
	// ["spanpipe.spans"] (the consumers' default topics). Must not include
	// DeadLetterTopic.
	AllowedTopics []string
	// Group is the consumer group whose committed offsets on DeadLetterTopic record
	// how far replay got: a run starts there and commits, after publishing, up to
	// the first dead letter it left for a later run (filtered out, not allowed, too
	// large, failed). Empty remembers nothing. Default "spanpipe-replay".
	Group string
	// FromStart ignores what Group remembers and reads from the start of the topic.
	FromStart bool
	// Filter selects dead letters; the zero Filter (with Partition -1) selects all.
	Filter Filter
	// DryRun counts what would be replayed, and publishes and commits nothing.
	DryRun bool
	// IdleTimeout stops reading when nothing arrives for this long before the end
	// offsets captured at the start are reached. Default 30s.
	IdleTimeout time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		DeadLetterTopic: "spanpipe.drops",
		AllowedTopics:   []string{"spanpipe.spans"},
		Group:           "spanpipe-replay",
		Filter:          Filter{Partition: -1, From: -1, To: -1},
		IdleTimeout:     30 * time.Second,
	}
}

// Filter selects dead letters; all its conditions must hold.
type Filter struct {
	Reasons     []dropalerts.Reason // any of these; empty: any
	SourceTopic string              // empty: any
	Partition   int                 // source partition; -1: any
	// From and To bound the source offsets (with Partition); -1: unbounded.
	From, To int64
	// Since and Until bound the first failure (the record's timestamp when absent).
	Since, Until time.Time
}

// Validate reports every problem, named by the command line's flags.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !dropalerts.ValidTopicName(c.DeadLetterTopic) {
		bad("--deadletter-topic: %q is not a Kafka topic name", c.DeadLetterTopic)
	}
	if len(c.AllowedTopics) == 0 {
		bad("--to-topics: at least one topic replay may publish to is needed")
	}
	for _, t := range c.AllowedTopics {
		switch {
		case !dropalerts.ValidTopicName(t):
			bad("--to-topics: %q is not a Kafka topic name", t)
		case t == c.DeadLetterTopic:
			bad("--to-topics: %q is the dead-letter topic itself", t)
		}
	}
	if c.IdleTimeout <= 0 {
		bad("--idle-timeout must be > 0, got %s", c.IdleTimeout)
	}
	f := c.Filter
	for _, r := range f.Reasons {
		if !r.Known() {
			bad("--reason: unknown reason %q (known: %v)", r, dropalerts.AllReasons)
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		bad("--until is before --since")
	}
	if (f.From >= 0 || f.To >= 0) && f.Partition < 0 {
		bad("--from-offset and --to-offset need --source-partition (offsets are per partition)")
	}
	if f.From >= 0 && f.To >= 0 && f.To < f.From {
		bad("--to-offset is below --from-offset")
	}
	return errors.Join(errs...)
}

func (f *Filter) match(d *dropalerts.DeadLetterInfo, ts time.Time) bool {
	if len(f.Reasons) > 0 && !slices.Contains(f.Reasons, d.Reason) {
		return false
	}
	if f.SourceTopic != "" && d.SourceTopic != f.SourceTopic {
		return false
	}
	if f.Partition >= 0 && int(d.SourcePartition) != f.Partition {
		return false
	}
	if (f.From >= 0 && d.SourceOffset < f.From) || (f.To >= 0 && d.SourceOffset > f.To) {
		return false
	}
	t := d.FirstFailure
	if t.IsZero() {
		t = ts
	}
	return (f.Since.IsZero() || !t.Before(f.Since)) && (f.Until.IsZero() || !t.After(f.Until))
}

// Stats count what a run did with the records it read.
type Stats struct {
	// Total is the number of records in the range to read.
	Total int64
	// Read records; Matched dead letters selected (and allowed); Published and
	// Failed of those (Published stays 0 in a dry run).
	Read, Matched, Published, Failed int64
	// NotDeadLetter: drop events and foreign records. Filtered: dead letters the
	// filter did not select. Repeated: dead letters of a lineage this run already
	// replayed (an earlier copy of the same failure). Malformed: unreadable headers.
	NotDeadLetter, Filtered, Repeated, Malformed int64
	// NotAllowed: the source topic is not in AllowedTopics. Truncated: the value was
	// cut when dead-lettered. TooLarge: larger than the source topic accepts.
	NotAllowed, Truncated, TooLarge int64
}

// Count is what matched for one reason, source topic and partition.
type Count struct {
	Reason      dropalerts.Reason
	Topic       string
	Partition   int32
	DeadLetters int64
	// FirstOffset and LastOffset are the smallest and largest source offsets.
	FirstOffset, LastOffset int64
}

// Range is the part of one dead-letter partition a run read, and what it committed.
type Range struct {
	Partition int32
	// Start is the first offset read, End the offset after the last one.
	Start, End int64
	// Committed is the offset committed to the group (the next run starts there);
	// -1 when nothing was committed (dry run, no group, or a failure).
	Committed int64
}

// Result is the report of a run.
type Result struct {
	Stats
	Counts []Count
	Ranges []Range
	// Examples name up to five of the dead letters left or skipped, and why.
	Examples []string
	// Stopped says why reading stopped before the end offsets, if it did.
	Stopped string
}

// Run replays according to cfg through a client built from kopts (seed brokers at
// least, TLS, SASL). progress, when not nil, is called about once a second. It
// returns an error when records could not be published (the group's commit then
// stays where it was) or ctx ended; the Result is filled in either way.
func Run(ctx context.Context, cfg Config, kopts []kgo.Opt, progress func(Stats)) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	base := []kgo.Opt{
		kgo.ClientID("spanpipe-replay"),
		kgo.RequiredAcks(kgo.AllISRAcks()), // the default, and idempotent: said here because replay depends on it
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		// An upper bound only: writes are cut to the target topics' real limit.
		kgo.ProducerBatchMaxBytes(64 << 20),
		kgo.MaxBufferedBytes(128 << 20),
		kgo.ProducerLinger(0),
		kgo.FetchMaxBytes(64 << 20),
	}
	cl, err := kgo.NewClient(append(base, kopts...)...)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	defer cl.Close()
	r := &run{cfg: cfg, cl: cl, adm: kadm.NewClient(cl), res: &Result{}, progress: progress,
		counts: map[countKey]*Count{}, held: map[int32]int64{}, roots: map[string]bool{}}
	return r.res, r.run(ctx)
}

type countKey struct {
	reason    dropalerts.Reason
	topic     string
	partition int32
}

type run struct {
	cfg      Config
	cl       *kgo.Client
	adm      *kadm.Client
	res      *Result
	progress func(Stats)

	limit  int // smallest max.message.bytes of the allowed topics
	counts map[countKey]*Count
	// held is, per dead-letter partition, the first offset left for a later run:
	// the commit must not pass it.
	held  map[int32]int64
	roots map[string]bool // lineages replayed by this run

	chunk     []*kgo.Record
	chunkSize int
	chunkAt   []int64 // dead-letter offsets of the chunk, to hold on failure
	chunkPart []int32
	firstErr  error
}

func (r *run) run(ctx context.Context) error {
	topic := r.cfg.DeadLetterTopic
	if !r.cfg.DryRun {
		limit, err := dropalerts.MaxMessageBytes(ctx, r.adm, r.cfg.AllowedTopics...)
		if err != nil {
			return fmt.Errorf("replay: limits of %v: %w", r.cfg.AllowedTopics, err)
		}
		r.limit = limit
	}
	start, end, err := r.bounds(ctx)
	if err != nil {
		return err
	}
	consume := map[int32]kgo.Offset{}
	left := map[int32]int64{}
	for p, e := range end {
		s := start[p]
		r.res.Ranges = append(r.res.Ranges, Range{Partition: p, Start: s, End: e, Committed: -1})
		if e > s {
			consume[p] = kgo.NewOffset().At(s)
			left[p] = e
			r.res.Total += e - s
		}
	}
	slices.SortFunc(r.res.Ranges, func(a, b Range) int { return cmp.Compare(a.Partition, b.Partition) })
	if len(consume) > 0 {
		r.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: consume})
	}

	lastProgress, lastRecord := time.Now(), time.Now()
	for len(left) > 0 {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := r.cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return fmt.Errorf("replay: interrupted: %w", ctx.Err())
		}
		for _, rec := range fetches.Records() {
			e, ok := left[rec.Partition]
			if !ok || rec.Offset >= e {
				continue
			}
			lastRecord = time.Now()
			if rec.Offset >= e-1 {
				delete(left, rec.Partition)
			}
			if err := r.handle(ctx, rec); err != nil {
				return err
			}
		}
		if r.progress != nil && time.Since(lastProgress) >= time.Second {
			lastProgress = time.Now()
			r.progress(r.res.Stats)
		}
		if len(left) > 0 && time.Since(lastRecord) > r.cfg.IdleTimeout {
			for p, e := range left {
				r.res.Stopped += fmt.Sprintf("partition %d stopped before offset %d; ", p, e)
				r.hold(p, 0) // nothing of it may be committed: what was not read was not replayed
			}
			r.res.Stopped = fmt.Sprintf("nothing read for %s: %s", r.cfg.IdleTimeout, r.res.Stopped)
			break
		}
	}
	if err := r.flush(ctx); err != nil {
		return err
	}
	if r.progress != nil {
		r.progress(r.res.Stats)
	}
	r.finishCounts()
	if r.res.Failed > 0 {
		return fmt.Errorf("replay: %d records not published; first error: %w", r.res.Failed, r.firstErr)
	}
	return r.commit(ctx)
}

// bounds returns where each partition's read starts (the group's commit, else the
// log start) and ends (the end offsets now: records that arrive later, copies this
// run causes among them, are left for a later run).
func (r *run) bounds(ctx context.Context) (start, end map[int32]int64, err error) {
	topic := r.cfg.DeadLetterTopic
	starts, err := r.adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("replay: start offsets of %s: %w", topic, err)
	}
	ends, err := r.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("replay: end offsets of %s: %w", topic, err)
	}
	var committed kadm.OffsetResponses
	if r.cfg.Group != "" && !r.cfg.FromStart {
		committed, err = r.adm.FetchOffsets(ctx, r.cfg.Group)
		if err == nil {
			err = committed.Error()
		}
		if errors.Is(err, kerr.GroupIDNotFound) {
			err = nil // the first run: nothing remembered yet
		}
		if err != nil {
			return nil, nil, fmt.Errorf("replay: offsets of group %s: %w", r.cfg.Group, err)
		}
	}
	start, end = map[int32]int64{}, map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(o.Topic, o.Partition)
		from := s.Offset
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.At > from {
			from = min(c.At, o.Offset)
		}
		start[o.Partition], end[o.Partition] = from, o.Offset
	})
	return start, end, nil
}

func (r *run) hold(p int32, offset int64) {
	if h, ok := r.held[p]; !ok || offset < h {
		r.held[p] = offset
	}
}

func (r *run) example(rec *kgo.Record, why string) {
	if len(r.res.Examples) < 5 {
		r.res.Examples = append(r.res.Examples, fmt.Sprintf("%s: %s", dropalerts.Coordinates(rec), why))
	}
}

// handle decides about one record of the dead-letter topic.
func (r *run) handle(ctx context.Context, rec *kgo.Record) error {
	r.res.Read++
	orig, d, err := dropalerts.OriginalRecord(rec)
	switch {
	case errors.Is(err, dropalerts.ErrNotDeadLetter):
		r.res.NotDeadLetter++
		return nil
	case errors.Is(err, dropalerts.ErrTruncated):
		r.res.Truncated++
		r.example(rec, err.Error())
		return nil
	case err != nil:
		r.res.Malformed++
		r.example(rec, err.Error())
		return nil
	}
	if !r.cfg.Filter.match(d, rec.Timestamp) {
		r.res.Filtered++
		r.hold(rec.Partition, rec.Offset)
		return nil
	}
	if !slices.Contains(r.cfg.AllowedTopics, orig.Topic) {
		r.res.NotAllowed++
		r.hold(rec.Partition, rec.Offset)
		r.example(rec, fmt.Sprintf("source topic %q is not one replay may publish to (--to-topics)", orig.Topic))
		return nil
	}
	root := d.Root(rec)
	if r.roots[root] {
		r.res.Repeated++ // the same failure, already replayed by this run
		return nil
	}
	r.roots[root] = true
	r.res.Matched++
	k := countKey{d.Reason, d.SourceTopic, d.SourcePartition}
	if c := r.counts[k]; c == nil {
		r.counts[k] = &Count{Reason: d.Reason, Topic: d.SourceTopic, Partition: d.SourcePartition, DeadLetters: 1, FirstOffset: d.SourceOffset, LastOffset: d.SourceOffset}
	} else {
		c.DeadLetters++
		c.FirstOffset, c.LastOffset = min(c.FirstOffset, d.SourceOffset), max(c.LastOffset, d.SourceOffset)
	}
	if r.cfg.DryRun {
		return nil
	}
	orig.Headers = withLineage(orig.Headers, root, d.ReplayCount+1)
	size := dropalerts.RecordSize(orig)
	if size > r.limit-dropalerts.BatchOverhead {
		r.res.TooLarge++
		r.hold(rec.Partition, rec.Offset)
		r.example(rec, fmt.Sprintf("%d bytes, more than %s accepts (%d)", size, orig.Topic, r.limit))
		return nil
	}
	if r.chunkSize+size > r.limit-dropalerts.BatchOverhead {
		if err := r.flush(ctx); err != nil {
			return err
		}
	}
	r.chunk = append(r.chunk, orig)
	r.chunkAt = append(r.chunkAt, rec.Offset)
	r.chunkPart = append(r.chunkPart, rec.Partition)
	r.chunkSize += size
	return nil
}

// flush publishes the chunk: at most one target limit's worth of records, so that no
// batch the client forms from it can be larger than the topic accepts.
func (r *run) flush(ctx context.Context) error {
	if len(r.chunk) == 0 {
		return nil
	}
	results := r.cl.ProduceSync(ctx, r.chunk...)
	if ctx.Err() != nil {
		return fmt.Errorf("replay: interrupted: %w", ctx.Err())
	}
	at := make(map[*kgo.Record]int, len(r.chunk))
	for i, rec := range r.chunk {
		at[rec] = i
	}
	for _, res := range results {
		if res.Err == nil {
			r.res.Published++
			continue
		}
		r.res.Failed++
		i := at[res.Record]
		r.hold(r.chunkPart[i], r.chunkAt[i])
		if r.firstErr == nil {
			r.firstErr = fmt.Errorf("%s[%d]: %w", res.Record.Topic, res.Record.Partition, res.Err)
		}
	}
	r.chunk, r.chunkAt, r.chunkPart, r.chunkSize = r.chunk[:0], r.chunkAt[:0], r.chunkPart[:0], 0
	return nil
}

// commit records in the group how far this run got.
func (r *run) commit(ctx context.Context) error {
	if r.cfg.DryRun || r.cfg.Group == "" {
		return nil
	}
	offsets := kadm.Offsets{}
	for i, rg := range r.res.Ranges {
		to := rg.End
		if h, ok := r.held[rg.Partition]; ok {
			to = min(to, h)
		}
		if to <= rg.Start && rg.End > rg.Start {
			continue // nothing new to remember
		}
		offsets.AddOffset(r.cfg.DeadLetterTopic, rg.Partition, to, -1)
		r.res.Ranges[i].Committed = to
	}
	if len(offsets) == 0 {
		return nil
	}
	resp, err := r.adm.CommitOffsets(ctx, r.cfg.Group, offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		for i := range r.res.Ranges {
			r.res.Ranges[i].Committed = -1
		}
		return fmt.Errorf("replay: published, but could not remember it in group %s (the next run replays these again, which sinks absorb): %w", r.cfg.Group, err)
	}
	return nil
}

func (r *run) finishCounts() {
	for _, c := range r.counts {
		r.res.Counts = append(r.res.Counts, *c)
	}
	slices.SortFunc(r.res.Counts, func(a, b Count) int {
		return cmp.Or(cmp.Compare(a.Reason, b.Reason), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
}

// withLineage replaces the lineage headers of hs.
func withLineage(hs []kgo.RecordHeader, root string, count int) []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, 0, len(hs)+2)
	for _, h := range hs {
		if h.Key != dropalerts.HeaderReplayOf && h.Key != dropalerts.HeaderReplayCount {
			out = append(out, h)
		}
	}
	return append(out,
		kgo.RecordHeader{Key: dropalerts.HeaderReplayOf, Value: []byte(root)},
		kgo.RecordHeader{Key: dropalerts.HeaderReplayCount, Value: []byte(strconv.Itoa(count))})
}
