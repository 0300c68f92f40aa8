package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/backoff"
	"github.com/spanpipe/spanpipe/schema"
)

// DropPublisher writes drop events and dead letters and returns once Kafka has them.
// *dropalerts.Publisher implements it.
type DropPublisher interface {
	Publish(ctx context.Context, ev dropalerts.Event, letters []dropalerts.DeadLetter) error
}

// Writer stores sealed units: the batch goes to the sink with retries, and what
// cannot be stored goes to the drop topic. Write is called from one goroutine at a
// time; the Writer starts no goroutines.
//
// Errors a sink returns are handled by kind:
//   - wrapped by [Unavailable]: the store is not there; retried with capped backoff
//     for as long as it takes, never dead-lettered (lag grows, fetching pauses,
//     spanpipe_pipeline_oldest_unwritten_age_seconds shows the stall);
//   - wrapped by [Permanent]: the store rejects the batch; it is split in halves,
//     recursively, down to the records it rejects, which are dead-lettered
//     (sink-rejected) while the rest is stored;
//   - any other: retried MaxRetries times, then dead-lettered (retry-exhausted) or,
//     under on_retry_exhausted: block, retried for ever.
type Writer struct {
	cfg      Config
	sink     Sink
	drops    DropPublisher
	policy   backoff.Policy
	instance string
	log      *slog.Logger
	m        *writerMetrics
	now      func() time.Time

	// callSince is when the sink call in flight started (unix nanoseconds, 0: none).
	callSince atomic.Int64
	// healthMu guards the failing streak: when sink writes started failing without a
	// success since, and the last error.
	healthMu     sync.Mutex
	failingSince time.Time
	lastErr      error
}

// WriterHealth is what /livez and /readyz need of the writer.
type WriterHealth struct {
	// CallSince is when the sink call in flight started; zero when none (idle or
	// backing off). A call that never returns is a hung writer.
	CallSince time.Time
	// FailingSince is when sink writes started failing, with no success since; zero
	// when the last write succeeded. LastErr is the last failure.
	FailingSince time.Time
	LastErr      error
}

// Health reports the writer's state; safe from any goroutine.
func (w *Writer) Health() WriterHealth {
	w.healthMu.Lock()
	h := WriterHealth{FailingSince: w.failingSince, LastErr: w.lastErr}
	w.healthMu.Unlock()
	if n := w.callSince.Load(); n != 0 {
		h.CallSince = time.Unix(0, n)
	}
	return h
}

func (w *Writer) noteResult(err error) {
	w.healthMu.Lock()
	defer w.healthMu.Unlock()
	w.lastErr = err
	switch {
	case err == nil:
		w.failingSince = time.Time{}
	case w.failingSince.IsZero():
		w.failingSince = w.now()
	}
}

// NewWriter returns a writer to sink that dead-letters through drops.
func NewWriter(cfg Config, sink Sink, drops DropPublisher, opts ...Option) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline: invalid config: %w", err)
	}
	if sink == nil || drops == nil {
		return nil, errors.New("pipeline: a sink and a drop publisher are required")
	}
	o := buildOptions(opts)
	return &Writer{
		cfg:      cfg,
		sink:     sink,
		drops:    drops,
		policy:   backoff.Policy{Initial: cfg.RetryDelay, Max: cfg.MaxRetryDelay},
		instance: o.instance,
		log:      o.log.With("component", "writer", "sink", sink.Name()),
		m:        newWriterMetrics(o.reg, sink.Name()),
		now:      o.now,
	}, nil
}

// Write stores u. It returns nil once every record of u is durably in the sink or on
// the drop topic (then, and only then, may u's offsets be committed), and an error
// only when ctx ends first. A record is never both stored and dead-lettered.
func (w *Writer) Write(ctx context.Context, u *Unit) error {
	drops := make([]failed, 0, len(u.drops))
	for _, d := range u.drops {
		drops = append(drops, failed{drop: d})
	}
	if len(u.items) > 0 {
		dead, err := w.store(ctx, u, u.items)
		if err != nil {
			return err
		}
		drops = append(drops, dead...)
	}
	return w.publish(ctx, drops)
}

