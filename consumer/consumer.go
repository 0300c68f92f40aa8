package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/backoff"
	"github.com/spanpipe/spanpipe/internal/kafkasec"
	"github.com/spanpipe/spanpipe/internal/promx"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/twmb/franz-go/pkg/kerr"
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
	// fetch at once lets the client fetch the next one while this one is decoded. A
	// poll takes no more than pipeline.max_buffer_size has room for: what does not
	// fit stays in the client, undecoded. Default 10000.
	MaxPollRecords int `yaml:"max_poll_records"`
	// FetchMaxBytes bounds one fetch response (compressed). The client holds up to one
	// response per broker (see MaxConcurrentFetches) beside the one being decoded, each
	// several times this size once decompressed, and a record's value stays in memory
	// until its batch is written: at 16 MiB the fetched data was 70% of the Go heap at
	// half of `spanpipe bench --sink duckdb` (200k 1 KB spans), while a fetch of 4 MiB
	// still carries several batches of max_batch_size records. A larger batch than
	// this is still fetched whole. 0, the default, means 4 MiB here; `spanpipe
	// consume` derives it from the sink instead (2 MiB for an embedded DuckDB, see
	// app.FetchMaxBytes).
	FetchMaxBytes int32 `yaml:"fetch_max_bytes"`
	// FetchMaxPartitionBytes bounds the bytes of one partition in a fetch response
	// (compressed; a larger batch is still fetched whole, so no partition is stuck).
	// Must not exceed FetchMaxBytes. Default 1 MiB.
	FetchMaxPartitionBytes int32 `yaml:"fetch_max_partition_bytes"`
	// MaxConcurrentFetches bounds the fetch requests in flight or buffered at once,
	// across brokers: with FetchMaxBytes, the upper bound of the fetch memory. 0 or
	// less means one per broker, the client's default: a lower bound makes a member
	// that reads partitions led by several brokers wait for the brokers without new
	// data in turn (each may hold a fetch for up to 5 s), which adds latency on a quiet
	// topic. Default 0.
	MaxConcurrentFetches int `yaml:"max_concurrent_fetches"`
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
		Topics:                 []string{"spanpipe.spans"},
		Group:                  "spanpipe",
		ClientID:               "spanpipe",
		MaxPollRecords:         10000,
		FetchMaxPartitionBytes: 1 << 20,
		SessionTimeout:         45 * time.Second,
		RebalanceTimeout:       60 * time.Second,
		ShutdownTimeout:        30 * time.Second,
	}
}

// DefaultFetchMaxBytes is the fetch size a FetchMaxBytes of 0 stands for.
const DefaultFetchMaxBytes int32 = 4 << 20

