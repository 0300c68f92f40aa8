package alerting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/promx"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Alerter reads drop events from the drop topic in a consumer group and turns them
// into alerts: one per (reason, signal, sink, component), opened when the dropped
// records within [Config.Window] reach the reason's threshold, re-posted while
// drops continue, and resolved after [Config.Quiet] without one. Alerts go to
// Alertmanager's API v2 and, optionally, to a JSON webhook.
//
// Offsets are committed only up to the first drop event whose alert state has not
// been delivered to every receiver (events that expire below their threshold need no
// delivery), so a crash or an unreachable Alertmanager re-reads drop events instead
// of losing them: the price is that an alert may be posted twice, which Alertmanager
// merges by labels. Failed posts are retried forever with jittered backoff; reading
// continues meanwhile, up to [Config.MaxPendingEvents].
type Alerter struct {
	cfg   Config
	kopts []kgo.Opt
	log   *slog.Logger
	m     *alerterMetrics
	recv  []*receiver

	mu      sync.Mutex // guards agg, paused and invalid against the rebalance callbacks
	agg     *aggregator
	cl      *kgo.Client
	paused  bool
	invalid int
}

// Option configures an [Alerter].
type Option func(*alerterOptions)

type alerterOptions struct {
	log *slog.Logger
	reg prometheus.Registerer
	hc  *http.Client
}

// WithLogger sets the alerter's logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *alerterOptions) { o.log = l }
}

// WithRegisterer registers the alerter's metrics (default: none).
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *alerterOptions) { o.reg = r }
}

// WithHTTPClient sets the client for Alertmanager and the webhook (TLS, proxies).
// Default: a client of its own; [Config.RequestTimeout] bounds every post.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *alerterOptions) { o.hc = hc }
}

type alerterMetrics struct {
	sent     *prometheus.CounterVec
	open     prometheus.Gauge
	consumed *prometheus.CounterVec
	// dropped is the shared spanpipe_dropped_records_total: the alerter counts the
	// drop events it cannot read (component "alert", reason decode-error), each a
	// loss nobody would otherwise be told about. The records stay on the drop topic.
	dropped *prometheus.CounterVec
}

func newAlerterMetrics(reg prometheus.Registerer, receivers []string) *alerterMetrics {
	m := &alerterMetrics{
		sent: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_dropalerts_alerts_sent_total",
			Help: "Alerts posted to a receiver, counted per alert in each post, by outcome (ok; error: network, timeout, 5xx or 429; rejected: other 4xx). Failed posts are retried.",
		}, []string{"receiver", "outcome"})),
		open: promx.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spanpipe_dropalerts_open_alerts",
			Help: "Drop alerts currently open (firing and not resolved).",
		})),
		consumed: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spanpipe_dropalerts_events_consumed_total",
			Help: "Drop events read by the alerter, by reason (invalid: unreadable; other: an unknown reason).",
		}, []string{"reason"})),
		dropped: promx.DroppedRecords(reg),
	}
	m.dropped.WithLabelValues("unknown", string(dropalerts.ReasonDecodeError), dropalerts.ComponentAlert)
	for _, r := range receivers {
		for _, o := range []string{outcomeOK, outcomeError, outcomeRejected} {
			m.sent.WithLabelValues(r, o)
		}
	}
	for _, r := range dropalerts.AllReasons {
		m.consumed.WithLabelValues(string(r))
	}
	m.consumed.WithLabelValues("invalid")
	m.consumed.WithLabelValues("other")
	return m
}

