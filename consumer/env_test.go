package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/consumer"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/demo"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/spanpipe/spanpipe/internal/promx"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	spansTopic = "spanpipe.spans"
	dropsTopic = "spanpipe.drops"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// memSink is an idempotent in-memory store: one row per span (the snapshot that
// supersedes the others), like the real sinks. While down is set every write fails
// with err (a plain retryable error when nil); while hang is set every write blocks
// until it is cleared or ctx ends.
type memSink struct {
	mu     sync.Mutex
	spans  map[[2]string]*schema.Span
	writes int
	down   atomic.Bool
	hang   atomic.Bool
	err    error
	fails  atomic.Int64
}

func newMemSink() *memSink { return &memSink{spans: make(map[[2]string]*schema.Span)} }

func (s *memSink) Name() string { return "mem" }
func (s *memSink) Capabilities() pipeline.Capabilities {
	return pipeline.Capabilities{Preferred: pipeline.BatchWithUpdates,
		Supported: []pipeline.Strategy{pipeline.Realtime, pipeline.BatchWithUpdates, pipeline.InsertOnly}, Signals: schema.AllSignals}
}

func (s *memSink) Write(ctx context.Context, b *pipeline.Batch) error {
	for s.hang.Load() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	if s.down.Load() {
		s.fails.Add(1)
		if s.err != nil {
			return s.err
		}
		return fmt.Errorf("injected: sink unavailable")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	for _, sp := range b.Spans {
		k := [2]string{sp.TraceID, sp.SpanID}
		if cur, ok := s.spans[k]; !ok || sp.Supersedes(cur) {
			s.spans[k] = sp
		}
	}
	return nil
}

func (s *memSink) count() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.spans))
}

func (s *memSink) span(trace, id string) *schema.Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spans[[2]string{trace, id}]
}

type env struct {
	t       *testing.T
	cluster *kfake.Cluster
	brokers []string
	kafka   consumer.Config
	pipe    pipeline.Config
	drops   dropalerts.Config
	sink    *memSink
	reg     *prometheus.Registry
	kopts   []kgo.Opt
}

func newEnv(t *testing.T) *env {
	// The drop topic is left to the publisher, which creates it with its own limits
	// (max.message.bytes to fit a max_record_bytes dead letter), as in production.
	c := kafkatest.Cluster(t, 4, spansTopic)
	kc := consumer.DefaultConfig()
	kc.Brokers = c.ListenAddrs()
	kc.Group = "test-" + strings.ReplaceAll(t.Name(), "/", "-")
	kc.ShutdownTimeout = 20 * time.Second
	pc := pipeline.DefaultConfig()
	pc.MaxBatchWait = 100 * time.Millisecond
	pc.MaxBatchSize = 200
	pc.MaxBufferSize = 1000
	return &env{t: t, cluster: c, brokers: c.ListenAddrs(), kafka: kc, pipe: pc, drops: dropalerts.DefaultConfig(), sink: newMemSink(), reg: prometheus.NewRegistry()}
}

// member is a running consumer of the env.
type member struct {
	*consumer.Consumer
	batcher *pipeline.Batcher
	err     error
	stop    func()
}

// run starts a group member (in this test process) writing to sink and returns it;
// stop cancels it and waits for its shutdown. A fresh registry per member keeps the
// metrics of members apart; pass reg to share one.
func (e *env) run(sink pipeline.Sink, reg prometheus.Registerer) *member {
	e.t.Helper()
	m, closeDrops := e.build(sink, reg)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		m.err = m.Run(ctx)
		closeDrops()
	})
	var once sync.Once
	m.stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			if m.err != nil {
				e.t.Errorf("consumer: %v", m.err)
			}
		})
	}
	e.t.Cleanup(m.stop)
	return m
}

// build makes a member without running it.
func (e *env) build(sink pipeline.Sink, reg prometheus.Registerer) (m *member, closeDrops func()) {
	e.t.Helper()
	log := testLogger(e.t)
	drops, err := dropalerts.New(e.drops, []kgo.Opt{kgo.SeedBrokers(e.brokers...)}, dropalerts.WithRegisterer(reg), dropalerts.WithLogger(log))
	if err != nil {
		e.t.Fatal(err)
	}
	opts := []pipeline.Option{pipeline.WithRegisterer(reg), pipeline.WithLogger(log)}
	b, err := pipeline.NewBatcher(e.pipe, sink.Capabilities(), opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	w, err := pipeline.NewWriter(e.pipe, sink, drops, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := consumer.New(e.kafka, b, w, drops, consumer.WithLogger(log), consumer.WithRegisterer(reg), consumer.WithKgoOpts(e.kopts...))
	if err != nil {
		e.t.Fatal(err)
	}
	return &member{Consumer: c, batcher: b}, func() { _ = drops.Close(context.Background()) }
}

// start runs a member on the env's sink and registry.
func (e *env) start() *member { return e.run(e.sink, e.reg) }

func (e *env) producer() *producer.Producer {
	e.t.Helper()
	cfg := producer.DefaultConfig()
	cfg.Brokers = e.brokers
	cfg.ServiceName = "e2e"
	cfg.OnBufferFull = producer.OnFullBlock
	cfg.BlockTimeout = time.Minute
	p, err := producer.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func (e *env) spans() int64 { return e.sink.count() }

// waitCommitted waits until the group's committed offsets reach the end of the spans
// topic: everything is durably handled.
func (e *env) waitCommitted() {
	e.t.Helper()
	cl := kafkatest.Client(e.t, e.brokers)
	kafkatest.Eventually(e.t, 60*time.Second, "committed offsets to reach the end of the topic", func() bool {
		return lag(cl, e.kafka.Group) == 0
	})
}

// lag is the group's total lag (end offsets minus committed), -1 if unknown.
func lag(cl *kgo.Client, group string) int64 {
	lags, err := kadm.NewClient(cl).Lag(context.Background(), group)
	if err != nil {
		return -1
	}
	gl, ok := lags[group]
	if !ok || gl.Error() != nil || len(gl.Lag) == 0 {
		return -1
	}
	return gl.Lag.Total()
}

func produceDemo(t *testing.T, p *producer.Producer, traces int) int {
	g := demo.New(p, demo.Options{MinPayload: 100, MaxPayload: 3000, Seed: 7})
	n := 0
	for range traces {
		n += g.Trace()
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	return n
}

// endedSpan is the encoded span_ended event of span i of a trace of its own.
func endedSpan(t *testing.T, i int) []byte {
	t.Helper()
	b, err := schema.Encode(nil, &schema.Event{Type: schema.SpanEnded, Span: &schema.Span{
		TraceID: fmt.Sprintf("%032x", i+1), SpanID: fmt.Sprintf("%016x", i+1), Name: "s", Type: schema.ToolCall,
		StartTime: time.Now(), EndTime: time.Now(), Version: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dropped(reg prometheus.Registerer, signal, reason string) prometheus.Collector {
	return promx.DroppedRecords(reg).WithLabelValues(signal, reason, "consumer")
}

func sumDropped(g prometheus.Gatherer) float64 { return sumMetric(g, "spanpipe_dropped_records_total") }

// sumMetric sums every series of a counter or gauge.
func sumMetric(g prometheus.Gatherer, name string) float64 {
	mfs, _ := g.Gather()
	var s float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				s += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return s
}

func hdr(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}
