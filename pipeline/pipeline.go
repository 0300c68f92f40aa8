package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DropPublisher writes drop events and dead letters and returns once Kafka has them.
// *dropalerts.Publisher implements it.
type DropPublisher interface {
	Publish(ctx context.Context, ev dropalerts.Event, letters []dropalerts.DeadLetter) error
}

// Pipeline decodes records, buffers them by strategy into batches, and writes batches
// to its sink with retries, dead-lettering what cannot be stored.
//
// It has two sides, each meant for one goroutine: the buffering side ([Pipeline.Add],
// [Pipeline.Due], [Pipeline.Seal]) runs on the consumer's poll loop, and
// [Pipeline.Write] on the consumer's writer goroutine. [Pipeline.Buffered] may be called
// from anywhere. Pipeline starts no goroutines.
type Pipeline struct {
	cfg      Config
	strategy Strategy
	sink     Sink
	caps     Capabilities
	drops    DropPublisher
	instance string
	log      *slog.Logger
	m        *metrics
	now      func() time.Time

	open *Unit
	// held counts records from Add until their unit is written or abandoned. It is the
	// one number both goroutines read, hence atomic.
	held      atomic.Int64
	heldBytes atomic.Int64
}

// Option configures a Pipeline.
type Option func(*options)

type options struct {
	log      *slog.Logger
	reg      prometheus.Registerer
	now      func() time.Time
	instance string
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the pipeline's metrics (default: none).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithInstance names this consumer in drop events (e.g. "spanpipe/host-1").
func WithInstance(name string) Option { return func(o *options) { o.instance = name } }

// New builds a pipeline writing to sink and dead-lettering through drops. It resolves
// the strategy against the sink's capabilities: auto becomes the preferred strategy,
// and an unsupported explicit strategy logs a warning and falls back to it.
func New(cfg Config, sink Sink, drops DropPublisher, opts ...Option) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline: invalid config: %w", err)
	}
	if sink == nil || drops == nil {
		return nil, errors.New("pipeline: a sink and a drop publisher are required")
	}
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	p := &Pipeline{
		cfg:      cfg,
		sink:     sink,
		caps:     sink.Capabilities(),
		drops:    drops,
		instance: o.instance,
		log:      o.log.With("component", "pipeline", "sink", sink.Name()),
		m:        newMetrics(o.reg, sink.Name()),
		now:      o.now,
	}
	var warn bool
	p.strategy, warn = Resolve(cfg.Strategy, p.caps)
	if warn {
		p.log.Warn("strategy not supported by sink, falling back to its preferred strategy",
			"requested", cfg.Strategy, "supported", p.caps.Supported, "using", p.strategy)
	}
	return p, nil
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

// Strategy returns the resolved strategy.
func (p *Pipeline) Strategy() Strategy { return p.strategy }

// Buffered is the number of records held in memory, open and sealed.
func (p *Pipeline) Buffered() int { return int(p.held.Load()) }

// Full reports whether the consumer should stop fetching until a batch completes.
func (p *Pipeline) Full() bool {
	return p.Buffered() >= p.cfg.MaxBufferSize || p.heldBytes.Load() >= p.cfg.MaxBufferBytes
}

// Unit is a sealed batch: rows for the sink, records to dead-letter, and the offsets
// that become committable once it is written.
type Unit struct {
	batch   Batch
	spanIdx map[spanKey]int
	stored  []drop // records whose events are in batch, dead-lettered if it fails
	drops   []drop
	offsets map[topicPartition]*offsetRange
	records int
	bytes   int64
	firstAt time.Time
	trigger string
}

type spanKey struct{ trace, span string }

type topicPartition struct {
	topic     string
	partition int32
}

type offsetRange struct {
	first, last int64
	epoch       int32
}

type drop struct {
	rec    *kgo.Record
	signal string
	reason dropalerts.Reason
	err    error
	trace  string
}

