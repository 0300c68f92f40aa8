package producer

import (
	"cmp"
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
	// codecHeader names Config.Codec on every record.
	codecHeader []kgo.RecordHeader

	// Emit only hands events to the encoder goroutine: encoding and the sensitive-data
	// filter cost several microseconds per span, which an application's request path
	// should not pay. slots bounds every event held (queued, encoding or in the Kafka
	// client) to MaxBufferedRecords; queue has as much room, so a send never blocks.
	slots chan struct{}
	queue chan queued
	// emitMu makes Close wait for Emits that passed the closed check: an event sent
	// after the encoder stopped would be lost without a trace.
	emitMu sync.RWMutex
	closed bool
	// closing ends an Emit waiting for room under the block policy: Close must not
	// wait BlockTimeout for it before it can take emitMu.
	closing   chan struct{}
	closeOnce sync.Once
	// encCtx is the life of records handed to the Kafka client; Close cancels it so
	// that what cannot be delivered fails (and is counted) instead of blocking Close.
	encCtx    context.Context
	encCancel context.CancelFunc

	mu    sync.Mutex
	drops map[dropKey]*dropAgg

	stop chan struct{}
	wg   sync.WaitGroup
}

// queued is an event for the encoder, or a Flush marker (ev nil) closed once every
// event queued before it is in the Kafka client.
type queued struct {
	ev      *schema.Event
	flushed chan struct{}
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
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords + 1), // slots in Emit are the bound
		kgo.MaxBufferedBytes(cfg.MaxBufferedBytes),
		// A batch is at most one maximal record plus its key, headers and framing, so
		// that the broker (max.message.bytes, 1048588 by default) never refuses a batch
		// the client built: kgo measures batches uncompressed, and payloads that compress
		// poorly once made 1.4 MB batches out of a 4 MiB limit.
		kgo.ProducerBatchMaxBytes(int32(cfg.MaxRecordBytes) + batchOverheadBytes),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
		// Without it kgo never fails a record whose request was written to a broker
		// that then went away: DeliveryTimeout (and Close) waited forever, the way a
		// load generator once hung 14 minutes on a stopped broker. A record failed in
		// flight may still have been stored, and a retry by the caller could store it
		// twice; spanpipe's writes are idempotent, so a duplicate costs nothing.
		kgo.AllowIdempotentProduceCancellation(),
		kgo.AllowAutoTopicCreation(),
	}
	cl, err := kgo.NewClient(append(kopts, o.kopts...)...)
	if err != nil {
		return nil, fmt.Errorf("producer: new kafka client: %w", err)
	}
	p := &Producer{
		cfg:         cfg,
		cl:          cl,
		redact:      red,
		log:         o.log.With("component", "producer", "service", cfg.ServiceName),
		onDrop:      o.onDrop,
		now:         o.now,
		m:           newMetrics(o.reg, cl),
		drops:       make(map[dropKey]*dropAgg),
		codecHeader: codecHeaders[cmp.Or(cfg.Codec, schema.CodecJSON)],
		stop:        make(chan struct{}),
		closing:     make(chan struct{}),
		slots:       make(chan struct{}, cfg.MaxBufferedRecords),
		queue:       make(chan queued, cfg.MaxBufferedRecords+1),
	}
	p.encCtx, p.encCancel = context.WithCancel(context.Background())
	p.wg.Go(p.reportLoop)
	p.wg.Go(p.encodeLoop)
	return p, nil
}