// fetchMaxBytes is FetchMaxBytes, or DefaultFetchMaxBytes when it is 0.
func (c Config) fetchMaxBytes() int32 {
	if c.FetchMaxBytes > 0 {
		return c.FetchMaxBytes
	}
	return DefaultFetchMaxBytes
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
	if c.FetchMaxBytes < 0 {
		bad("kafka.fetch_max_bytes must be 0 (derived) or > 0, got %d", c.FetchMaxBytes)
	}
	switch {
	case c.FetchMaxPartitionBytes <= 0:
		bad("kafka.fetch_max_partition_bytes must be > 0, got %d", c.FetchMaxPartitionBytes)
	case c.FetchMaxPartitionBytes > c.fetchMaxBytes():
		bad("kafka.fetch_max_partition_bytes (%d) must be <= kafka.fetch_max_bytes (%d)", c.FetchMaxPartitionBytes, c.fetchMaxBytes())
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

// Batcher is what the consumer needs of the batcher: decode and add records in
// order, and tell when a unit is sealed (every flush trigger is its decision; the
// consumer only says revoke and shutdown). *pipeline.Batcher implements it.
type Batcher interface {
	Decode(rec *kgo.Record) pipeline.Decoded
	Add(rec *kgo.Record, d pipeline.Decoded) *pipeline.Unit
	// Due seals the open unit when its time is up, or says when that will be.
	Due() (*pipeline.Unit, time.Time)
	Seal(t pipeline.Trigger) *pipeline.Unit
	// Full reports that fetching must pause until a unit is Done.
	Full() bool
	// Room is how many more records fit before Full; a poll takes no more.
	Room() int
	Done(u *pipeline.Unit)
}

// Writer stores a sealed unit, or dead-letters what cannot be stored; it returns nil
// only when every record of the unit is durable, and an error only when ctx ends.
// *pipeline.Writer implements it.
type Writer interface {
	Write(ctx context.Context, u *pipeline.Unit) error
}

// DropPublisher publishes drop events; *dropalerts.Publisher implements it. The
// consumer reports records Kafka deleted before they were read through it.
type DropPublisher interface {
	Publish(ctx context.Context, ev dropalerts.Event, letters []dropalerts.DeadLetter) error
}

// Option configures a Consumer.
type Option func(*options)

type options struct {
	log      *slog.Logger
	reg      prometheus.Registerer
	kopts    []kgo.Opt
	instance string
	sink     string
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the consumer's metrics (default: none).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithKgoOpts appends franz-go options after the consumer's own (hooks, TLS, SASL...).
func WithKgoOpts(opts ...kgo.Opt) Option {
	return func(o *options) { o.kopts = append(o.kopts, opts...) }
}

// WithDropSource names this member (instance) and its sink in the drop events the
// consumer publishes itself (retention-expired).
func WithDropSource(instance, sink string) Option {
	return func(o *options) { o.instance, o.sink = instance, sink }
}

// Consumer is one member of the consumer group.
type Consumer struct {
	cfg      Config
	b        Batcher
	w        Writer
	drops    DropPublisher
	instance string
	sink     string
	cl       *kgo.Client
	log      *slog.Logger
	m        *metrics

	// mu serialises the buffering side between the poll loop and the rebalance
	// callbacks: the batcher's Add, Due and Seal, and the fields below. Nothing
	// blocks while holding it.
	mu sync.Mutex
	// open is the offset to commit per partition once the batcher's open unit is
	// written: the last record added plus one.
	open map[string]map[int32]kgo.EpochOffset
	// next is the offset expected next per partition, to tell retention gaps.
	next map[topicPartition]int64

	q queue

	progressMu sync.Mutex
	progressCh chan struct{} // closed and replaced whenever the writer finishes a job

	assignedMu sync.Mutex
	assigned   map[string]map[int32]struct{}
	// commitMu keeps a commit and the removal of revoked partitions apart, so that
	// no commit for a partition is sent after it was let go.
	commitMu sync.Mutex
	// fresh holds the partitions assigned since the poll loop last read their
	// committed offsets (see checkAssigned).
	fresh freshPartitions

	fatalMu sync.Mutex
	fatal   error

	retry backoff.Policy

	// lastTick is when the poll loop last went round (unix nanoseconds), for /livez.
	lastTick atomic.Int64

	// recs and decoded are the poll loop's scratch space, reused across polls.
	recs    []*kgo.Record
	decoded []pipeline.Decoded
}

type topicPartition struct {
	topic     string
	partition int32
}

type job struct {
	u    *pipeline.Unit
	offs map[string]map[int32]kgo.EpochOffset
	done chan struct{} // a barrier when u is nil
}

// New creates the member and its Kafka client. The client starts background
// goroutines at once: call [Consumer.Run] (which closes it) or [Consumer.Close].
func New(cfg Config, b Batcher, w Writer, drops DropPublisher, opts ...Option) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consumer: invalid config: %w", err)
	}
	if b == nil || w == nil || drops == nil {
		return nil, errors.New("consumer: a batcher, a writer and a drop publisher are required")
	}
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	c := &Consumer{
		cfg:        cfg,
		b:          b,
		w:          w,
		drops:      drops,
		instance:   o.instance,
		sink:       o.sink,
		log:        o.log.With("component", "consumer", "group", cfg.Group),
		m:          newMetrics(o.reg),
		next:       make(map[topicPartition]int64),
		progressCh: make(chan struct{}),
		assigned:   make(map[string]map[int32]struct{}),
		retry:      backoff.Policy{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Jitter: 0.2},
	}
	c.q.init()
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
		kgo.FetchMaxBytes(cfg.fetchMaxBytes()),
		kgo.FetchMaxPartitionBytes(cfg.FetchMaxPartitionBytes),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
	}
	if cfg.MaxConcurrentFetches > 0 {
		kopts = append(kopts, kgo.MaxConcurrentFetches(cfg.MaxConcurrentFetches))
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
	c.q.close()
	c.cl.Close()
}

// Run consumes until ctx is cancelled or the client fails fatally, then drains and
// leaves the group. It returns nil after a clean shutdown, and the fatal error (an
// authorization failure, for instance) otherwise, so that the process exits non-zero.
func (c *Consumer) Run(ctx context.Context) error {
	// The writer outlives ctx: after cancellation it still has to drain, bounded by
	// ShutdownTimeout, which cancels writerCtx.
	writerCtx, cancelWriter := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWriter()
	lagCtx, stopLag := context.WithCancel(ctx)
	defer stopLag()
	var wg sync.WaitGroup
	wg.Go(func() { c.writeLoop(writerCtx) })
	wg.Go(func() { c.lagLoop(lagCtx) })

	c.log.Info("consuming", "topics", c.cfg.Topics)
	c.tick()
	for ctx.Err() == nil && c.err() == nil {
		if !c.pollOnce(ctx) {
			break
		}
	}

	// Shutdown: stop taking input, drain what we hold, commit, leave.
	start := time.Now()
	c.mu.Lock()
	c.push(c.b.Seal(pipeline.TriggerShutdown))
	c.mu.Unlock()
	if !c.barrier(c.cfg.ShutdownTimeout, nil) {
		c.log.Error("shutdown drain deadline passed; unwritten records stay uncommitted and will be redelivered",
			"timeout", c.cfg.ShutdownTimeout)
		cancelWriter()
	}
	// From here a rebalance callback (the client leaving the group) finds the queue
	// closed and lets its partitions go without flushing.
	c.q.close()
	stopLag()
	wg.Wait()
	c.log.Info("drained", "took", time.Since(start).Round(time.Millisecond))
	c.cl.Close() // leaves the group
	c.log.Info("left group")
	return c.err()
}

func (c *Consumer) err() error {
	c.fatalMu.Lock()
	defer c.fatalMu.Unlock()
	return c.fatal
}

func (c *Consumer) setErr(err error) {
	c.fatalMu.Lock()
	defer c.fatalMu.Unlock()
	if c.fatal == nil {
		c.fatal = err
	}
}

// pollSize is how many records a poll takes: MaxPollRecords, but no more than the
// buffer has room for. A polled record is decoded at once, and one that does not fit
// would wait beside the full buffer, its value and its decoded event both on the
// heap, while in the client it waits as fetched bytes only (fetching resumes before
// the next poll, which takes it from there). At least one, so that a poll still
// notices a closed client.
func pollSize(maxPoll, room int) int { return max(min(maxPoll, room), 1) }

// pollOnce runs one poll cycle; false means the client is closed or failed fatally.
func (c *Consumer) pollOnce(ctx context.Context) bool {
	c.tick()
	c.mu.Lock()
	u, at := c.b.Due()
	c.push(u)
	c.mu.Unlock()
	// An idle poll returns every heartbeat, so that a loop that stops going round
	// shows on /livez even when no records come.
	if hb := time.Now().Add(heartbeat); at.IsZero() || hb.Before(at) {
		at = hb
	}
	pollCtx, cancel := context.WithDeadline(ctx, at)
	defer cancel()

	fetches := c.cl.PollRecords(pollCtx, pollSize(c.cfg.MaxPollRecords, c.b.Room()))
	if fetches.IsClientClosed() {
		return false
	}
	defer c.cl.AllowRebalance()
	fetches.EachError(func(topic string, p int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		c.m.fetchErrors.Inc()
		if isFatal(err) {
			c.log.Error("fatal client error; shutting down", "topic", topic, "partition", p, "err", err)
			c.setErr(fmt.Errorf("consumer: %w", err))
			return
		}
		c.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
	})
	if c.err() != nil {
		return false
	}
	c.recs = c.recs[:0]
	fetches.EachRecord(func(r *kgo.Record) { c.recs = append(c.recs, r) })
	defer func() {
		clear(c.recs)
		clear(c.decoded)
	}()
	c.checkAssigned(ctx)
	if len(c.recs) == 0 {
		return true
	}
	await, wait := c.decodeAll(c.recs)
	defer wait()
	if !c.reportGaps(ctx, c.recs) {
		// Shutting down before the loss is on the drop topic: add nothing of this
		// poll, so nothing past the gap is committed; the next owner reports it.
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, rec := range c.recs {
		if ctx.Err() != nil {
			// Shutting down: the rest of the poll is not added, so not committed;
			// the next owner of the partitions reads it again.
			break
		}
		await(i)
		c.track(rec)
		c.push(c.b.Add(rec, c.decoded[i]))
		if c.b.Full() {
			c.mu.Unlock()
			c.waitForRoom(ctx)
			c.mu.Lock()
		}
	}
	return true
}

// track notes rec as added: the open unit's offset to commit and the partition's
// next expected offset. Called with mu held.
func (c *Consumer) track(rec *kgo.Record) {
	if c.open == nil {
		c.open = make(map[string]map[int32]kgo.EpochOffset)
	}
	ps := c.open[rec.Topic]
	if ps == nil {
		ps = make(map[int32]kgo.EpochOffset)
		c.open[rec.Topic] = ps
	}
	ps[rec.Partition] = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1}
	c.next[topicPartition{rec.Topic, rec.Partition}] = rec.Offset + 1
}

// push hands a sealed unit (nil: nothing) with the offsets of the open unit to the
// writer. Once the queue is closed (shutdown) the unit is abandoned: it is never
// committed, and Kafka redelivers its records. Called with mu held.
func (c *Consumer) push(u *pipeline.Unit) {
	if u == nil {
		return
	}
	offs := c.open
	c.open = nil
	if !c.q.push(job{u: u, offs: offs}) {
		c.b.Done(u)
	}
}

// barrier waits until every unit queued before it is written and committed, or
// timeout (false). A unit still queued then is not lost: it is written later, and its
// offsets committed only for partitions this member still owns.
func (c *Consumer) barrier(timeout time.Duration, cancel <-chan struct{}) bool {
	done := make(chan struct{})
	if !c.q.push(job{done: done}) {
		return false
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
	case <-cancel:
	}
	return false
}

func (c *Consumer) progressed() <-chan struct{} {
	c.progressMu.Lock()
	defer c.progressMu.Unlock()
	return c.progressCh
}

func (c *Consumer) signalProgress() {
	c.progressMu.Lock()
	defer c.progressMu.Unlock()
	close(c.progressCh)
	c.progressCh = make(chan struct{})
}

// writeLoop writes the queued units in order, merging those that queued up behind a
// slow write, and commits each write's offsets.
func (c *Consumer) writeLoop(ctx context.Context) {
	for {
		jobs, ok := c.q.take()
		if !ok {
			return
		}
		var units []*pipeline.Unit
		offs := make(map[string]map[int32]kgo.EpochOffset)
		for _, j := range jobs {
			if j.u == nil {
				continue
			}
			units = append(units, j.u)
			for t, ps := range j.offs {
				if offs[t] == nil {
					offs[t] = make(map[int32]kgo.EpochOffset)
				}
				for p, o := range ps {
					if cur, ok := offs[t][p]; !ok || o.Offset > cur.Offset {
						offs[t][p] = o
					}
				}
			}
		}
		if u := pipeline.Merge(units); u != nil {
			// An error means ctx ended (shutdown past its deadline): the unit stays
			// uncommitted, and so does everything after it, since ctx stays done.
			if err := c.w.Write(ctx, u); err == nil {
				c.commit(ctx, offs)
			}
			c.b.Done(u)
		}
		for _, j := range jobs {
			if j.done != nil {
				close(j.done)
			}
		}
		c.signalProgress()
	}
}

// commit commits offs for the partitions this member still owns: a partition let go
// belongs to another member, whose commits ours must not overwrite.
func (c *Consumer) commit(ctx context.Context, offs map[string]map[int32]kgo.EpochOffset) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.assignedMu.Lock()
	for t, ps := range offs {
		for p := range ps {
			if _, ok := c.assigned[t][p]; !ok {
				delete(ps, p)
			}
		}
		if len(ps) == 0 {
			delete(offs, t)
		}
	}
	c.assignedMu.Unlock()
	if len(offs) == 0 {
		return
	}
	var cerr error
	c.cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
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

// decodeAll decodes recs into c.decoded, spread over every core when there are
// enough of them, while the poll loop adds them: decoding is most of the CPU a record
// costs, and adding (batching, in order) is sequential, so the two overlap. Chunks are
// decoded in order, so the next record to add is nearly always ready. await(i) blocks
// until record i is decoded (call it for i = 0, 1, 2... in order); wait blocks until
// every decoding goroutine has returned, and must be called before c.decoded is reused.
func (c *Consumer) decodeAll(recs []*kgo.Record) (await func(i int), wait func()) {
	if cap(c.decoded) < len(recs) {
		c.decoded = make([]pipeline.Decoded, len(recs))
	}
	c.decoded = c.decoded[:len(recs)]
	workers := min(runtime.GOMAXPROCS(0), len(recs)/decodeChunk)
	if workers <= 1 {
		for i, rec := range recs {
			c.decoded[i] = c.b.Decode(rec)
		}
		return func(int) {}, func() {}
	}
	done := make([]chan struct{}, (len(recs)+decodeChunk-1)/decodeChunk)
	for k := range done {
		done[k] = make(chan struct{})
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k < len(done); k = int(next.Add(1) - 1) {
				for i := k * decodeChunk; i < min((k+1)*decodeChunk, len(recs)); i++ {
					c.decoded[i] = c.b.Decode(recs[i])
				}
				close(done[k])
			}
		})
	}
	await = func(i int) {
		if i%decodeChunk == 0 {
			<-done[i/decodeChunk]
		}
	}
	return await, wg.Wait
}