// failed is a dead-lettered record with its attempt count.
type failed struct {
	drop
	attempts  int
	firstFail time.Time
}

// store writes part (items of u, u's own batch when it is all of them) and returns
// the records it could not store. On a permanent error it splits the part in halves
// and stores each, so that only the records the sink rejects are dead-lettered.
func (w *Writer) store(ctx context.Context, u *Unit, part []item) ([]failed, error) {
	b := &u.batch
	if len(part) != len(u.items) {
		b = &fromItems(u.batch.Strategy, part).batch
	}
	reason, attempts, firstFail, err := w.writeWithRetry(ctx, b)
	if err == nil {
		return nil, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if reason == dropalerts.ReasonSinkRejected && len(part) > 1 {
		w.m.splits.Inc()
		half := len(part) / 2
		w.log.Info("batch rejected, splitting it to find the records the sink refuses", "records", len(part), "err", err)
		first, err := w.store(ctx, u, part[:half])
		if err != nil {
			return nil, err
		}
		second, err := w.store(ctx, u, part[half:])
		return append(first, second...), err
	}
	out := make([]failed, len(part))
	for i, it := range part {
		out[i] = failed{drop{rec: it.rec, signal: string(it.ev.Signal()), reason: reason, err: err, trace: it.ev.TraceID()}, attempts, firstFail}
	}
	w.log.Error("records dead-lettered", "reason", reason, "records", len(part), "attempts", attempts, "err", err)
	return out, nil
}

// writeWithRetry writes b until it is stored, the error is permanent, the retries are
// exhausted, or ctx ends.
func (w *Writer) writeWithRetry(ctx context.Context, b *Batch) (reason dropalerts.Reason, attempts int, firstFail time.Time, err error) {
	name := w.sink.Name()
	retries := 0 // failures that count against MaxRetries (not Unavailable ones)
	for attempts = 1; ; attempts++ {
		start := time.Now()
		w.callSince.Store(start.UnixNano())
		err = w.sink.Write(ctx, b)
		w.callSince.Store(0)
		if ctx.Err() == nil {
			w.noteResult(err)
		}
		if err == nil {
			w.m.writeDuration.WithLabelValues(name, "ok").Observe(time.Since(start).Seconds())
			w.m.lastSuccess.WithLabelValues(name).SetToCurrentTime()
			w.countWritten(b)
			if attempts > 1 {
				w.log.Info("sink recovered", "attempts", attempts, "failing_for", w.now().Sub(firstFail).Round(time.Millisecond))
			}
			return "", attempts, firstFail, nil
		}
		w.m.writeDuration.WithLabelValues(name, "error").Observe(time.Since(start).Seconds())
		if ctx.Err() != nil {
			return "", attempts, firstFail, ctx.Err()
		}
		if firstFail.IsZero() {
			firstFail = w.now()
		}
		switch {
		case errors.Is(err, ErrPermanent):
			w.m.sinkErrors.WithLabelValues(name, "permanent").Inc()
			return dropalerts.ReasonSinkRejected, attempts, firstFail, err
		case errors.Is(err, ErrUnavailable):
			w.m.sinkErrors.WithLabelValues(name, "unavailable").Inc()
		default:
			w.m.sinkErrors.WithLabelValues(name, "retryable").Inc()
			retries++
			if retries > w.cfg.MaxRetries && w.cfg.OnRetryExhausted == OnExhaustedDeadLetter {
				return dropalerts.ReasonRetryExhausted, attempts, firstFail, fmt.Errorf("%d attempts: %w", attempts, err)
			}
		}
		wait := w.policy.Delay(attempts, 0)
		w.log.Warn("sink write failed, retrying", "attempt", attempts, "rows", b.Len(), "retry_in", wait, "err", err)
		w.m.retries.WithLabelValues(name).Inc()
		if err := backoff.Sleep(ctx, wait); err != nil {
			return "", attempts, firstFail, err
		}
	}
}

func (w *Writer) countWritten(b *Batch) {
	name := w.sink.Name()
	for sig, n := range map[schema.Signal]int{schema.SignalTracing: len(b.Spans), schema.SignalLog: len(b.Logs),
		schema.SignalMetric: len(b.Metrics), schema.SignalScore: len(b.Scores), schema.SignalFeedback: len(b.Feedback)} {
		if n > 0 {
			w.m.written.WithLabelValues(name, string(sig)).Add(float64(n))
		}
	}
}

// publish writes one drop event per (reason, signal, partition) with its records as
// dead letters, each carrying its own error. It retries until it succeeds or ctx
// ends: without the drop topic there is nowhere durable for these records, so the
// partition must not advance.
func (w *Writer) publish(ctx context.Context, drops []failed) error {
	if len(drops) == 0 {
		return nil
	}
	type key struct {
		reason dropalerts.Reason
		signal string
		tp     topicPartition
	}
	groups := make(map[key][]failed)
	var order []key
	for _, d := range drops {
		k := key{d.reason, d.signal, topicPartition{d.rec.Topic, d.rec.Partition}}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], d)
	}
	now := w.now().UTC()
	for _, k := range order {
		ds := groups[k]
		first := ds[0].firstFail
		if first.IsZero() {
			first = now
		}
		ev := dropalerts.Event{
			Signal:    schema.Signal(k.signal),
			Reason:    k.reason,
			Count:     len(ds),
			FirstTime: first,
			LastTime:  now,
			Component: dropalerts.ComponentConsumer,
			Instance:  w.instance,
			Sink:      w.sink.Name(),
			Error:     dropalerts.SanitizeError(ds[0].err),
			Source:    &dropalerts.Source{Topic: k.tp.topic, Partition: k.tp.partition, FirstOffset: ds[0].rec.Offset, LastOffset: ds[0].rec.Offset},
		}
		letters := make([]dropalerts.DeadLetter, len(ds))
		for i, d := range ds {
			letters[i] = dropalerts.DeadLetter{Record: d.rec, Attempts: max(d.attempts, 1), FirstFailure: cmpOr(d.firstFail, first), Err: d.err}
			ev.Source.FirstOffset = min(ev.Source.FirstOffset, d.rec.Offset)
			ev.Source.LastOffset = max(ev.Source.LastOffset, d.rec.Offset)
			if d.trace != "" && len(ev.SampleTraceIDs) < dropalerts.MaxSampleTraceIDs && !slices.Contains(ev.SampleTraceIDs, d.trace) {
				ev.SampleTraceIDs = append(ev.SampleTraceIDs, d.trace)
			}
		}
		if err := PublishRetrying(ctx, w.drops, w.policy, ev, letters, w.log); err != nil {
			return err
		}
		w.m.dropped.WithLabelValues(k.signal, string(k.reason), dropalerts.ComponentConsumer).Add(float64(len(ds)))
		w.log.Warn("records dropped", "reason", k.reason, "signal", k.signal, "count", len(ds),
			"topic", k.tp.topic, "partition", k.tp.partition, "first_offset", ev.Source.FirstOffset, "last_offset", ev.Source.LastOffset, "err", ev.Error)
	}
	return nil
}

func cmpOr(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

// PublishRetrying publishes ev and letters through drops, retrying on policy until
// Kafka has them or ctx ends (then it returns ctx's error). A drop event that cannot
// be written must hold its partition back, not be skipped: every retry logs at
// error level, and the publisher counts the failures.
func PublishRetrying(ctx context.Context, drops DropPublisher, policy backoff.Policy, ev dropalerts.Event, letters []dropalerts.DeadLetter, log *slog.Logger) error {
	for try := 1; ; try++ {
		err := drops.Publish(ctx, ev, letters)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("pipeline: publish %s drop event: %w", ev.Reason, ctx.Err())
		}
		wait := policy.Delay(try, 0)
		log.Error("CRITICAL: cannot publish drop event; partition will not advance until it succeeds",
			"reason", ev.Reason, "records", ev.Count, "retry_in", wait, "err", err)
		if err := backoff.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("pipeline: publish %s drop event: %w", ev.Reason, err)
		}
	}
}