// Emit publishes one event without blocking the caller (under the default policy).
// It only queues the event; a goroutine of the producer fills in the service name and
// environment where the event has none, applies the sensitive-data filter, encodes
// it and hands it to Kafka. Emit returns nil once the event is queued; failures after
// that (not encodable, too large, not delivered) are reported through OnDrop, the
// metrics and a drop event. It returns ErrDropped when the event was dropped at once
// because MaxBufferedRecords events are held (after BlockTimeout under the block
// policy), and ErrClosed after Close.
//
// Emit takes ownership of ev: do not modify it afterwards.
func (p *Producer) Emit(ev *schema.Event) error {
	p.emitMu.RLock()
	defer p.emitMu.RUnlock()
	if p.closed {
		// Lost all the same: counted and passed to OnDrop (no drop event, the client
		// is gone), because callers of a fire-and-forget API rarely check the error.
		p.dropped(dropalerts.ReasonProducerSendFailed, ev.Signal(), ev.TraceID(), ErrClosed)
		return ErrClosed
	}
	select {
	case p.slots <- struct{}{}:
	default:
		if err := p.waitForRoom(); err != nil {
			reason := dropalerts.ReasonProducerBufferFull
			if errors.Is(err, ErrClosed) {
				reason = dropalerts.ReasonProducerSendFailed
			}
			p.dropped(reason, ev.Signal(), ev.TraceID(), err)
			return fmt.Errorf("%w: %w", ErrDropped, err)
		}
	}
	p.queue <- queued{ev: ev}
	return nil
}

// waitForRoom takes a slot under the block policy, waiting up to BlockTimeout.
func (p *Producer) waitForRoom() error {
	full := fmt.Errorf("%d events buffered: %w", p.cfg.MaxBufferedRecords, kgo.ErrMaxBuffered)
	if p.cfg.OnBufferFull != OnFullBlock {
		return full
	}
	t := time.NewTimer(p.cfg.BlockTimeout)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-t.C:
		return fmt.Errorf("no room within %s: %w", p.cfg.BlockTimeout, full)
	case <-p.closing:
		return ErrClosed
	}
}

// encodeLoop turns queued events into Kafka records, in Emit order. When the producer
// closes, events still queued are counted as drops.
func (p *Producer) encodeLoop() {
	for {
		select {
		case q := <-p.queue:
			p.encode(q)
		case <-p.stop:
			for {
				select {
				case q := <-p.queue:
					if q.ev == nil {
						close(q.flushed)
						continue
					}
					p.dropped(dropalerts.ReasonProducerSendFailed, q.ev.Signal(), q.ev.TraceID(), ErrClosed)
					<-p.slots
				default:
					return
				}
			}
		}
	}
}

func (p *Producer) encode(q queued) {
	if q.ev == nil {
		close(q.flushed)
		return
	}
	ev := q.ev
	p.enrich(ev)
	sig, trace := ev.Signal(), ev.TraceID()
	val, err := schema.EncodeAs(nil, p.cfg.Codec, ev)
	if err == nil && len(val) > p.cfg.MaxRecordBytes {
		err = fmt.Errorf("event of %d bytes exceeds producer.max_record_bytes %d", len(val), p.cfg.MaxRecordBytes)
		p.dropped(dropalerts.ReasonTooLarge, sig, trace, err)
		<-p.slots
		return
	}
	if err != nil {
		p.dropped(dropalerts.ReasonProducerEncodeError, sig, trace, err)
		<-p.slots
		return
	}
	rec := &kgo.Record{Value: val, Headers: p.codecHeader}
	if trace != "" {
		rec.Key = []byte(trace) // trace-less signals spread over partitions
	}
	// Produce blocks only while the client is over MaxBufferedBytes; slots already
	// bound the records. encCtx ends at Close, failing what was never delivered.
	p.cl.Produce(p.encCtx, rec, func(_ *kgo.Record, err error) {
		// The slot goes back last: Close waits for every slot, and must not return
		// before this event is counted and passed to OnDrop.
		defer func() { <-p.slots }()
		if err != nil {
			reason := dropalerts.ReasonProducerSendFailed
			if errors.Is(err, kgo.ErrMaxBuffered) {
				reason = dropalerts.ReasonProducerBufferFull
			}
			p.dropped(reason, sig, trace, err)
			return
		}
		p.m.sent.WithLabelValues(string(sig)).Inc()
	})
}

// batchOverheadBytes is room for a record's key, headers and the batch framing.
const batchOverheadBytes = 1 << 10

// codecHeaders are the header of each codec, shared by every record (read-only).
var codecHeaders = map[string][]kgo.RecordHeader{
	schema.CodecJSON:   {{Key: schema.HeaderCodec, Value: []byte(schema.CodecJSON)}},
	schema.CodecBinary: {{Key: schema.HeaderCodec, Value: []byte(schema.CodecBinary)}},
}

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