// Records is the number of Kafka records in the unit.
func (u *Unit) Records() int { return u.records }

// Batch is what the unit writes to the sink.
func (u *Unit) Batch() *Batch { return &u.batch }

// Offsets returns, per topic and partition, the offset to commit once the unit is done
// (the last offset plus one) and the leader epoch of that record.
func (u *Unit) Offsets() map[string]map[int32]kgo.EpochOffset {
	out := make(map[string]map[int32]kgo.EpochOffset)
	for tp, r := range u.offsets {
		m := out[tp.topic]
		if m == nil {
			m = make(map[int32]kgo.EpochOffset)
			out[tp.topic] = m
		}
		m[tp.partition] = kgo.EpochOffset{Epoch: r.epoch, Offset: r.last + 1}
	}
	return out
}

func (p *Pipeline) newUnit() *Unit {
	return &Unit{
		batch:   Batch{Strategy: p.strategy},
		spanIdx: make(map[spanKey]int),
		offsets: make(map[topicPartition]*offsetRange),
		firstAt: p.now(),
	}
}

// Add takes one record. It returns a sealed unit when the record fills the batch by
// count or bytes (or always, under realtime); the caller hands it to [Pipeline.Write].
// Add never fails: what cannot be stored is kept in the unit as a drop.
func (p *Pipeline) Add(rec *kgo.Record) *Unit {
	return p.AddDecoded(rec, p.Decode(rec))
}

// Decoded is a record's value decoded by [Pipeline.Decode], ready for AddDecoded.
type Decoded struct {
	ev  *schema.Event
	err error
	// reason is why the record cannot be stored, when err is set.
	reason dropalerts.Reason
}

// Decode decodes a record without touching the pipeline's state, so the consumer can
// decode the records of a fetch on every core before adding them in order: decoding
// is most of the CPU a record costs.
func (p *Pipeline) Decode(rec *kgo.Record) Decoded {
	if len(rec.Value) > p.cfg.MaxRecordBytes {
		return Decoded{reason: dropalerts.ReasonTooLarge,
			err: fmt.Errorf("record of %d bytes exceeds pipeline.max_record_bytes %d", len(rec.Value), p.cfg.MaxRecordBytes)}
	}
	ev, err := schema.Decode(header(rec, schema.HeaderCodec), rec.Value)
	if err != nil {
		return Decoded{reason: dropalerts.ReasonDecodeError, err: err}
	}
	return Decoded{ev: ev}
}

// AddDecoded is [Pipeline.Add] for a record already decoded by [Pipeline.Decode].
func (p *Pipeline) AddDecoded(rec *kgo.Record, d Decoded) *Unit {
	if p.open == nil {
		p.open = p.newUnit()
	}
	u := p.open
	u.records++
	u.bytes += int64(len(rec.Value))
	p.held.Add(1)
	p.heldBytes.Add(int64(len(rec.Value)))
	tp := topicPartition{rec.Topic, rec.Partition}
	if r := u.offsets[tp]; r == nil {
		u.offsets[tp] = &offsetRange{first: rec.Offset, last: rec.Offset, epoch: rec.LeaderEpoch}
	} else if rec.Offset > r.last {
		r.last, r.epoch = rec.Offset, rec.LeaderEpoch
	}
	p.route(u, rec, d)
	p.m.buffered.Set(float64(p.Buffered()))

	switch {
	case p.strategy == Realtime:
		return p.Seal(TriggerRealtime)
	case u.records >= p.cfg.MaxBatchSize:
		return p.Seal(TriggerSize)
	case u.bytes >= p.cfg.MaxBatchBytes:
		return p.Seal(TriggerBytes)
	case p.Full():
		return p.Seal(TriggerPressure)
	}
	return nil
}

