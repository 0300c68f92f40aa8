package dropalerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/internal/promx"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config configures a [Publisher].
type Config struct {
	// Topic receives drop events. Default "spanpipe.drops".
	Topic string `yaml:"topic"`
	// DeadLetterTopic receives the original records. Empty means [Config.Topic]: one
	// topic to alert on and to replay from, told apart by the spanpipe-kind header.
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// MaxRecordBytes is the largest record the publisher will write; a dropped record
	// can be as large as the largest record the source topic accepts. Default 16 MiB.
	MaxRecordBytes int `yaml:"max_record_bytes"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Topic: "spanpipe.drops", MaxRecordBytes: 16 << 20}
}

// Validate reports every problem in the config.
func (c Config) Validate() error {
	var errs []error
	if c.Topic == "" {
		errs = append(errs, errors.New("drops.topic must not be empty"))
	}
	if c.MaxRecordBytes <= 0 {
		errs = append(errs, errors.New("drops.max_record_bytes must be > 0"))
	}
	return errors.Join(errs...)
}

func (c Config) deadLetterTopic() string {
	if c.DeadLetterTopic != "" {
		return c.DeadLetterTopic
	}
	return c.Topic
}

// DeadLetter is one original record to keep, with why and how often it failed.
type DeadLetter struct {
	Record       *kgo.Record
	Attempts     int
	FirstFailure time.Time
	// Err is this record's own error, written to its spanpipe-drop-error header. Nil
	// means the drop event's error (records of one batch that failed together).
	Err error
}

// Publisher writes drop events and dead letters.
type Publisher struct {
	cfg     Config
	cl      *kgo.Client
	ownsCl  bool
	log     *slog.Logger
	events  *prometheus.CounterVec
	letters *prometheus.CounterVec
	fails   *prometheus.CounterVec
}

// Option configures a Publisher.
type Option func(*Publisher)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(p *Publisher) { p.log = l } }

// WithRegisterer registers the publisher's metrics (default: none).
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(p *Publisher) { p.newMetrics(reg) }
}

// New returns a Publisher that writes through its own client built from kopts
// (seed brokers at least). Its client starts background goroutines: call Close.
func New(cfg Config, kopts []kgo.Opt, opts ...Option) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dropalerts: invalid config: %w", err)
	}
	base := []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchMaxBytes(int32(cfg.MaxRecordBytes) + 64<<10),
		kgo.MaxBufferedBytes(4 * (cfg.MaxRecordBytes + 64<<10)),
		kgo.ProducerLinger(0),
		kgo.AllowAutoTopicCreation(),
		kgo.RecordRetries(10),
	}
	cl, err := kgo.NewClient(append(base, kopts...)...)
	if err != nil {
		return nil, fmt.Errorf("dropalerts: new kafka client: %w", err)
	}
	p := &Publisher{cfg: cfg, cl: cl, ownsCl: true}
	p.init(opts)
	return p, nil
}

func (p *Publisher) init(opts []Option) {
	p.log = slog.New(slog.DiscardHandler)
	p.newMetrics(nil)
	for _, o := range opts {
		o(p)
	}
}

func (p *Publisher) newMetrics(reg prometheus.Registerer) {
	p.events = promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spanpipe_dropalerts_events_total",
		Help: "Drop events published to the drop topic.",
	}, []string{"reason", "component"}))
	p.letters = promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spanpipe_dropalerts_dead_letters_total",
		Help: "Original records published as dead letters.",
	}, []string{"reason", "component"}))
	p.fails = promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spanpipe_dropalerts_publish_failures_total",
		Help: "Failed attempts to publish drop events or dead letters. While this grows the affected partitions do not advance.",
	}, []string{"component"}))
}

// Topic is the drop topic.
func (p *Publisher) Topic() string { return p.cfg.Topic }

// Publish writes the dead letters, then the drop event (with DeadLetterTopic and
// DeadLetters filled in), and returns once Kafka acknowledged all of them. On error
// nothing may be committed; calling again may write some records twice, which replay
// tolerates because sinks are idempotent.
func (p *Publisher) Publish(ctx context.Context, ev Event, letters []DeadLetter) error {
	if ev.Count == 0 && len(letters) == 0 {
		return nil
	}
	if ev.FirstTime.IsZero() {
		ev.FirstTime = time.Now().UTC()
	}
	if ev.LastTime.IsZero() {
		ev.LastTime = ev.FirstTime
	}
	if len(letters) > 0 {
		ev.DeadLetterTopic = p.cfg.deadLetterTopic()
		ev.DeadLetters = len(letters)
	}
	recs := make([]*kgo.Record, 0, len(letters)+1)
	for _, dl := range letters {
		recs = append(recs, p.deadLetterRecord(&ev, dl))
	}
	body, err := ev.Marshal()
	if err != nil {
		return fmt.Errorf("dropalerts: encode drop event: %w", err)
	}
	recs = append(recs, &kgo.Record{
		Topic: p.cfg.Topic,
		Key:   []byte(string(ev.Reason)),
		Value: body,
		Headers: []kgo.RecordHeader{
			{Key: HeaderKind, Value: []byte(KindDropEvent)},
			{Key: HeaderReason, Value: []byte(ev.Reason)},
			{Key: HeaderComponent, Value: []byte(ev.Component)},
		},
	})
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		p.fails.WithLabelValues(ev.Component).Inc()
		return fmt.Errorf("dropalerts: publish %d records to %s: %w", len(recs), p.cfg.Topic, err)
	}
	p.events.WithLabelValues(string(ev.Reason), ev.Component).Inc()
	if len(letters) > 0 {
		p.letters.WithLabelValues(string(ev.Reason), ev.Component).Add(float64(len(letters)))
	}
	return nil
}

func (p *Publisher) deadLetterRecord(ev *Event, dl DeadLetter) *kgo.Record {
	src := dl.Record
	errText := ev.Error
	if dl.Err != nil {
		errText = SanitizeError(dl.Err)
	}
	hs := make([]kgo.RecordHeader, 0, len(src.Headers)+8)
	hs = append(hs, src.Headers...)
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderKind, Value: []byte(KindDeadLetter)},
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(ev.Reason)},
		kgo.RecordHeader{Key: HeaderError, Value: []byte(errText)},
		kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(src.Topic)},
		kgo.RecordHeader{Key: HeaderSourcePartition, Value: []byte(itoa(int64(src.Partition)))},
		kgo.RecordHeader{Key: HeaderSourceOffset, Value: []byte(itoa(src.Offset))},
		kgo.RecordHeader{Key: HeaderAttempts, Value: []byte(itoa(int64(dl.Attempts)))},
		kgo.RecordHeader{Key: HeaderComponent, Value: []byte(ev.Component)},
	)
	if !dl.FirstFailure.IsZero() {
		hs = append(hs, kgo.RecordHeader{Key: HeaderFirstFailure, Value: []byte(dl.FirstFailure.UTC().Format(time.RFC3339Nano))})
	}
	return &kgo.Record{
		Topic:     p.cfg.deadLetterTopic(),
		Key:       src.Key,
		Value:     src.Value,
		Headers:   hs,
		Timestamp: src.Timestamp,
	}
}

// Close flushes and closes the publisher's client.
func (p *Publisher) Close(ctx context.Context) error {
	err := p.cl.Flush(ctx)
	if p.ownsCl {
		p.cl.Close()
	}
	if err != nil {
		return fmt.Errorf("dropalerts: flush: %w", err)
	}
	return nil
}