// minDropReportWait is the least time a drop report waits for Kafka (see reportLoop).
const minDropReportWait = 5 * time.Second

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
			// A report that times out while its request is in flight may still have
			// landed, and is then published again with the next one: a timeout
			// shorter than a produce round trip to a broker just back (a short
			// interval) counted drops twice. Close ends the wait through encCtx.
			ctx, cancel := context.WithTimeout(p.encCtx, max(p.cfg.DropReportInterval, minDropReportWait))
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
	keys := make(map[*kgo.Record]dropKey, len(pending))
	for k, a := range pending {
		ev := dropalerts.Event{
			Signal: k.signal, Reason: k.reason, Count: a.count, FirstTime: a.first, LastTime: a.last,
			Component: dropalerts.ComponentProducer, Instance: p.cfg.ServiceName + "/" + p.cfg.ClientID,
			Error: a.err, SampleTraceIDs: a.samples,
		}
		rec, err := dropalerts.EventRecord(p.cfg.DropTopic, ev)
		if err != nil {
			continue
		}
		recs = append(recs, rec)
		keys[rec] = k
	}
	// Produce, not TryProduce: a full buffer is often why we are reporting.
	res := p.cl.ProduceSync(ctx, recs...)
	var firstErr error
	for _, r := range res {
		if r.Err == nil {
			p.m.dropEvents.Inc()
			continue
		}
		if firstErr == nil {
			firstErr = r.Err
		}
		// Put it back, merged with anything counted meanwhile. Results come in the
		// order Kafka answered, not the order given: find the key by record.
		k := keys[r.Record]
		a := pending[k]
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
	p.emitMu.RLock()
	closed := p.closed
	p.emitMu.RUnlock()
	if closed {
		return ErrClosed
	}
	return p.flush(ctx)
}

func (p *Producer) flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case p.queue <- queued{flushed: done}:
	case <-ctx.Done():
		return fmt.Errorf("producer: flush: %w", ctx.Err())
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("producer: flush: events still being encoded: %w", ctx.Err())
	}
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
	p.closeOnce.Do(func() { close(p.closing) })
	p.emitMu.Lock()
	if p.closed {
		p.emitMu.Unlock()
		return nil
	}
	p.closed = true
	p.emitMu.Unlock()
	err := p.flush(ctx)
	p.encCancel()
	close(p.stop)
	p.wg.Wait()
	p.cl.Close() // fails what is still buffered through the promises: counted as drops
	p.awaitPromises(5 * time.Second)
	p.logUnreported()
	if err != nil {
		return fmt.Errorf("producer: close: %w", err)
	}
	return nil
}

// logUnreported logs, at Close, the drops counted after the last drop event could be
// published (Kafka unreachable, or events failed by closing the client): they are in
// spanpipe_dropped_records_total and were passed to OnDrop, but no drop event will
// say so, so the log must.
func (p *Producer) logUnreported() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, a := range p.drops {
		p.log.Error("drops not published as drop events: the producer closed first",
			"reason", k.reason, "signal", k.signal, "count", a.count, "first", a.first, "last", a.last, "err", a.err)
	}
	p.drops = make(map[dropKey]*dropAgg)
}

// awaitPromises waits until every slot is back, that is until every event Emit took
// has been delivered or counted as a drop: the client calls the promises of records
// it failed while closing after Close has returned. grace bounds the wait.
func (p *Producer) awaitPromises(grace time.Duration) {
	t := time.NewTimer(grace)
	defer t.Stop()
	for range cap(p.slots) {
		select {
		case p.slots <- struct{}{}:
		case <-t.C:
			p.log.Error("events not accounted for at close", "count", cap(p.slots)-len(p.slots))
			return
		}
	}
}

// compression maps producer.compression to a codec: the drop publisher's names, with
// zstd when empty (the smallest batches for the spans topic, which spanpipe reads).
func compression(name string) (kgo.CompressionCodec, error) {
	if name == "" {
		name = "zstd"
	}
	return dropalerts.Codec(name)
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