func (p *Pipeline) route(u *Unit, rec *kgo.Record, d Decoded) {
	if d.err != nil {
		p.m.consumed.WithLabelValues("unknown").Inc()
		u.drops = append(u.drops, drop{rec: rec, signal: "unknown", reason: d.reason, err: d.err, trace: string(rec.Key)})
		return
	}
	ev := d.ev
	sig := ev.Signal()
	p.m.consumed.WithLabelValues(string(sig)).Inc()
	if !p.caps.Stores(sig) {
		u.drops = append(u.drops, drop{rec: rec, signal: string(sig), reason: dropalerts.ReasonUnsupportedStorage,
			err: fmt.Errorf("sink %s does not store %s", p.sink.Name(), sig), trace: ev.TraceID()})
		return
	}
	b := &u.batch
	switch sig {
	case schema.SignalTracing:
		s := ev.Span
		if p.strategy == InsertOnly && !s.Ended() {
			p.m.skipped.WithLabelValues(string(p.strategy)).Inc()
			return
		}
		k := spanKey{s.TraceID, s.SpanID}
		if i, ok := u.spanIdx[k]; ok {
			p.m.coalesced.Inc()
			if s.Version >= b.Spans[i].Version {
				b.Spans[i] = s
			}
		} else {
			u.spanIdx[k] = len(b.Spans)
			b.Spans = append(b.Spans, s)
		}
	case schema.SignalLog:
		b.Logs = append(b.Logs, ev.Log)
	case schema.SignalMetric:
		b.Metrics = append(b.Metrics, ev.Metric)
	case schema.SignalScore:
		b.Scores = append(b.Scores, ev.Score)
	case schema.SignalFeedback:
		b.Feedback = append(b.Feedback, ev.Feedback)
	}
	u.stored = append(u.stored, drop{rec: rec, signal: string(sig), trace: ev.TraceID()})
}

func header(rec *kgo.Record, key string) string {
	for _, h := range rec.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Due reports whether the open buffer has waited MaxBatchWait, and when it will.
func (p *Pipeline) Due() (due bool, at time.Time) {
	if p.open == nil || p.open.records == 0 {
		return false, time.Time{}
	}
	at = p.open.firstAt.Add(p.cfg.MaxBatchWait)
	return !p.now().Before(at), at
}

// Seal closes the open buffer and returns it (nil when empty).
func (p *Pipeline) Seal(trigger string) *Unit {
	u := p.open
	if u == nil || u.records == 0 {
		return nil
	}
	p.open = nil
	u.trigger = trigger
	u.batch.Sources = make([]SourceRange, 0, len(u.offsets))
	for tp, r := range u.offsets {
		u.batch.Sources = append(u.batch.Sources, SourceRange{Topic: tp.topic, Partition: tp.partition, First: r.first, Last: r.last})
	}
	p.m.flushes.WithLabelValues(trigger).Inc()
	p.m.batchSize.Observe(float64(u.records))
	return u
}

// Write stores a sealed unit: the batch goes to the sink with retries, and whatever
// cannot be stored goes to the drop topic. It returns nil once every record of the unit
// is durably in the sink or on the drop topic — then, and only then, may the unit's
// offsets be committed. It returns an error only when ctx ends first.
func (p *Pipeline) Write(ctx context.Context, u *Unit) error {
	err := p.write(ctx, u)
	if err == nil {
		p.held.Add(-int64(u.records))
		p.heldBytes.Add(-u.bytes)
		p.m.buffered.Set(float64(p.Buffered()))
	}
	return err
}

// Abandon forgets a unit that will not be written (shutdown past its deadline). Its
// offsets must not be committed; Kafka redelivers its records.
func (p *Pipeline) Abandon(u *Unit) {
	p.held.Add(-int64(u.records))
	p.heldBytes.Add(-u.bytes)
	p.m.buffered.Set(float64(p.Buffered()))
}

func (p *Pipeline) write(ctx context.Context, u *Unit) error {
	if u.batch.Len() > 0 {
		reason, attempts, firstFail, err := p.writeWithRetry(ctx, u)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			for _, d := range u.stored {
				d.reason, d.err = reason, err
				u.drops = append(u.drops, d)
			}
			p.log.Error("batch dead-lettered", "reason", reason, "rows", u.batch.Len(), "records", len(u.stored), "attempts", attempts, "err", err)
			return p.publishDrops(ctx, u.drops, attempts, firstFail)
		}
	}
	return p.publishDrops(ctx, u.drops, 1, time.Time{})
}

