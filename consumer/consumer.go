package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/internal/kafkasec"
	"github.com/spanpipe/spanpipe/internal/promx"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Config configures a group member.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string `yaml:"brokers"`
	// Topics to consume. Default ["spanpipe.spans"].
	Topics []string `yaml:"topics"`
	// Group is the consumer group. Default "spanpipe". Every `spanpipe consume` process
	// of one group shares the partitions.
	Group string `yaml:"group"`
	// ClientID names this member in broker logs. Default "spanpipe".
	ClientID string `yaml:"client_id"`
	// MaxPollRecords bounds the records taken from the client per poll. Taking a whole
	// fetch at once lets the client fetch the next one while this one is decoded.
	// Default 10000.
	MaxPollRecords int `yaml:"max_poll_records"`
	// FetchMaxBytes bounds one fetch response (compressed). Default 16 MiB.
	FetchMaxBytes int32 `yaml:"fetch_max_bytes"`
	// SessionTimeout: a member silent this long is removed from the group. Default 45s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// RebalanceTimeout bounds how long a revoke may take to flush and commit. Default 60s.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// ShutdownTimeout bounds the drain at shutdown; what is not written by then stays
	// uncommitted and is redelivered. Default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// StartFromEnd makes a group without committed offsets start at the end of the
	// topics instead of the beginning. Default false (nothing already in Kafka is skipped).
	StartFromEnd bool `yaml:"start_from_end"`
	// Security holds kafka.tls and kafka.sasl (see [kafkasec.Config]); the commands
	// turn it into franz-go options passed with [WithKgoOpts].
	Security kafkasec.Config `yaml:",inline"`
}

// DefaultConfig returns the defaults (no brokers).
func DefaultConfig() Config {
	return Config{
		Topics:           []string{"spanpipe.spans"},
		Group:            "spanpipe",
		ClientID:         "spanpipe",
		MaxPollRecords:   10000,
		FetchMaxBytes:    16 << 20,
		SessionTimeout:   45 * time.Second,
		RebalanceTimeout: 60 * time.Second,
		ShutdownTimeout:  30 * time.Second,
	}
}

// Validate reports every problem, each naming its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(c.Brokers) == 0 {
		bad("kafka.brokers must list at least one broker")
	}
	if len(c.Topics) == 0 {
		bad("kafka.topics must list at least one topic")
	}
	if c.Group == "" {
		bad("kafka.group must not be empty")
	}
	if c.MaxPollRecords <= 0 {
		bad("kafka.max_poll_records must be > 0, got %d", c.MaxPollRecords)
	}
	if c.FetchMaxBytes <= 0 {
		bad("kafka.fetch_max_bytes must be > 0, got %d", c.FetchMaxBytes)
	}
	if c.SessionTimeout <= 0 {
		bad("kafka.session_timeout must be > 0, got %s", c.SessionTimeout)
	}
	if c.RebalanceTimeout <= 0 {
		bad("kafka.rebalance_timeout must be > 0, got %s", c.RebalanceTimeout)
	}
	if c.ShutdownTimeout <= 0 {
		bad("kafka.shutdown_timeout must be > 0, got %s", c.ShutdownTimeout)
	}
	return errors.Join(errs...)
}

// Option configures a Consumer.
type Option func(*options)

type options struct {
	log   *slog.Logger
	reg   prometheus.Registerer
	kopts []kgo.Opt
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the consumer's metrics (default: none).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithKgoOpts appends franz-go options after the consumer's own (hooks, TLS, SASL...).
func WithKgoOpts(opts ...kgo.Opt) Option {
	return func(o *options) { o.kopts = append(o.kopts, opts...) }
}

// Consumer is one member of the consumer group.
type Consumer struct {
	cfg Config
	pl  *pipeline.Pipeline
	cl  *kgo.Client
	log *slog.Logger
	m   *metrics

	// pipeMu serialises the buffering side of the pipeline between the poll loop and
	// the rebalance callbacks.
	pipeMu   sync.Mutex
	jobs     chan job
	progress chan struct{}
	closing  atomic.Bool
	paused   atomic.Bool

	assignedMu sync.Mutex
	assigned   map[string]map[int32]struct{}
	// expired holds the partitions assigned since the poll loop last checked them for
	// records lost to retention (see reportExpired).
	expired expiredCheck

	// abandoned is set once a unit could not be queued at shutdown; see enqueue.
	abandoned bool
	// next is the next offset to read per partition (poll loop only).
	next map[string]map[int32]int64

	// recs and decoded are the poll loop's scratch space, reused across polls.
	recs    []*kgo.Record
	decoded []pipeline.Decoded
}

type job struct {
	u    *pipeline.Unit
	done chan struct{} // a barrier when u is nil
}

// New creates the member and its Kafka client. The client starts background
// goroutines at once: call [Consumer.Run] (which closes it) or [Consumer.Close].
func New(cfg Config, pl *pipeline.Pipeline, opts ...Option) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consumer: invalid config: %w", err)
	}
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	c := &Consumer{
		cfg:      cfg,
		pl:       pl,
		log:      o.log.With("component", "consumer", "group", cfg.Group),
		m:        newMetrics(o.reg),
		progress: make(chan struct{}, 1),
		assigned: make(map[string]map[int32]struct{}),
		next:     make(map[string]map[int32]int64),
	}
	reset := kgo.NewOffset().AtStart()
	if cfg.StartFromEnd {
		reset = kgo.NewOffset().AtEnd()
	}
	kopts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(reset),
		kgo.FetchMaxBytes(cfg.FetchMaxBytes),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
	}
	cl, err := kgo.NewClient(append(kopts, o.kopts...)...)
	if err != nil {
		return nil, fmt.Errorf("consumer: new kafka client: %w", err)
	}
	c.cl = cl
	return c, nil
}

