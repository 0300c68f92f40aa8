package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/promx"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrClosed is returned by Emit after Close.
var ErrClosed = errors.New("producer: closed")

// ErrDropped is returned by Emit when the event was dropped (buffer full, too large,
// not encodable). The drop is already counted and reported; callers need not act.
var ErrDropped = errors.New("producer: event dropped")

// Drop describes one event the producer could not deliver.
type Drop struct {
	Reason  dropalerts.Reason
	Signal  schema.Signal
	TraceID string
	Err     error
}

// Option configures a Producer.
type Option func(*options)

type options struct {
	log    *slog.Logger
	reg    prometheus.Registerer
	onDrop func(Drop)
	kopts  []kgo.Opt
	now    func() time.Time
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the producer's metrics (default: none).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithOnDrop calls fn for every dropped event, from the goroutine that saw the drop
// (the caller of Emit, or the client's delivery goroutine). fn must not block.
func WithOnDrop(fn func(Drop)) Option { return func(o *options) { o.onDrop = fn } }

// WithKgoOpts appends franz-go options after the producer's own (TLS, SASL, hooks).
func WithKgoOpts(opts ...kgo.Opt) Option {
	return func(o *options) { o.kopts = append(o.kopts, opts...) }
}

// Producer publishes events to Kafka, keyed by trace id.
//
// All methods are safe for concurrent use. New starts the franz-go client's goroutines
// and a drop reporter; Close is required.
type Producer struct {
	cfg    Config
	cl     *kgo.Client
	redact *Redactor
	log    *slog.Logger
	onDrop func(Drop)
	now    func() time.Time
	m      *metrics

	mu     sync.Mutex
	closed bool
	drops  map[dropKey]*dropAgg

	stop chan struct{}
	wg   sync.WaitGroup
}

type dropKey struct {
	reason dropalerts.Reason
	signal schema.Signal
}

type dropAgg struct {
	count       int
	first, last time.Time
	samples     []string
	err         string
}

// New creates a producer. Its Kafka client and drop reporter start at once; call Close.
func New(cfg Config, opts ...Option) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("producer: invalid config: %w", err)
	}
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	red, err := NewRedactor(cfg.Redact)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	codec, _ := compression(cfg.Compression)
	kopts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotence is on by default with acks=all
		kgo.ProducerLinger(cfg.Linger),
		kgo.ProducerBatchCompression(codec),
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		kgo.MaxBufferedBytes(cfg.MaxBufferedBytes),
		kgo.ProducerBatchMaxBytes(int32(cfg.MaxRecordBytes) + 64<<10),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
		kgo.AllowAutoTopicCreation(),
	}
	cl, err := kgo.NewClient(append(kopts, o.kopts...)...)
	if err != nil {
		return nil, fmt.Errorf("producer: new kafka client: %w", err)
	}
	p := &Producer{
		cfg:    cfg,
		cl:     cl,
		redact: red,
		log:    o.log.With("component", "producer", "service", cfg.ServiceName),
		onDrop: o.onDrop,
		now:    o.now,
		m:      newMetrics(o.reg, cl),
		drops:  make(map[dropKey]*dropAgg),
		stop:   make(chan struct{}),
	}
	p.wg.Go(p.reportLoop)
	return p, nil
}