// decodeChunk is how many records a decoding goroutine takes at a time; small polls
// stay on one goroutine, where starting more would cost more than it saves.
const decodeChunk = 64

// waitForRoom pauses fetching while the batcher is full. Kafka keeps the records;
// memory stays bounded by MaxBufferSize.
func (c *Consumer) waitForRoom(ctx context.Context) {
	c.cl.PauseFetchTopics(c.cfg.Topics...)
	c.m.paused.Set(float64(c.assignedCount()))
	c.m.pauses.Inc()
	// A metric, not an INFO line: under a slow sink fetching pauses many times a minute.
	c.log.Debug("buffer full, fetching paused")
	hb := time.NewTicker(heartbeat)
	defer hb.Stop()
	for {
		c.tick()
		progress := c.progressed()
		if !c.b.Full() {
			break
		}
		select {
		case <-progress:
		case <-hb.C:
		case <-ctx.Done():
			// Shutdown while full: keep what we hold, the drain writes it.
			return
		}
	}
	c.cl.ResumeFetchTopics(c.cfg.Topics...)
	c.m.paused.Set(0)
	c.log.Debug("fetching resumed")
}

func (c *Consumer) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	c.m.rebalances.WithLabelValues("assigned").Inc()
	c.fresh.note(assigned)
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

