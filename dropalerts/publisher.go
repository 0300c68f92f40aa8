package dropalerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/internal/backoff"
	"github.com/spanpipe/spanpipe/internal/promx"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config configures a [Publisher]: the drops.* keys.
type Config struct {
	// Topic receives drop events. Default "spanpipe.drops".
	Topic string `yaml:"topic"`
	// DeadLetterTopic receives the original records. Empty means [Config.Topic]: one
	// topic to alert on and to replay from, told apart by the spanpipe-kind header.
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// MaxRecordBytes is the largest record the publisher expects to keep: a dropped
	// record can be as large as the largest record the source topic accepts. It sizes
	// the client's buffers; what a batch may hold is the topics' own limit (read from
	// the cluster). Default 16 MiB.
	MaxRecordBytes int `yaml:"max_record_bytes"`
	// Compression of what the publisher writes, and compression.type of the topics it
	// creates: none, gzip, snappy, lz4 or zstd. Default gzip, which every Kafka client
	// reads without a plugin (kafkajs, the most used JavaScript client, does not read
	// snappy, lz4 or zstd on its own).
	Compression string `yaml:"compression"`
	// CreateTopics creates the drop and dead-letter topics with the settings below
	// when they do not exist (needs the CreateTopics ACL). Default true. When false a
	// missing topic is left to the broker's auto-creation, with its defaults.
	CreateTopics bool `yaml:"create_topics"`
	// Partitions of a created topic. Default 3.
	Partitions int32 `yaml:"partitions"`
	// ReplicationFactor of a created topic; -1 means the broker's
	// default.replication.factor. Default -1.
	ReplicationFactor int16 `yaml:"replication_factor"`
	// MaxMessageBytes is max.message.bytes of a created topic: the largest batch it
	// accepts. Default 16 MiB + 64 KiB, so that a record of MaxRecordBytes is kept
	// whole. Dead letters larger than a topic's real limit are truncated (and say so).
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// Retention is retention.ms of a created topic: how long drop events and dead
	// letters can be replayed. Default 168h (7 days).
	Retention time.Duration `yaml:"retention"`
	// RetryDelay and MaxRetryDelay bound the backoff between attempts to publish
	// after a transient failure (broker down, leader moving). Publish retries until
	// it succeeds or its ctx ends. Defaults 500ms and 30s.
	RetryDelay    time.Duration `yaml:"retry_delay"`
	MaxRetryDelay time.Duration `yaml:"max_retry_delay"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Topic:             "spanpipe.drops",
		MaxRecordBytes:    16 << 20,
		Compression:       "gzip",
		CreateTopics:      true,
		Partitions:        3,
		ReplicationFactor: -1,
		MaxMessageBytes:   16<<20 + 64<<10,
		Retention:         7 * 24 * time.Hour,
		RetryDelay:        500 * time.Millisecond,
		MaxRetryDelay:     30 * time.Second,
	}
}

// Validate reports every problem in the config, each naming its drops.* key.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !ValidTopicName(c.Topic) {
		bad("drops.topic must be a Kafka topic name ([a-zA-Z0-9._-], at most 249), got %q", c.Topic)
	}
	if c.DeadLetterTopic != "" && !ValidTopicName(c.DeadLetterTopic) {
		bad("drops.dead_letter_topic must be a Kafka topic name ([a-zA-Z0-9._-], at most 249), got %q", c.DeadLetterTopic)
	}
	if c.MaxRecordBytes <= 0 {
		bad("drops.max_record_bytes must be > 0, got %d", c.MaxRecordBytes)
	}
	if _, err := Codec(c.Compression); err != nil {
		bad("drops.compression: %w", err)
	}
	if c.CreateTopics {
		if c.Partitions < 1 {
			bad("drops.partitions must be >= 1, got %d", c.Partitions)
		}
		if c.ReplicationFactor < 1 && c.ReplicationFactor != -1 {
			bad("drops.replication_factor must be >= 1, or -1 for the broker's default, got %d", c.ReplicationFactor)
		}
		if c.MaxMessageBytes < minTopicBytes {
			bad("drops.max_message_bytes must be >= %d, got %d", minTopicBytes, c.MaxMessageBytes)
		}
		if c.Retention <= 0 {
			bad("drops.retention must be > 0, got %s", c.Retention)
		}
	}
	if c.RetryDelay <= 0 {
		bad("drops.retry_delay must be > 0, got %s", c.RetryDelay)
	}
	if c.MaxRetryDelay < c.RetryDelay {
		bad("drops.max_retry_delay must be >= drops.retry_delay, got %s < %s", c.MaxRetryDelay, c.RetryDelay)
	}
	return errors.Join(errs...)
}

// Codec returns the franz-go codec for a drops.compression value.
func Codec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("must be none, gzip, snappy, lz4 or zstd, got %q", name)
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

// ErrPermanent marks a publish error that retrying cannot fix (the topic is not
// writable by this principal, or rejects the records as invalid). Publish returns it
// at once instead of retrying; the caller must not commit and someone must act:
// spanpipe_dropalerts_publish_failures_total counts it.
var ErrPermanent = errors.New("dropalerts: permanent publish error")

// Publisher writes drop events and dead letters.
type Publisher struct {
	cfg   Config
	cl    *kgo.Client
	log   *slog.Logger
	retry backoff.Policy
	m     *publisherMetrics

	// mu serialises publishing: each ProduceSync carries at most one limit's worth
	// of records, so no batch the client forms (it never merges across calls made
	// one after the other) can exceed the topic's max.message.bytes.
	mu     sync.Mutex
	limits *limits // nil until read from the cluster
}

type publisherMetrics struct {
	events, letters *prometheus.CounterVec
	fails           *prometheus.CounterVec
	truncated       *prometheus.CounterVec
}

// Option configures a Publisher.
type Option func(*Publisher)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(p *Publisher) { p.log = l } }

// WithRegisterer registers the publisher's metrics (default: none).
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(p *Publisher) { p.m = newPublisherMetrics(reg) }
}

// New returns a Publisher that writes through its own client built from kopts
// (seed brokers at least). Its client starts background goroutines: call Close. The
// topics' limits are read (and missing topics created) by [Publisher.Prepare], or by
// the first Publish.
func New(cfg Config, kopts []kgo.Opt, opts ...Option) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dropalerts: invalid config: %w", err)
	}
	codec, _ := Codec(cfg.Compression)
	batchMax := max(cfg.MaxRecordBytes, cfg.MaxMessageBytes) + 64<<10
	base := []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(codec),
		// An upper bound only: Publish cuts its writes to the topics' real limit.
		kgo.ProducerBatchMaxBytes(int32(batchMax)),
		kgo.MaxBufferedBytes(4 * batchMax),
		kgo.ProducerLinger(0),
		kgo.RecordRetries(10),
		// No RecordDeliveryTimeout: it counts from a record's timestamp, and a dead
		// letter keeps its original (old) one.
	}
	if !cfg.CreateTopics {
		base = append(base, kgo.AllowAutoTopicCreation())
	}
	cl, err := kgo.NewClient(append(base, kopts...)...)
	if err != nil {
		return nil, fmt.Errorf("dropalerts: new kafka client: %w", err)
	}
	p := &Publisher{cfg: cfg, cl: cl}
	p.log = slog.New(slog.DiscardHandler)
	p.m = newPublisherMetrics(nil)
	p.retry = backoff.Policy{Initial: cfg.RetryDelay, Max: cfg.MaxRetryDelay, Jitter: 0.2}
	for _, o := range opts {
		o(p)
	}
	return p, nil
}

func newPublisherMetrics(reg prometheus.Registerer) *publisherMetrics {
	return &publisherMetrics{
		events: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_dropalerts_events_total",
			Help: "Drop events published to the drop topic.",
		}, []string{"reason", "component"})),
		letters: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_dropalerts_dead_letters_total",
			Help: "Original records published as dead letters.",
		}, []string{"reason", "component"})),
		fails: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_dropalerts_publish_failures_total",
			Help: "Failed attempts to publish drop events or dead letters. While this grows the affected partitions do not advance.",
		}, []string{"component"})),
		truncated: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_dropalerts_truncated_dead_letters_total",
			Help: "Dead letters published with their value cut to fit the dead-letter topic's max.message.bytes (header spanpipe-drop-truncated); they cannot be replayed.",
		}, []string{"reason", "component"})),
	}
}

// Topic is the drop topic.
func (p *Publisher) Topic() string { return p.cfg.Topic }

// Prepare reads the drop and dead-letter topics' max.message.bytes, creating the
// topics first when they are missing and [Config.CreateTopics] is set. Publish calls
// it when it has not succeeded yet; calling it at start-up surfaces problems early.
func (p *Publisher) Prepare(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.prepare(ctx, true)
}

func (p *Publisher) prepare(ctx context.Context, force bool) error {
	if p.limits != nil && !force {
		return nil
	}
	l, err := readLimits(ctx, p.cl, &p.cfg, p.log)
	if err != nil {
		return err
	}
	p.limits = l
	return nil
}

// Publish writes the dead letters, then the drop event (with DeadLetterTopic and
// DeadLetters filled in), and returns once Kafka acknowledged all of them. Writes are
// cut to the topics' max.message.bytes; a dead letter larger than that is published
// truncated, with headers saying so ([HeaderTruncated], [HeaderOriginalSize]). It
// retries transient failures with backoff until ctx ends, and returns at once an
// error wrapping [ErrPermanent] for failures retrying cannot fix. On error nothing may
// be committed; calling again may write some records twice, which replay tolerates
// because sinks are idempotent.
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
	evRec, err := EventRecord(p.cfg.Topic, ev)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()

	// Dead letters first, the drop event last: whoever reads the event finds its
	// records already there.
	pending := letters
	published := 0
	truncated := 0
	eventDone := false
	for attempt := 1; ; attempt++ {
		err := p.prepare(ctx, false)
		if err == nil {
			var n, cut int
			n, cut, err = p.produceLetters(ctx, &ev, pending)
			pending = pending[n:]
			published += n
			truncated += cut
			if err == nil && !eventDone {
				err = p.produce(ctx, []*kgo.Record{evRec})
				eventDone = err == nil
			}
			if err == nil {
				break
			}
		}
		p.m.fails.WithLabelValues(ev.Component).Inc()
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("dropalerts: publish to %s: %w (last error: %w)", p.cfg.Topic, ctx.Err(), err)
		case tooLarge(err):
			// The limit was lowered since it was read, or the estimate was off: read
			// it again, and halve it when the cluster still claims the same.
			prev := p.limits.bytes
			if rerr := p.prepare(ctx, true); rerr != nil || p.limits.bytes >= prev {
				p.limits = &limits{bytes: prev / 2}
			}
			if p.limits.bytes < minTopicBytes {
				return fmt.Errorf("dropalerts: publish to %s: the topic accepts less than %d bytes: %w: %w", p.cfg.Topic, minTopicBytes, ErrPermanent, err)
			}
			p.log.Warn("drop topic rejected a batch as too large; cutting batches smaller", "topic", p.cfg.Topic,
				"max_batch_bytes", p.limits.bytes, "err", err)
			continue
		case errors.Is(err, ErrPermanent):
			return err
		case permanent(err):
			return fmt.Errorf("dropalerts: publish to %s: %w: %w", p.cfg.Topic, ErrPermanent, err)
		}
		wait := p.retry.Delay(attempt, 0)
		p.log.Error("CRITICAL: cannot publish drop event; retrying", "topic", p.cfg.Topic, "reason", ev.Reason,
			"dead_letters_left", len(pending), "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err)
		if serr := backoff.Sleep(ctx, wait); serr != nil {
			return fmt.Errorf("dropalerts: publish to %s: %w (last error: %w)", p.cfg.Topic, serr, err)
		}
	}
	p.m.events.WithLabelValues(string(ev.Reason), ev.Component).Inc()
	if published > 0 {
		p.m.letters.WithLabelValues(string(ev.Reason), ev.Component).Add(float64(published))
	}
	if truncated > 0 {
		p.m.truncated.WithLabelValues(string(ev.Reason), ev.Component).Add(float64(truncated))
		p.log.Warn("dead letters larger than the dead-letter topic accepts were truncated", "topic", p.cfg.deadLetterTopic(),
			"count", truncated, "reason", ev.Reason)
	}
	return nil
}

// produceLetters publishes letters in chunks that fit the dead-letter topic and
// returns how many, in order, Kafka acknowledged, and how many were truncated.
func (p *Publisher) produceLetters(ctx context.Context, ev *Event, letters []DeadLetter) (done, truncated int, err error) {
	budget := p.limits.batchBudget()
	for done < len(letters) {
		var chunk []*kgo.Record
		size := 0
		cut := 0
		for _, dl := range letters[done+len(chunk):] {
			r, wasCut := p.deadLetterRecord(ev, dl, budget)
			rs := RecordSize(r)
			if len(chunk) > 0 && size+rs > budget {
				break
			}
			chunk = append(chunk, r)
			size += rs
			if wasCut {
				cut++
			}
		}
		if err := p.produce(ctx, chunk); err != nil {
			return done, truncated, err
		}
		done += len(chunk)
		truncated += cut
	}
	return done, truncated, nil
}

// produce writes recs and waits for all of them. A chunk is retried whole: records of
// it that made it are written again, which replay and the alerter tolerate.
func (p *Publisher) produce(ctx context.Context, recs []*kgo.Record) error {
	var errs []error
	for _, r := range p.cl.ProduceSync(ctx, recs...) {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	// One error per cause is enough to act on.
	return errors.Join(dedupe(errs)...)
}

func dedupe(errs []error) []error {
	var out []error
	seen := map[string]bool{}
	for _, e := range errs {
		if s := e.Error(); !seen[s] {
			seen[s] = true
			out = append(out, e)
		}
	}
	return out
}

// deadLetterRecord builds the dead letter of dl: the original record with the
// dead-letter headers, truncated to budget bytes when it is larger.
func (p *Publisher) deadLetterRecord(ev *Event, dl DeadLetter, budget int) (*kgo.Record, bool) {
	src := dl.Record
	info := DeadLetterInfo{
		Reason: ev.Reason, Error: ev.Error, SourceTopic: src.Topic, SourcePartition: src.Partition, SourceOffset: src.Offset,
		Attempts: dl.Attempts, FirstFailure: dl.FirstFailure, Component: ev.Component, Headers: src.Headers,
	}
	if dl.Err != nil {
		info.Error = SanitizeError(dl.Err)
	}
	r := &kgo.Record{Topic: p.cfg.deadLetterTopic(), Key: src.Key, Value: src.Value, Timestamp: src.Timestamp}
	r.Headers = info.AppendHeaders(make([]kgo.RecordHeader, 0, len(src.Headers)+10))
	over := RecordSize(r) - budget
	if over <= 0 {
		return r, false
	}
	info.Truncated, info.OriginalSize = true, len(src.Value)
	// The marker headers and the original size take a few bytes more.
	over += 64
	if over > len(src.Value) {
		// Key and headers alone do not fit: keep the dead-letter headers and a
		// bounded key, drop the original headers.
		info.Headers = nil
		if len(r.Key) > 1024 {
			r.Key = r.Key[:1024]
		}
		r.Value = nil
	} else {
		r.Value = src.Value[:len(src.Value)-over]
	}
	r.Headers = info.AppendHeaders(make([]kgo.RecordHeader, 0, len(info.Headers)+10))
	if over := RecordSize(r) - budget; over > 0 && len(r.Value) > 0 {
		r.Value = r.Value[:max(0, len(r.Value)-over)]
	}
	return r, true
}

// RecordSize bounds a record's size inside a batch (v2 format): its fields plus the
// varints and attributes around them. A write of records whose sizes add up to at
// most a topic's max.message.bytes minus [BatchOverhead] fits the topic.
func RecordSize(r *kgo.Record) int {
	n := 32 + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += 10 + len(h.Key) + len(h.Value)
	}
	return n
}

func tooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// permanent reports errors that no retry fixes: the principal may not write, or the
// broker refuses the records themselves (a compacted topic without keys, a policy).
func permanent(err error) bool {
	for _, e := range []error{kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed, kerr.InvalidRecord,
		kerr.PolicyViolation, kerr.InvalidTopicException, kerr.UnsupportedCompressionType, kerr.InvalidRequiredAcks,
		kerr.SaslAuthenticationFailed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Close flushes and closes the publisher's client.
func (p *Publisher) Close(ctx context.Context) error {
	err := p.cl.Flush(ctx)
	p.cl.Close()
	if err != nil {
		return fmt.Errorf("dropalerts: flush: %w", err)
	}
	return nil
}