// New validates cfg and returns an Alerter. kopts are franz-go options for its
// client: seed brokers at least, plus TLS, SASL and hooks. It starts nothing; the
// Kafka client is created by [Alerter.Run].
func New(cfg Config, kopts []kgo.Opt, opts ...Option) (*Alerter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dropalerts: invalid alerter config: %w", err)
	}
	o := alerterOptions{log: slog.New(slog.DiscardHandler), hc: &http.Client{}}
	for _, opt := range opts {
		opt(&o)
	}
	a := &Alerter{cfg: cfg, kopts: kopts, log: o.log.With("component", "alerter")}
	var names []string
	if len(cfg.AlertmanagerURLs) > 0 {
		names = append(names, ReceiverAlertmanager)
	}
	if cfg.WebhookURL != "" {
		names = append(names, ReceiverWebhook)
	}
	a.m = newAlerterMetrics(o.reg, names)
	if len(cfg.AlertmanagerURLs) > 0 {
		r, err := newAlertmanagerReceiver(&a.cfg, o.hc, a.m)
		if err != nil {
			return nil, fmt.Errorf("dropalerts: alertmanager: %w", err)
		}
		a.recv = append(a.recv, r)
	}
	if cfg.WebhookURL != "" {
		r, err := newWebhookReceiver(&a.cfg, o.hc, a.m)
		if err != nil {
			return nil, fmt.Errorf("dropalerts: webhook: %w", err)
		}
		a.recv = append(a.recv, r)
	}
	a.agg = newAggregator(&a.cfg, len(a.recv))
	return a, nil
}

