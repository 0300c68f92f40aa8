package pipeline

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Trigger is why a batch was sealed: the value of the trigger label of
// spanpipe_pipeline_flushes_total.
type Trigger string

// Flush triggers. The batcher decides size, bytes, pressure and realtime in
// [Batcher.Add] and time in [Batcher.Due]; revoke and shutdown are the consumer's
// reasons to call [Batcher.Seal].
const (
	TriggerSize     Trigger = "size"
	TriggerBytes    Trigger = "bytes"
	TriggerInterval Trigger = "interval"
	TriggerPressure Trigger = "pressure"
	TriggerRealtime Trigger = "realtime"
	TriggerRevoke   Trigger = "revoke"
	TriggerShutdown Trigger = "shutdown"
)

var allTriggers = []Trigger{TriggerSize, TriggerBytes, TriggerInterval, TriggerPressure, TriggerRealtime, TriggerRevoke, TriggerShutdown}

// Option configures a [Batcher] or a [Writer].
type Option func(*options)

type options struct {
	log      *slog.Logger
	reg      prometheus.Registerer
	now      func() time.Time
	instance string
}

func buildOptions(opts []Option) options {
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the metrics (default: none).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithInstance names this consumer in the writer's drop events (e.g. "spanpipe/host-1").
func WithInstance(name string) Option { return func(o *options) { o.instance = name } }

// Batcher decodes records and buffers them by strategy into sealed [Unit]s. It makes
// every flush decision: size, bytes, memory pressure and realtime when a record is
// added, time in [Batcher.Due]; the caller seals on revoke and shutdown. It knows
// nothing of Kafka offsets or of the sink beyond its [Capabilities].
//
// Add, Seal and Due belong to one goroutine (the consumer's poll loop); Decode may run
// on many at once; Full, Buffered and Done may be called from any goroutine. It starts
// no goroutines.
type Batcher struct {
	cfg      Config
	strategy Strategy
	caps     Capabilities
	log      *slog.Logger
	m        *batcherMetrics
	now      func() time.Time

	open *Unit
	// held counts records from Add until their unit is Done; both goroutines read it.
	held      atomic.Int64
	heldBytes atomic.Int64

	// ages lists, oldest first, the first-record time of every unit not yet Done (the
	// open one included), for spanpipe_pipeline_oldest_unwritten_age_seconds.
	agesMu sync.Mutex
	ages   []unitAge
	seq    uint64

	// unended tracks running spans skipped under insert-only (nil otherwise).
	unended *unendedTracker
}

type unitAge struct {
	seq     uint64
	firstAt time.Time
}

// NewBatcher returns a batcher for a sink with caps. It resolves the strategy: auto
// becomes the sink's preferred one, and an unsupported explicit strategy logs a
// warning and falls back to it.
func NewBatcher(cfg Config, caps Capabilities, opts ...Option) (*Batcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline: invalid config: %w", err)
	}
	o := buildOptions(opts)
	cfg.MaxBufferSize = cfg.bufferSize(caps)
	b := &Batcher{cfg: cfg, caps: caps, log: o.log.With("component", "batcher"), now: o.now}
	var warn bool
	b.strategy, warn = Resolve(cfg.Strategy, caps)
	if warn {
		b.log.Warn("strategy not supported by sink, falling back to its preferred strategy",
			"requested", cfg.Strategy, "supported", caps.Supported, "using", b.strategy)
	}
	if b.strategy == InsertOnly {
		b.unended = newUnendedTracker(unendedMaxSpans, unendedMaxAge)
	}
	b.m = newBatcherMetrics(o.reg, b.oldestAge)
	b.m.bufferLimit.Set(float64(cfg.MaxBufferSize))
	return b, nil
}

// Resolve picks the strategy to use: auto means the sink's preferred one, and an
// explicit strategy the sink does not support falls back to it (fallback=true).
func Resolve(requested Strategy, caps Capabilities) (s Strategy, fallback bool) {
	if requested == Auto || requested == "" {
		return caps.Preferred, false
	}
	if caps.Supports(requested) {
		return requested, false
	}
	return caps.Preferred, true
}

// BufferSize is the buffer's limit in records: the configured or derived one.
func (b *Batcher) BufferSize() int { return b.cfg.MaxBufferSize }

// Strategy returns the resolved strategy.
func (b *Batcher) Strategy() Strategy { return b.strategy }