// release writes and commits everything buffered before revoked partitions go to
// another member, so that nothing they get is also in our buffer unacknowledged
// (Redpanda Connect #4010). If the writer cannot get there within RebalanceTimeout (a
// slow sink), the partitions are let go anyway and nothing is given up: what stays
// queued is written later, and committed only for the partitions still owned; the
// new owner reads the rest again from the committed offsets (writes are idempotent).
// Lost partitions are not flushed: they already belong to someone else, and a
// commit for them would be refused. A cooperative session that ends without taking
// anything away (parts empty) changes no owner and costs no flush: waiting there
// would make a member behind a slow sink miss every rejoin.
func (c *Consumer) release(ctx context.Context, parts map[string][]int32, how string) {
	n := 0
	for _, ps := range parts {
		n += len(ps)
	}
	if n == 0 {
		return
	}
	start := time.Now()
	c.mu.Lock()
	if how == "revoked" {
		c.push(c.b.Seal(pipeline.TriggerRevoke))
	}
	for t, ps := range parts {
		for _, p := range ps {
			delete(c.next, topicPartition{t, p})
		}
	}
	c.mu.Unlock()
	switch {
	case how != "revoked":
		c.log.Warn("partitions lost; what is buffered of them is written but not committed by this member", "partitions", parts)
	case c.barrier(c.cfg.RebalanceTimeout, ctx.Done()):
		c.log.Info("partitions revoked after flush and commit", "partitions", parts, "took", time.Since(start).Round(time.Millisecond))
	case !c.q.isClosed():
		c.log.Warn("partitions revoked before their records were written (sink slow); they will be written later but committed only where still owned",
			"partitions", parts, "waited", time.Since(start).Round(time.Millisecond))
	}
	c.commitMu.Lock()
	c.assignedMu.Lock()
	for t, ps := range parts {
		for _, p := range ps {
			delete(c.assigned[t], p)
			c.m.lag.DeleteLabelValues(t, strconv.Itoa(int(p)))
		}
	}
	c.assignedMu.Unlock()
	c.commitMu.Unlock()
}