func (p *Pipeline) writeWithRetry(ctx context.Context, u *Unit) (dropalerts.Reason, int, time.Time, error) {
	name := p.sink.Name()
	var firstFail time.Time
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := p.sink.Write(ctx, &u.batch)
		if err == nil {
			p.m.writeDuration.WithLabelValues(name, "ok").Observe(time.Since(start).Seconds())
			p.m.lastSuccess.WithLabelValues(name).SetToCurrentTime()
			b := &u.batch
			for sig, n := range map[schema.Signal]int{schema.SignalTracing: len(b.Spans), schema.SignalLog: len(b.Logs),
				schema.SignalMetric: len(b.Metrics), schema.SignalScore: len(b.Scores), schema.SignalFeedback: len(b.Feedback)} {
				if n > 0 {
					p.m.written.WithLabelValues(name, string(sig)).Add(float64(n))
				}
			}
			if attempt > 1 {
				p.log.Info("sink recovered", "attempts", attempt, "failing_for", time.Since(firstFail).Round(time.Millisecond))
			}
			return "", attempt, firstFail, nil
		}
		p.m.writeDuration.WithLabelValues(name, "error").Observe(time.Since(start).Seconds())
		if ctx.Err() != nil {
			return "", attempt, firstFail, ctx.Err()
		}
		if firstFail.IsZero() {
			firstFail = p.now()
		}
		if errors.Is(err, ErrPermanent) {
			p.m.sinkErrors.WithLabelValues(name, "permanent").Inc()
			return dropalerts.ReasonSinkRejected, attempt, firstFail, err
		}
		p.m.sinkErrors.WithLabelValues(name, "retryable").Inc()
		if attempt > p.cfg.MaxRetries && p.cfg.OnRetryExhausted == OnExhaustedDeadLetter {
			return dropalerts.ReasonRetryExhausted, attempt, firstFail, fmt.Errorf("%d attempts: %w", attempt, err)
		}
		wait := p.cfg.backoff(attempt)
		p.log.Warn("sink write failed, retrying", "attempt", attempt, "rows", u.batch.Len(), "retry_in", wait, "err", err)
		p.m.retries.WithLabelValues(name).Inc()
		if err := sleep(ctx, wait); err != nil {
			return "", attempt, firstFail, err
		}
	}
}