// Client is the underlying franz-go client (for admin calls and lag checks).
func (c *Consumer) Client() *kgo.Client { return c.cl }

// Close closes the client without draining; use it only when Run was never called.
func (c *Consumer) Close() {
	c.closing.Store(true)
	c.cl.Close()
}

// Run consumes until ctx is cancelled, then drains and leaves the group. It returns
// nil after a clean shutdown.
func (c *Consumer) Run(ctx context.Context) error {
	// The writer outlives ctx: after cancellation it still has to drain, bounded by
	// ShutdownTimeout, which cancels writerCtx.
	writerCtx, cancelWriter := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWriter()
	queue := c.pl.Config().MaxBufferSize/c.pl.Config().MaxBatchSize + 2
	c.jobs = make(chan job, queue)
	var wg sync.WaitGroup
	wg.Go(func() { c.writer(writerCtx) })

	c.log.Info("consuming", "topics", c.cfg.Topics, "strategy", c.pl.Strategy())
	for ctx.Err() == nil {
		if !c.pollOnce(ctx) {
			break
		}
	}

	// Shutdown: stop taking input, drain what we hold, commit, leave.
	start := time.Now()
	drainCtx, cancelDrain := context.WithTimeout(writerCtx, c.cfg.ShutdownTimeout)
	c.pipeMu.Lock()
	c.enqueue(drainCtx, c.pl.Seal(pipeline.TriggerShutdown))
	c.pipeMu.Unlock()
	err := c.barrier(drainCtx)
	cancelDrain()
	if err != nil {
		c.log.Error("shutdown drain deadline passed; unwritten records stay uncommitted and will be redelivered",
			"timeout", c.cfg.ShutdownTimeout, "buffered", c.pl.Buffered())
		cancelWriter()
	}
	close(c.jobs)
	wg.Wait()
	c.log.Info("drained", "took", time.Since(start).Round(time.Millisecond))
	c.closing.Store(true)
	c.cl.Close() // leaves the group
	c.log.Info("left group")
	return nil
}

// pollOnce runs one poll cycle; false means the client is closed.
func (c *Consumer) pollOnce(ctx context.Context) bool {
	pollCtx := ctx
	c.pipeMu.Lock()
	if due, at := c.pl.Due(); due {
		c.enqueue(ctx, c.pl.Seal(pipeline.TriggerInterval))
	} else if !at.IsZero() {
		var cancel context.CancelFunc
		pollCtx, cancel = context.WithDeadline(ctx, at)
		defer cancel()
	}
	c.pipeMu.Unlock()

	fetches := c.cl.PollRecords(pollCtx, c.cfg.MaxPollRecords)
	if fetches.IsClientClosed() {
		return false
	}
	c.checkExpired(ctx)
	c.pipeMu.Lock()
	defer c.cl.AllowRebalance()
	defer c.pipeMu.Unlock()
	fetches.EachError(func(topic string, p int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		c.m.fetchErrors.Inc()
		c.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
	})
	c.recs = c.recs[:0]
	fetches.EachRecord(func(r *kgo.Record) { c.recs = append(c.recs, r) })
	c.decodeAll(c.recs)
	for i, rec := range c.recs {
		if ctx.Err() != nil {
			// Shutting down: the rest of the poll is not added, so not committed;
			// the next owner of the partitions reads it again.
			break
		}
		if u := c.pl.AddDecoded(rec, c.decoded[i]); u != nil {
			c.enqueue(ctx, u)
		}
		c.consumed(rec)
		if c.pl.Full() {
			c.waitForRoom(ctx)
		}
	}
	clear(c.recs)
	clear(c.decoded)
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		last := p.Records[len(p.Records)-1].Offset
		c.m.lag.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(max(0, p.HighWatermark-last-1)))
	})
	return true
}