// Emit publishes one event without blocking the caller (under the default policy).
// It fills in the service name and environment where the event has none, applies the
// sensitive-data filter, and encodes the event. It returns nil once the event is
// buffered; delivery failures later are reported through OnDrop, the metrics and a drop
// event. It returns ErrDropped when the event was dropped at once, ErrClosed after Close.
//
// Emit takes ownership of ev: do not modify it afterwards.
func (p *Producer) Emit(ev *schema.Event) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return ErrClosed
	}
	p.enrich(ev)
	val, err := schema.Encode(nil, ev)
	if err != nil {
		p.dropped(dropalerts.ReasonProducerEncodeError, ev.Signal(), ev.TraceID(), err)
		return fmt.Errorf("%w: %w", ErrDropped, err)
	}
	if len(val) > p.cfg.MaxRecordBytes {
		err := fmt.Errorf("event of %d bytes exceeds producer.max_record_bytes %d", len(val), p.cfg.MaxRecordBytes)
		p.dropped(dropalerts.ReasonTooLarge, ev.Signal(), ev.TraceID(), err)
		return fmt.Errorf("%w: %w", ErrDropped, err)
	}
	sig, trace := ev.Signal(), ev.TraceID()
	rec := &kgo.Record{
		Key:     []byte(trace),
		Value:   val,
		Headers: codecHeader,
	}
	if trace == "" {
		rec.Key = nil // spread trace-less signals over partitions
	}
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			reason := dropalerts.ReasonProducerSendFailed
			if errors.Is(err, kgo.ErrMaxBuffered) {
				reason = dropalerts.ReasonProducerBufferFull
			}
			p.dropped(reason, sig, trace, err)
			return
		}
		p.m.sent.WithLabelValues(string(sig)).Inc()
	}
	if p.cfg.OnBufferFull == OnFullBlock {
		return p.produceBlocking(rec, promise)
	}
	// TryProduce reports a full buffer through the promise, asynchronously; checking
	// first lets Emit tell the caller at once. The rare race past this check still ends
	// in the promise as a counted drop.
	if p.cl.BufferedProduceRecords() >= int64(p.cfg.MaxBufferedRecords) {
		err := fmt.Errorf("%d events buffered: %w", p.cfg.MaxBufferedRecords, kgo.ErrMaxBuffered)
		p.dropped(dropalerts.ReasonProducerBufferFull, sig, trace, err)
		return fmt.Errorf("%w: %w", ErrDropped, err)
	}
	p.cl.TryProduce(context.Background(), rec, promise)
	return nil
}

// produceBlocking waits up to BlockTimeout for room. kgo ties a record's whole life to
// the context given to Produce, so the context is cancelled only if the wait for room
// times out, never after the record is buffered.
func (p *Producer) produceBlocking(rec *kgo.Record, promise func(*kgo.Record, error)) error {
	ctx, cancel := context.WithCancel(context.Background())
	timer := time.AfterFunc(p.cfg.BlockTimeout, cancel)
	p.cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
		if errors.Is(err, context.Canceled) {
			err = fmt.Errorf("no room in the buffer within %s: %w", p.cfg.BlockTimeout, kgo.ErrMaxBuffered)
		}
		promise(r, err)
	})
	if !timer.Stop() {
		// The deadline passed: the wait timed out, or the record made it just in time
		// and now fails as cancelled. Either way the promise reports the drop.
		return fmt.Errorf("%w: no room in the buffer within %s", ErrDropped, p.cfg.BlockTimeout)
	}
	return nil
}

var codecHeader = []kgo.RecordHeader{{Key: schema.HeaderCodec, Value: []byte(schema.CodecJSON)}}

// enrich writes the service name and environment (Mastra leaves serviceName off span
// rows) and runs the sensitive-data filter.
func (p *Producer) enrich(ev *schema.Event) {
	fill := func(c *schema.Correlation) {
		if c.ServiceName == "" {
			c.ServiceName = p.cfg.ServiceName
		}
		if c.Environment == "" {
			c.Environment = p.cfg.Environment
		}
	}
	corr := func(c **schema.Correlation) {
		if *c == nil {
			*c = &schema.Correlation{}
		}
		fill(*c)
	}
	switch {
	case ev.Span != nil:
		fill(&ev.Span.Correlation)
		p.redact.RedactSpan(ev.Span)
	case ev.Log != nil:
		corr(&ev.Log.Correlation)
		ev.Log.Data = p.redact.RedactJSON(ev.Log.Data)
		ev.Log.Metadata = p.redact.RedactJSON(ev.Log.Metadata)
	case ev.Metric != nil:
		corr(&ev.Metric.Correlation)
		ev.Metric.Metadata = p.redact.RedactJSON(ev.Metric.Metadata)
	case ev.Score != nil:
		corr(&ev.Score.Correlation)
		ev.Score.Metadata = p.redact.RedactJSON(ev.Score.Metadata)
	case ev.Feedback != nil:
		corr(&ev.Feedback.Correlation)
		ev.Feedback.Metadata = p.redact.RedactJSON(ev.Feedback.Metadata)
	}
}

// dropped counts a drop, tells OnDrop, and queues it for the next drop event.
func (p *Producer) dropped(reason dropalerts.Reason, sig schema.Signal, trace string, err error) {
	p.m.dropped.WithLabelValues(string(sig), string(reason), "producer").Inc()
	now := p.now().UTC()
	p.mu.Lock()
	k := dropKey{reason, sig}
	a := p.drops[k]
	if a == nil {
		a = &dropAgg{first: now, err: dropalerts.SanitizeError(err)}
		p.drops[k] = a
	}
	a.count++
	a.last = now
	if trace != "" && len(a.samples) < dropalerts.MaxSampleTraceIDs {
		a.samples = append(a.samples, trace)
	}
	p.mu.Unlock()
	if p.onDrop != nil {
		p.onDrop(Drop{Reason: reason, Signal: sig, TraceID: trace, Err: err})
	}
}