// publishDrops writes one drop event per (reason, signal, partition) with its records
// as dead letters. It retries until it succeeds or ctx ends: without the drop topic
// there is nowhere durable for these records, so the partition must not advance.
func (p *Pipeline) publishDrops(ctx context.Context, drops []drop, attempts int, firstFail time.Time) error {
	if len(drops) == 0 {
		return nil
	}
	type key struct {
		reason dropalerts.Reason
		signal string
		tp     topicPartition
	}
	groups := make(map[key][]drop)
	var order []key
	for _, d := range drops {
		k := key{d.reason, d.signal, topicPartition{d.rec.Topic, d.rec.Partition}}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], d)
	}
	now := p.now().UTC()
	if firstFail.IsZero() {
		firstFail = now
	}
	for _, k := range order {
		ds := groups[k]
		ev := dropalerts.Event{
			Signal:    schema.Signal(k.signal),
			Reason:    k.reason,
			Count:     len(ds),
			FirstTime: firstFail,
			LastTime:  now,
			Component: "consumer",
			Instance:  p.instance,
			Sink:      p.sink.Name(),
			Error:     dropalerts.SanitizeError(ds[0].err),
			Source:    &dropalerts.Source{Topic: k.tp.topic, Partition: k.tp.partition, FirstOffset: ds[0].rec.Offset, LastOffset: ds[0].rec.Offset},
		}
		letters := make([]dropalerts.DeadLetter, len(ds))
		for i, d := range ds {
			letters[i] = dropalerts.DeadLetter{Record: d.rec, Attempts: attempts, FirstFailure: firstFail}
			ev.Source.FirstOffset = min(ev.Source.FirstOffset, d.rec.Offset)
			ev.Source.LastOffset = max(ev.Source.LastOffset, d.rec.Offset)
			if d.trace != "" && len(ev.SampleTraceIDs) < dropalerts.MaxSampleTraceIDs && !slices.Contains(ev.SampleTraceIDs, d.trace) {
				ev.SampleTraceIDs = append(ev.SampleTraceIDs, d.trace)
			}
		}
		for try := 1; ; try++ {
			err := p.drops.Publish(ctx, ev, letters)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			wait := p.cfg.backoff(try)
			p.log.Error("CRITICAL: cannot publish drop event; partition will not advance until it succeeds",
				"reason", k.reason, "records", len(ds), "topic", k.tp.topic, "partition", k.tp.partition, "retry_in", wait, "err", err)
			if err := sleep(ctx, wait); err != nil {
				return err
			}
		}
		p.m.dropped.WithLabelValues(k.signal, string(k.reason), "consumer").Add(float64(len(ds)))
		p.log.Warn("records dropped", "reason", k.reason, "signal", k.signal, "count", len(ds),
			"topic", k.tp.topic, "partition", k.tp.partition, "first_offset", ev.Source.FirstOffset, "last_offset", ev.Source.LastOffset, "err", ev.Error)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Config returns the pipeline's configuration.
func (p *Pipeline) Config() Config { return p.cfg }

// Merge combines sealed units into one, in order, coalescing span snapshots across
// them. The consumer merges what queued up behind a slow write, so a store that
// favours large transactions (DuckDB, ClickHouse) gets them exactly when it is behind,
// while a quiet pipeline keeps small batches and low latency.
func (p *Pipeline) Merge(units []*Unit) *Unit {
	if len(units) == 1 {
		return units[0]
	}
	m := p.newUnit()
	m.trigger = "merged"
	for _, u := range units {
		m.records += u.records
		m.bytes += u.bytes
		for _, s := range u.batch.Spans {
			k := spanKey{s.TraceID, s.SpanID}
			if i, ok := m.spanIdx[k]; ok {
				if s.Version >= m.batch.Spans[i].Version {
					m.batch.Spans[i] = s
				}
				continue
			}
			m.spanIdx[k] = len(m.batch.Spans)
			m.batch.Spans = append(m.batch.Spans, s)
		}
		m.batch.Logs = append(m.batch.Logs, u.batch.Logs...)
		m.batch.Metrics = append(m.batch.Metrics, u.batch.Metrics...)
		m.batch.Scores = append(m.batch.Scores, u.batch.Scores...)
		m.batch.Feedback = append(m.batch.Feedback, u.batch.Feedback...)
		m.stored = append(m.stored, u.stored...)
		m.drops = append(m.drops, u.drops...)
		for tp, r := range u.offsets {
			if cur := m.offsets[tp]; cur == nil {
				c := *r
				m.offsets[tp] = &c
			} else {
				cur.first = min(cur.first, r.first)
				if r.last > cur.last {
					cur.last, cur.epoch = r.last, r.epoch
				}
			}
		}
	}
	for tp, r := range m.offsets {
		m.batch.Sources = append(m.batch.Sources, SourceRange{Topic: tp.topic, Partition: tp.partition, First: r.first, Last: r.last})
	}
	return m
}