// Buffered is the number of records held, in the open buffer and in sealed units
// not yet Done.
func (b *Batcher) Buffered() int { return int(b.held.Load()) }

// Room is how many more records the buffer takes before it is Full by count (0 when
// it is): a consumer polls no more than that, so that what does not fit waits in
// the Kafka client as fetched bytes rather than decoded beside a full buffer.
func (b *Batcher) Room() int { return max(b.cfg.MaxBufferSize-b.Buffered(), 0) }

// Full reports whether the caller should stop fetching until a unit is Done.
func (b *Batcher) Full() bool {
	return b.Buffered() >= b.cfg.MaxBufferSize || b.heldBytes.Load() >= b.cfg.MaxBufferBytes
}

// Decoded is a record's value decoded by [Batcher.Decode], ready for [Batcher.Add].
type Decoded struct {
	ev  *schema.Event
	err error
	// reason is why the record cannot be stored, when err is set.
	reason dropalerts.Reason
	// signal is what the record claims to be, when it is known despite err.
	signal string
}

// Decode decodes a record without touching the batcher's state, so that the records
// of a fetch can be decoded on every core before they are added in order: decoding
// is most of the CPU a record costs.
func (b *Batcher) Decode(rec *kgo.Record) Decoded {
	codec := codecOf(rec)
	if len(rec.Value) > b.cfg.MaxRecordBytes {
		return Decoded{reason: dropalerts.ReasonTooLarge, signal: signalOf(nil, codec, rec.Value),
			err: fmt.Errorf("record of %d bytes exceeds pipeline.max_record_bytes %d", len(rec.Value), b.cfg.MaxRecordBytes)}
	}
	ev, err := schema.Decode(codec, rec.Value)
	if err != nil {
		return Decoded{reason: dropalerts.ReasonDecodeError, err: err, signal: signalOf(err, codec, rec.Value)}
	}
	return Decoded{ev: ev}
}

// signalOf names the signal of a record that cannot be stored: the one its envelope
// declares when the type was readable, else "unknown". Only the error path pays for it.
func signalOf(err error, codec string, v []byte) string {
	s := schema.SignalOfError(err)
	if err == nil {
		s = schema.SniffCodecSignal(codec, v) // too large to decode: its type alone is read
	}
	if s == "" {
		return "unknown"
	}
	return string(s)
}

// codecOf returns the record's codec header; the known codecs as their constants,
// so that naming the codec costs no allocation per record.
func codecOf(rec *kgo.Record) string {
	for _, h := range rec.Headers {
		if h.Key == schema.HeaderCodec {
			switch string(h.Value) {
			case schema.CodecJSON:
				return schema.CodecJSON
			case schema.CodecBinary:
				return schema.CodecBinary
			}
			return string(h.Value)
		}
	}
	return ""
}

// Add takes one record and returns a sealed unit when the record fills the open one
// (by count, bytes or memory pressure; always under realtime). Add never fails: what
// cannot be stored stays in the unit as a drop, to be dead-lettered by the writer.
func (b *Batcher) Add(rec *kgo.Record, d Decoded) *Unit {
	if b.open == nil {
		b.open = b.newUnit()
		b.agesMu.Lock()
		b.seq++
		b.open.seq = b.seq
		b.ages = append(b.ages, unitAge{b.seq, b.open.firstAt})
		b.agesMu.Unlock()
	}
	u := b.open
	u.records++
	u.bytes += int64(len(rec.Value))
	b.held.Add(1)
	b.heldBytes.Add(int64(len(rec.Value)))
	u.cover(rec)
	b.route(u, rec, d)
	b.m.buffered.Set(float64(b.Buffered()))

	switch {
	case b.strategy == Realtime:
		return b.Seal(TriggerRealtime)
	case u.records >= b.cfg.MaxBatchSize:
		return b.Seal(TriggerSize)
	case u.bytes >= b.cfg.MaxBatchBytes:
		return b.Seal(TriggerBytes)
	case b.Full():
		return b.Seal(TriggerPressure)
	}
	return nil
}