// consumed remembers the next offset to read of rec's partition, for the lag gauge
// while fetching is paused.
func (c *Consumer) consumed(rec *kgo.Record) {
	ps := c.next[rec.Topic]
	if ps == nil {
		ps = make(map[int32]int64)
		c.next[rec.Topic] = ps
	}
	ps[rec.Partition] = rec.Offset + 1
}

// refreshLag sets the lag gauge from the partitions' end offsets. Fetch responses
// carry the high watermark, but none arrive while fetching is paused, which is when
// lag grows and an alert on it must fire.
func (c *Consumer) refreshLag(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(c.cl).ListEndOffsets(ctx, c.cfg.Topics...)
	if err != nil {
		c.log.Debug("lag refresh: list end offsets", "err", err)
		return
	}
	ends.Each(func(o kadm.ListedOffset) {
		next, ok := c.next[o.Topic][o.Partition]
		if !ok || o.Err != nil || !c.isAssigned(o.Topic, o.Partition) {
			return
		}
		c.m.lag.WithLabelValues(o.Topic, strconv.Itoa(int(o.Partition))).Set(float64(max(0, o.Offset-next)))
	})
}

func (c *Consumer) isAssigned(topic string, p int32) bool {
	c.assignedMu.Lock()
	defer c.assignedMu.Unlock()
	_, ok := c.assigned[topic][p]
	return ok
}

// decodeAll decodes recs into c.decoded, spread over every core when there are
// enough of them: decoding is most of the CPU a record costs, and the rest of the
// poll loop (adding in order, batching) is sequential.
func (c *Consumer) decodeAll(recs []*kgo.Record) {
	if cap(c.decoded) < len(recs) {
		c.decoded = make([]pipeline.Decoded, len(recs))
	}
	c.decoded = c.decoded[:len(recs)]
	workers := min(runtime.GOMAXPROCS(0), len(recs)/minRecordsPerDecoder)
	if workers <= 1 {
		for i, rec := range recs {
			c.decoded[i] = c.pl.Decode(rec)
		}
		return
	}
	var wg sync.WaitGroup
	per := (len(recs) + workers - 1) / workers
	for lo := 0; lo < len(recs); lo += per {
		hi := min(lo+per, len(recs))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				c.decoded[i] = c.pl.Decode(recs[i])
			}
		})
	}
	wg.Wait()
}

// lagRefreshInterval is how often the lag gauge is refreshed while fetching is paused.
var lagRefreshInterval = 5 * time.Second

// minRecordsPerDecoder keeps small polls on one goroutine, where starting more would
// cost more than it saves.
const minRecordsPerDecoder = 64

// waitForRoom pauses fetching while the pipeline is full. Kafka keeps the records;
// memory stays bounded by MaxBufferSize.
func (c *Consumer) waitForRoom(ctx context.Context) {
	if !c.paused.Swap(true) {
		c.cl.PauseFetchTopics(c.cfg.Topics...)
		c.m.paused.Set(float64(c.assignedCount()))
		c.log.Info("buffer full, fetching paused", "buffered", c.pl.Buffered())
	}
	lagTick := time.NewTicker(lagRefreshInterval)
	defer lagTick.Stop()
	for c.pl.Full() {
		select {
		case <-c.progress:
		case <-lagTick.C:
			c.refreshLag(ctx)
		case <-ctx.Done():
			// Shutdown while full: keep what we hold, the drain writes it.
			return
		}
	}
	c.cl.ResumeFetchTopics(c.cfg.Topics...)
	c.paused.Store(false)
	c.m.paused.Set(0)
	c.log.Info("fetching resumed", "buffered", c.pl.Buffered())
}

// enqueue hands a sealed unit to the writer, waiting for room in the queue while ctx
// lasts. A unit that cannot be queued is abandoned (its records are redelivered), and
// so is every unit after it: committing a later unit would skip the abandoned one.
// Called with pipeMu held.
func (c *Consumer) enqueue(ctx context.Context, u *pipeline.Unit) {
	if u == nil {
		return
	}
	if !c.abandoned {
		select {
		case c.jobs <- job{u: u}:
			return
		case <-ctx.Done():
			c.abandoned = true
			c.log.Warn("writer queue full at shutdown; records not written stay uncommitted and will be redelivered")
		}
	}
	c.pl.Abandon(u)
}

// barrier waits until every unit enqueued before it is written and committed.
func (c *Consumer) barrier(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case c.jobs <- job{done: done}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Consumer) writer(ctx context.Context) {
	for j := range c.jobs {
		if j.u != nil {
			units, barrier := c.queuedBehind(j.u)
			u := c.pl.Merge(units)
			if err := c.pl.Write(ctx, u); err != nil {
				c.pl.Abandon(u)
			} else {
				c.commit(ctx, u.Offsets())
			}
			select {
			case c.progress <- struct{}{}:
			default:
			}
			if barrier != nil {
				close(barrier)
			}
		}
		if j.done != nil {
			close(j.done)
		}
	}
}