// heartbeat bounds how long the poll loop waits in one place (an idle poll, a full
// buffer) before it goes round again.
const heartbeat = time.Second

func (c *Consumer) tick() { c.lastTick.Store(time.Now().UnixNano()) }

// Health is what /livez and /readyz need of a member.
type Health struct {
	// LastTick is when the poll loop last went round; zero before Run.
	LastTick time.Time
	// Assigned is the number of partitions this member owns.
	Assigned int
	// Err is the fatal error that ends Run, if any.
	Err error
}

// Health reports the member's state; safe from any goroutine.
func (c *Consumer) Health() Health {
	h := Health{Assigned: c.assignedCount(), Err: c.err()}
	if n := c.lastTick.Load(); n != 0 {
		h.LastTick = time.Unix(0, n)
	}
	return h
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

// owned returns the assigned partitions.
func (c *Consumer) owned() map[string][]int32 {
	c.assignedMu.Lock()
	defer c.assignedMu.Unlock()
	out := make(map[string][]int32, len(c.assigned))
	for t, ps := range c.assigned {
		for p := range ps {
			out[t] = append(out[t], p)
		}
	}
	return out
}

// isFatal reports errors the client cannot recover from by retrying: the member
// cannot be authorised to read or to join, and consuming on would be an idle process
// that looks healthy.
func isFatal(err error) bool {
	for _, f := range []error{kerr.GroupAuthorizationFailed, kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed,
		kerr.SaslAuthenticationFailed, kerr.InvalidGroupID} {
		if errors.Is(err, f) {
			return true
		}
	}
	return false
}

// queue hands jobs from the poll loop and the rebalance callbacks to the writer. It
// never blocks a producer: memory is bounded by the batcher (Full), not by the queue,
// so a slow sink cannot wedge a rebalance callback behind a full channel. After
// close, push refuses jobs, which is what makes a rebalance during shutdown safe.
type queue struct {
	mu     sync.Mutex
	cond   sync.Cond
	jobs   []job
	closed bool
}

func (q *queue) init() { q.cond.L = &q.mu }

func (q *queue) push(j job) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.jobs = append(q.jobs, j)
	q.cond.Signal()
	return true
}