func (b *Batcher) route(u *Unit, rec *kgo.Record, d Decoded) {
	if d.err != nil {
		b.m.consumed.WithLabelValues("unknown").Inc()
		u.drops = append(u.drops, drop{rec: rec, signal: d.signal, reason: d.reason, err: d.err, trace: string(rec.Key)})
		return
	}
	ev := d.ev
	sig := ev.Signal()
	b.m.consumed.WithLabelValues(string(sig)).Inc()
	for _, r := range ev.Repairs {
		b.m.repaired.WithLabelValues(string(r)).Inc()
	}
	if !b.caps.Stores(sig) {
		u.drops = append(u.drops, drop{rec: rec, signal: string(sig), reason: dropalerts.ReasonUnsupportedStorage,
			err: fmt.Errorf("the sink does not store %s", sig), trace: ev.TraceID()})
		return
	}
	if s := ev.Span; s != nil {
		if s.Event == schema.SpanEnded && s.EndTime.IsZero() && !s.IsEvent {
			// A span_ended without endTime is final (the event type says so), but a
			// store would show it running forever: the record's time is the closest
			// to when it ended that we know.
			s.EndTime = rec.Timestamp
			if s.EndTime.Before(s.StartTime) {
				s.EndTime = s.StartTime
			}
			b.m.repaired.WithLabelValues(repairMissingEndTime).Inc()
		}
		if b.unended != nil {
			k := spanKey{s.TraceID, s.SpanID}
			if !s.Ended() {
				b.m.skipped.WithLabelValues(string(b.strategy)).Inc()
				if n := b.unended.started(k, b.now()); n > 0 {
					b.m.neverEnded.Add(float64(n))
				}
				b.m.unended.Set(float64(b.unended.len()))
				return
			}
			b.unended.ended(k)
			b.m.unended.Set(float64(b.unended.len()))
		}
	}
	if u.add(item{rec: rec, ev: ev}) {
		b.m.coalesced.Inc()
	}
}

// Due seals the open unit once it has waited MaxBatchWait (the time trigger) and
// returns it; otherwise it returns nil and when the open unit will be due (zero when
// there is none).
func (b *Batcher) Due() (*Unit, time.Time) {
	if b.open == nil || b.open.records == 0 {
		return nil, time.Time{}
	}
	at := b.open.firstAt.Add(b.cfg.MaxBatchWait)
	if b.now().Before(at) {
		return nil, at
	}
	return b.Seal(TriggerInterval), time.Time{}
}

// Seal closes the open unit and returns it (nil when empty).
func (b *Batcher) Seal(t Trigger) *Unit {
	u := b.open
	if u == nil || u.records == 0 {
		return nil
	}
	b.open = nil
	u.trigger = t
	u.seal()
	b.m.flushes.WithLabelValues(string(t)).Inc()
	b.m.batchSize.Observe(float64(u.records))
	return u
}

// Done releases a unit that is written, dead-lettered or abandoned: its records no
// longer count against the buffer limits. Units are Done in the order they were
// sealed (a merged unit stands for all of its parts).
func (b *Batcher) Done(u *Unit) {
	b.held.Add(-int64(u.records))
	b.heldBytes.Add(-u.bytes)
	b.m.buffered.Set(float64(b.Buffered()))
	b.agesMu.Lock()
	i := 0
	for i < len(b.ages) && b.ages[i].seq <= u.seq {
		i++
	}
	b.ages = b.ages[i:]
	b.agesMu.Unlock()
}

// OldestUnwritten is when the oldest record not yet written (or dead-lettered) was
// added, open buffer included; zero when there is none.
func (b *Batcher) OldestUnwritten() time.Time {
	b.agesMu.Lock()
	defer b.agesMu.Unlock()
	if len(b.ages) == 0 {
		return time.Time{}
	}
	return b.ages[0].firstAt
}

func (b *Batcher) oldestAge() float64 {
	t := b.OldestUnwritten()
	if t.IsZero() {
		return 0
	}
	return b.now().Sub(t).Seconds()
}

func (b *Batcher) newUnit() *Unit {
	// Sized for a full unit: growing the span index rehashes it several times per unit.
	n := min(b.cfg.MaxBatchSize, maxPresize)
	if b.strategy == Realtime {
		n = 1
	}
	return &Unit{
		batch:   Batch{Strategy: b.strategy},
		spanIdx: make(map[spanKey]int, n),
		items:   make([]item, 0, n),
		sources: make(map[topicPartition]*offsetRange),
		firstAt: b.now(),
	}
}

// maxPresize caps what a unit preallocates, whatever max_batch_size says.
const maxPresize = 4096