// queuedBehind collects the units already waiting after first, up to the next barrier,
// so that one write (and one commit) covers them all.
func (c *Consumer) queuedBehind(first *pipeline.Unit) (units []*pipeline.Unit, barrier chan struct{}) {
	units = []*pipeline.Unit{first}
	for {
		select {
		case j, ok := <-c.jobs:
			if !ok {
				return units, nil
			}
			if j.u != nil {
				units = append(units, j.u)
			}
			if j.done != nil {
				return units, j.done
			}
		default:
			return units, nil
		}
	}
}

func (c *Consumer) commit(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset) {
	if len(offsets) == 0 {
		return
	}
	var cerr error
	c.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerrFor(p.ErrorCode); err != nil && cerr == nil {
					cerr = fmt.Errorf("%s[%d]: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	if cerr != nil {
		// Not fatal: the records are stored; a later commit, or redelivery into an
		// idempotent sink, covers it.
		c.m.commits.WithLabelValues("error").Inc()
		c.log.Warn("commit failed; records may be redelivered (harmless, writes are idempotent)", "err", cerr)
		return
	}
	c.m.commits.WithLabelValues("ok").Inc()
}

func (c *Consumer) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	c.m.rebalances.WithLabelValues("assigned").Inc()
	c.expired.note(assigned)
	c.assignedMu.Lock()
	for t, ps := range assigned {
		if c.assigned[t] == nil {
			c.assigned[t] = make(map[int32]struct{})
		}
		for _, p := range ps {
			c.assigned[t][p] = struct{}{}
		}
	}
	c.assignedMu.Unlock()
	c.log.Info("partitions assigned", "partitions", assigned)
}

func (c *Consumer) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	c.m.rebalances.WithLabelValues("revoked").Inc()
	c.release(ctx, revoked, "revoked")
}

func (c *Consumer) onLost(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.m.rebalances.WithLabelValues("lost").Inc()
	c.release(ctx, lost, "lost")
}

// release flushes and commits everything before partitions go to another member, so
// that nothing they get is also in our buffer unacknowledged (Redpanda Connect #4010).
func (c *Consumer) release(ctx context.Context, parts map[string][]int32, how string) {
	if !c.closing.Load() && c.jobs != nil {
		start := time.Now()
		bctx, cancel := context.WithTimeout(ctx, c.cfg.RebalanceTimeout)
		c.pipeMu.Lock()
		c.enqueue(bctx, c.pl.Seal(pipeline.TriggerRevoke))
		c.pipeMu.Unlock()
		if err := c.barrier(bctx); err != nil {
			c.log.Error("could not flush before giving up partitions; their records will be redelivered", "how", how, "err", err)
		}
		cancel()
		c.log.Info("partitions "+how+" after flush and commit", "partitions", parts, "took", time.Since(start).Round(time.Millisecond))
	}
	c.assignedMu.Lock()
	for t, ps := range parts {
		for _, p := range ps {
			delete(c.assigned[t], p)
			c.m.lag.DeleteLabelValues(t, strconv.Itoa(int(p)))
		}
	}
	c.assignedMu.Unlock()
}

func (c *Consumer) assignedCount() int {
	c.assignedMu.Lock()
	defer c.assignedMu.Unlock()
	n := 0
	for _, ps := range c.assigned {
		n += len(ps)
	}
	return n
}

type metrics struct {
	lag         *prometheus.GaugeVec
	paused      prometheus.Gauge
	rebalances  *prometheus.CounterVec
	commits     *prometheus.CounterVec
	fetchErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		lag: promx.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spanpipe_consumer_lag_records",
			Help: "Records in the partition after the last one consumed (high watermark - next offset).",
		}, []string{"topic", "partition"})),
		paused: promx.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spanpipe_consumer_paused_partitions",
			Help: "Partitions whose fetching is paused because the pipeline buffer is full.",
		})),
		rebalances: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_consumer_rebalances_total",
			Help: "Partition assignment changes seen by this member, by event.",
		}, []string{"event"})),
		commits: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_consumer_commits_total",
			Help: "Offset commits, by outcome.",
		}, []string{"outcome"})),
		fetchErrors: promx.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spanpipe_consumer_fetch_errors_total",
			Help: "Errors returned by fetches.",
		})),
	}
	for _, e := range []string{"assigned", "revoked", "lost"} {
		m.rebalances.WithLabelValues(e)
	}
	m.commits.WithLabelValues("ok")
	m.commits.WithLabelValues("error")
	return m
}