// Run reads the drop topic and alerts until ctx ends; then it makes one last attempt
// to deliver and commit (bounded by [Config.ShutdownTimeout]) and leaves the
// group. Open alerts are not resolved at shutdown: a restarted alerter re-reads what
// was not delivered, and Alertmanager expires the rest after 4 × ResendInterval.
// Run returns nil after a clean shutdown. Call it once.
func (a *Alerter) Run(ctx context.Context) error {
	reset := kgo.NewOffset().AtStart()
	if a.cfg.StartFromEnd {
		reset = kgo.NewOffset().AtEnd()
	}
	base := []kgo.Opt{
		kgo.ConsumerGroup(a.cfg.Group),
		kgo.ConsumeTopics(a.cfg.Topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(reset),
		kgo.OnPartitionsRevoked(a.onRevoked),
		kgo.OnPartitionsLost(a.onLost),
	}
	cl, err := kgo.NewClient(append(base, a.kopts...)...)
	if err != nil {
		return fmt.Errorf("dropalerts: new kafka client: %w", err)
	}
	a.mu.Lock()
	a.cl = cl
	a.mu.Unlock()
	a.log.Info("alerting on drop events", "topic", a.cfg.Topic, "group", a.cfg.Group, "receivers", len(a.recv),
		"window", a.cfg.Window, "quiet", a.cfg.Quiet)

	nextEval := time.Now()
	for ctx.Err() == nil {
		pollCtx, cancel := context.WithDeadline(ctx, nextEval)
		fetches := cl.PollRecords(pollCtx, 10000)
		cancel()
		if fetches.IsClientClosed() {
			break
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				a.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		now := time.Now()
		a.mu.Lock()
		fetches.EachRecord(func(r *kgo.Record) { a.handle(now, r) })
		a.mu.Unlock()
		cl.AllowRebalance()
		if !now.Before(nextEval) {
			a.tick(ctx, now, false)
			nextEval = time.Now().Add(a.cfg.EvalInterval)
		}
	}

	start := time.Now()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	a.tick(dctx, time.Now(), true)
	cancel()
	cl.Close() // leaves the group; onRevoked commits once more
	a.log.Info("alerter stopped", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// handle takes one record of the drop topic. Called with mu held.
func (a *Alerter) handle(now time.Time, r *kgo.Record) {
	tp := topicPartition{r.Topic, r.Partition}
	if dropalerts.Kind(r) != dropalerts.KindDropEvent {
		a.agg.observe(tp, r.Offset) // a dead letter, or not ours
		return
	}
	ev, err := dropalerts.ParseEvent(r.Value)
	if err != nil {
		a.m.consumed.WithLabelValues("invalid").Inc()
		a.m.dropped.WithLabelValues("unknown", string(dropalerts.ReasonDecodeError), dropalerts.ComponentAlert).Inc()
		a.invalid++
		a.log.Debug("unreadable drop event skipped", "partition", r.Partition, "offset", r.Offset, "err", err)
		a.agg.observe(tp, r.Offset)
		return
	}
	a.m.consumed.WithLabelValues(reasonLabel(ev.Reason)).Inc()
	a.agg.ingest(now, tp, r.Offset, ev)
}

func reasonLabel(r dropalerts.Reason) string {
	for _, k := range dropalerts.AllReasons {
		if r == k {
			return string(r)
		}
	}
	return "other"
}

type delivery struct {
	r     int
	views []alertView
	wait  time.Duration
	err   error
}

// tick evaluates, posts what is due, and commits what is delivered. force (at
// shutdown) ignores rate limits and backoff for receivers that lack something.
func (a *Alerter) tick(ctx context.Context, now time.Time, force bool) {
	a.mu.Lock()
	a.agg.evaluate(now)
	if a.invalid > 0 {
		a.log.Warn("unreadable drop events skipped", "count", a.invalid)
		a.invalid = 0
	}
	var ds []*delivery
	active := a.agg.active()
	for i, r := range a.recv {
		if r.due(now, a.agg.news(i), active, force, a.cfg.ResendInterval) {
			ds = append(ds, &delivery{r: i, views: a.agg.snapshot()})
		}
	}
	a.mu.Unlock()

	// Post without the lock, so that a rebalance can proceed meanwhile.
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Go(func() { d.wait, d.err = a.recv[d.r].post(ctx, d.views, now) })
	}
	wg.Wait()

	a.mu.Lock()
	defer a.mu.Unlock()
	done := time.Now()
	for _, d := range ds {
		r := a.recv[d.r]
		if d.err == nil {
			if r.failures > 0 {
				a.log.Info("alert delivery recovered", "receiver", r.name, "failed_attempts", r.failures)
			}
			r.succeeded(done, a.cfg.MinSendInterval)
			a.agg.ack(d.r, d.views)
			a.log.Debug("alerts posted", "receiver", r.name, "alerts", len(d.views))
			continue
		}
		wait := r.failed(done, d.wait, &a.cfg)
		a.log.Warn("alert delivery failed; drop-topic offsets stay uncommitted until it succeeds",
			"receiver", r.name, "alerts", len(d.views), "attempt", r.failures, "retry_in", wait.Round(time.Millisecond), "err", d.err)
	}
	a.m.open.Set(float64(a.agg.openAlerts()))
	a.commit(ctx, a.agg.commitOffsets())

	// Backpressure: while receivers are down, keep reading (so alerts stay current)
	// up to MaxPendingEvents unhandled events, then let Kafka hold the rest.
	switch {
	case !a.paused && a.agg.pending > a.cfg.MaxPendingEvents:
		a.paused = true
		a.cl.PauseFetchTopics(a.cfg.Topic)
		a.log.Warn("too many undelivered drop events; fetching paused", "pending", a.agg.pending)
	case a.paused && a.agg.pending <= a.cfg.MaxPendingEvents/2:
		a.paused = false
		a.cl.ResumeFetchTopics(a.cfg.Topic)
		a.log.Info("fetching resumed", "pending", a.agg.pending)
	}
}

// commit commits offsets synchronously. Called with mu held, so that a revoke cannot
// interleave and move a partition's commit backwards for its next owner.
func (a *Alerter) commit(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset) {
	if len(offsets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	var cerr error
	a.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 && cerr == nil {
					cerr = fmt.Errorf("%s[%d]: error code %d", t.Topic, p.Partition, p.ErrorCode)
				}
			}
		}
	})
	if cerr != nil {
		// Not fatal: the next tick commits again; a restart re-reads and re-posts.
		a.log.Warn("commit failed; drop events may be read again", "err", cerr)
		return
	}
	a.agg.committed(offsets)
}

func (a *Alerter) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var offsets map[string]map[int32]kgo.EpochOffset
	for t, ps := range revoked {
		for _, p := range ps {
			if off, ok := a.agg.release(topicPartition{t, p}); ok {
				offsets = addOffset(offsets, topicPartition{t, p}, off)
			}
		}
	}
	// What is undelivered stays uncommitted: the next owner reads it again. The
	// alert state keeps it too, so both may post it; Alertmanager merges them.
	a.commit(context.WithoutCancel(ctx), offsets)
	if len(revoked) > 0 {
		a.log.Info("partitions revoked", "partitions", revoked)
	}
}

func (a *Alerter) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for t, ps := range lost {
		for _, p := range ps {
			a.agg.release(topicPartition{t, p})
		}
	}
	if len(lost) > 0 {
		a.log.Warn("partitions lost", "partitions", lost)
	}
}