// reportLoop publishes counted drops as drop events. Events that cannot be published
// (Kafka down) are kept and tried again, so drops during an outage are reported once
// the cluster is back.
func (p *Producer) reportLoop() {
	t := time.NewTicker(p.cfg.DropReportInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DropReportInterval)
			if err := p.reportDrops(ctx); err != nil {
				p.log.Warn("could not publish producer drop events; will retry", "err", err)
			}
			cancel()
		}
	}
}

// reportDrops publishes pending drop events and returns the first error.
func (p *Producer) reportDrops(ctx context.Context) error {
	p.mu.Lock()
	pending := p.drops
	p.drops = make(map[dropKey]*dropAgg)
	p.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	var recs []*kgo.Record
	var keys []dropKey
	for k, a := range pending {
		ev := dropalerts.Event{
			Signal: k.signal, Reason: k.reason, Count: a.count, FirstTime: a.first, LastTime: a.last,
			Component: "producer", Instance: p.cfg.ServiceName + "/" + p.cfg.ClientID,
			Error: a.err, SampleTraceIDs: a.samples,
		}
		body, err := ev.Marshal()
		if err != nil {
			continue
		}
		recs = append(recs, &kgo.Record{
			Topic: p.cfg.DropTopic, Key: []byte(k.reason), Value: body,
			Headers: []kgo.RecordHeader{
				{Key: dropalerts.HeaderKind, Value: []byte(dropalerts.KindDropEvent)},
				{Key: dropalerts.HeaderReason, Value: []byte(k.reason)},
				{Key: dropalerts.HeaderComponent, Value: []byte("producer")},
			},
		})
		keys = append(keys, k)
	}
	// Produce, not TryProduce: a full buffer is often why we are reporting.
	res := p.cl.ProduceSync(ctx, recs...)
	var firstErr error
	for i, r := range res {
		if r.Err == nil {
			p.m.dropEvents.Inc()
			continue
		}
		if firstErr == nil {
			firstErr = r.Err
		}
		// Put it back, merged with anything counted meanwhile.
		k, a := keys[i], pending[keys[i]]
		p.mu.Lock()
		if cur := p.drops[k]; cur != nil {
			cur.count += a.count
			cur.first = a.first
		} else {
			p.drops[k] = a
		}
		p.mu.Unlock()
	}
	return firstErr
}

// Flush waits until every buffered event is acknowledged by Kafka (or failed, in
// which case it was reported as a drop), then publishes pending drop events.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("producer: flush: %w", err)
	}
	if err := p.reportDrops(ctx); err != nil {
		return fmt.Errorf("producer: publish drop events: %w", err)
	}
	return nil
}

// Close flushes within ctx, stops the drop reporter and closes the client. Events
// still buffered when ctx ends are reported as drops (producer-send-failed) in the
// metrics and OnDrop; Emit returns ErrClosed afterwards.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.Flush(ctx)
	close(p.stop)
	p.wg.Wait()
	p.cl.Close() // fails what is still buffered through the promises: counted as drops
	if err != nil {
		return fmt.Errorf("producer: close: %w", err)
	}
	return nil
}

func compression(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "", "zstd":
		return kgo.ZstdCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "none":
		return kgo.NoCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("unknown codec %q (want zstd, lz4, snappy, gzip or none)", name)
}

type metrics struct {
	sent       *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	dropEvents prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, cl *kgo.Client) *metrics {
	m := &metrics{
		sent: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_producer_records_sent_total",
			Help: "Events acknowledged by Kafka, by signal.",
		}, []string{"signal"})),
		dropped: promx.DroppedRecords(reg),
		dropEvents: promx.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spanpipe_producer_drop_events_published_total",
			Help: "Drop events the producer published about its own drops.",
		})),
	}
	promx.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "spanpipe_producer_buffered_records",
		Help: "Events buffered in the producer, waiting for Kafka.",
	}, func() float64 { return float64(cl.BufferedProduceRecords()) }))
	for _, s := range schema.AllSignals {
		m.sent.WithLabelValues(string(s))
		for _, r := range []dropalerts.Reason{dropalerts.ReasonProducerBufferFull, dropalerts.ReasonProducerSendFailed, dropalerts.ReasonTooLarge} {
			m.dropped.WithLabelValues(string(s), string(r), "producer")
		}
	}
	return m
}