// take waits for jobs and returns those queued, up to and including the first
// barrier; false once the queue is closed and empty.
func (q *queue) take() ([]job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.jobs) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.jobs) == 0 {
		return nil, false
	}
	n := len(q.jobs)
	for i, j := range q.jobs {
		if j.done != nil {
			n = i + 1
			break
		}
	}
	out := slices.Clone(q.jobs[:n])
	q.jobs = slices.Delete(q.jobs, 0, n)
	return out, true
}

func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}

func (q *queue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

type metrics struct {
	lag         *prometheus.GaugeVec
	paused      prometheus.Gauge
	pauses      prometheus.Counter
	rebalances  *prometheus.CounterVec
	commits     *prometheus.CounterVec
	fetchErrors prometheus.Counter
	dropped     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		lag: promx.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spanpipe_consumer_lag_records",
			Help: "Records in the partition after the group's committed offset (end offset - committed): a member that fetches but cannot store shows lag.",
		}, []string{"topic", "partition"})),
		paused: promx.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spanpipe_consumer_paused_partitions",
			Help: "Partitions whose fetching is paused because the pipeline buffer is full.",
		})),
		pauses: promx.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spanpipe_consumer_fetch_pauses_total",
			Help: "Times fetching paused because the pipeline buffer was full (spanpipe_consumer_paused_partitions says whether it is paused now).",
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
		dropped: promx.DroppedRecords(reg),
	}
	for _, e := range []string{"assigned", "revoked", "lost"} {
		m.rebalances.WithLabelValues(e)
	}
	m.commits.WithLabelValues("ok")
	m.commits.WithLabelValues("error")
	m.dropped.WithLabelValues("unknown", string(dropalerts.ReasonRetentionExpired), dropalerts.ComponentConsumer)
	return m
}
