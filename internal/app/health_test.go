package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// healthSink is a sink whose writes succeed, hang until released, or fail as
// unavailable, as the test says.
type healthSink struct {
	mode    atomic.Value // "ok", "hang", "unavailable"
	mu      sync.Mutex
	release chan struct{}
}

func newHealthSink(mode string) *healthSink {
	s := &healthSink{release: make(chan struct{})}
	s.mode.Store(mode)
	return s
}

func (s *healthSink) Name() string { return "fake" }
func (s *healthSink) Capabilities() pipeline.Capabilities {
	return pipeline.Capabilities{Preferred: pipeline.Realtime, Supported: []pipeline.Strategy{pipeline.Realtime}, Signals: schema.AllSignals}
}
func (s *healthSink) Write(ctx context.Context, _ *pipeline.Batch) error {
	switch s.mode.Load() {
	case "hang":
		s.mu.Lock()
		ch := s.release
		s.mu.Unlock()
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	case "unavailable":
		return pipeline.Unavailable(errors.New("connection refused"))
	}
	return nil
}

// heal makes writes succeed, a hanging one included.
func (s *healthSink) heal() {
	s.mode.Store("ok")
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.release)
	s.release = make(chan struct{})
}

type healthRig struct {
	c       *kfake.Cluster
	cons    *Consumer
	url     string
	brokers []string
}

// startHealth runs a consumer on sink against c with short health thresholds and
// serves its probes.
func startHealth(t *testing.T, c *kfake.Cluster, sink pipeline.Sink, tune func(*Config)) *healthRig {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.Kafka.RebalanceTimeout = 5 * time.Second
	cfg.Kafka.ShutdownTimeout = 5 * time.Second
	cfg.Pipeline.MaxBatchWait = 50 * time.Millisecond
	cfg.Pipeline.RetryDelay = 50 * time.Millisecond
	cfg.Pipeline.MaxRetryDelay = 200 * time.Millisecond
	cfg.Metrics.ReadyMaxStall = time.Second
	cfg.Metrics.ReadyMaxSinkFailing = 500 * time.Millisecond
	cfg.Metrics.LiveMaxSinkCall = time.Second
	cfg.Metrics.ReadyAssignmentGrace = time.Minute
	if tune != nil {
		tune(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cons, err := NewConsumer(cfg, sink, slog.New(slog.DiscardHandler), NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := ServeMetrics("127.0.0.1:0", false, NewRegistry(), cons.Probes())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ms.Close(context.Background()) })
	return &healthRig{c: c, cons: cons, url: "http://" + ms.Addr, brokers: cfg.Kafka.Brokers}
}

// run starts the consumer; it stops when the test ends, after heal (if any) lets a
// hanging write finish.
func (r *healthRig) run(t *testing.T, heal func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.cons.Run(ctx) }()
	t.Cleanup(func() {
		if heal != nil {
			heal()
		}
		cancel()
		<-done
	})
}

func probe(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitProbe polls path until it answers code with a body containing want.
func (r *healthRig) waitProbe(t *testing.T, path string, code int, want string) string {
	t.Helper()
	var got int
	var body string
	kafkatest.Eventually(t, 30*time.Second, path+" "+want, func() bool {
		got, body = probe(t, r.url+path)
		return got == code && strings.Contains(body, want)
	})
	return body
}

// produceGarbage publishes a record no decoder accepts: the writer dead-letters it.
func produceGarbage(t *testing.T, brokers []string) {
	t.Helper()
	cl := kafkatest.Client(t, brokers)
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: "spanpipe.spans", Value: []byte("not a spanpipe record")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// produceSpan publishes one ended span through the producer.
func produceSpan(t *testing.T, brokers []string) {
	t.Helper()
	pcfg := producer.DefaultConfig()
	pcfg.Brokers, pcfg.ServiceName = brokers, "health"
	p, err := producer.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	p.StartSpan(producer.SpanOptions{Name: "x", Type: "agent_run"}).End(producer.EndOptions{})
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// Not ready until the member holds a partition; a member left without one (more
// members than partitions) becomes a ready standby after the grace period.
func TestReadyzAssignment(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.spans", "spanpipe.drops")
	a := startHealth(t, c, newHealthSink("ok"), nil)
	if code, body := probe(t, a.url+"/livez"); code != http.StatusOK {
		t.Errorf("/livez before Run = %d %q, want 200", code, body)
	}
	a.run(t, nil)
	a.waitProbe(t, "/readyz", http.StatusOK, "ok assignment: 1 partitions held")
	a.waitProbe(t, "/livez", http.StatusOK, "ok poll-loop: went round")

	b := startHealth(t, c, newHealthSink("ok"), func(cfg *Config) { cfg.Metrics.ReadyAssignmentGrace = 2 * time.Second })
	b.run(t, nil)
	// The partition stays with a (sticky): b waits, not ready within its grace.
	if code, body := probe(t, b.url+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "FAIL assignment: no partitions assigned yet") {
		t.Errorf("/readyz of a member within its grace without partitions = %d %q, want 503 naming the assignment", code, body)
	}
	b.waitProbe(t, "/readyz", http.StatusOK, "ok assignment: no partitions assigned: standby")
	a.waitProbe(t, "/readyz", http.StatusOK, "ok assignment: 1 partitions held")
}

// A sink call that never returns fails /readyz (the oldest unwritten record ages) and
// then /livez (a hung call); both recover once the call returns.
func TestHealthStalledWriter(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.spans", "spanpipe.drops")
	sink := newHealthSink("hang")
	r := startHealth(t, c, sink, nil)
	r.run(t, sink.heal)
	r.waitProbe(t, "/readyz", http.StatusOK, "ok writer-stall: nothing unwritten")
	produceSpan(t, r.brokers)
	r.waitProbe(t, "/readyz", http.StatusServiceUnavailable, "FAIL writer-stall: oldest unwritten record")
	r.waitProbe(t, "/livez", http.StatusServiceUnavailable, "FAIL writer: sink call hung")
	sink.heal()
	r.waitProbe(t, "/readyz", http.StatusOK, "ok writer-stall: nothing unwritten")
	r.waitProbe(t, "/livez", http.StatusOK, "ok writer: no sink call in flight")
}

// An unavailable sink fails /readyz past metrics.ready_max_sink_failing but keeps
// /livez green: restarting the process cannot bring the store back.
func TestHealthSinkUnavailable(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.spans", "spanpipe.drops")
	sink := newHealthSink("unavailable")
	r := startHealth(t, c, sink, func(cfg *Config) { cfg.Metrics.ReadyMaxStall = time.Minute })
	r.run(t, nil)
	produceSpan(t, r.brokers)
	body := r.waitProbe(t, "/readyz", http.StatusServiceUnavailable, "FAIL sink: writes failing for")
	if !strings.Contains(body, "connection refused") {
		t.Errorf("/readyz does not name the sink error:\n%s", body)
	}
	if code, body := probe(t, r.url+"/livez"); code != http.StatusOK {
		t.Errorf("/livez during a sink outage = %d %q, want 200", code, body)
	}
	sink.heal()
	r.waitProbe(t, "/readyz", http.StatusOK, "ok sink: last write ok")
}

// brokenHealthSink is a healthSink that says, once told, that only a restart repairs it.
type brokenHealthSink struct {
	*healthSink
	broken atomic.Pointer[error]
}

func (s *brokenHealthSink) Broken() error {
	if p := s.broken.Load(); p != nil {
		return *p
	}
	return nil
}

// A sink that says only a restart repairs it (DuckDB after a FATAL error) fails
// /livez, so that an orchestrator restarts the process; its waiting writes alone
// would keep /livez green.
func TestLivezSinkBroken(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.spans", "spanpipe.drops")
	sink := &brokenHealthSink{healthSink: newHealthSink("unavailable")}
	r := startHealth(t, c, sink, nil)
	r.run(t, nil)
	r.waitProbe(t, "/livez", http.StatusOK, "ok sink-state: the sink can recover by itself")
	err := errors.New("FATAL Error: Failed: database has been invalidated because of a previous fatal error")
	sink.broken.Store(&err)
	r.waitProbe(t, "/livez", http.StatusServiceUnavailable, "FAIL sink-state: only a restart repairs the sink: FATAL Error")
}

// A drop topic that refuses writes for good (here: not authorised) fails /readyz.
func TestReadyzDropTopicNotWritable(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.spans", "spanpipe.drops")
	// Produce requests name topics by ID.
	dropsID := c.TopicInfo("spanpipe.drops").TopicID
	var refuse atomic.Bool
	refuse.Store(true)
	kafkatest.RefuseProduce(c, kerr.TopicAuthorizationFailed.Code, func(req *kmsg.ProduceRequest) bool {
		return refuse.Load() && len(req.Topics) > 0 && (req.Topics[0].Topic == "spanpipe.drops" || req.Topics[0].TopicID == dropsID)
	})
	r := startHealth(t, c, newHealthSink("ok"), nil)
	r.run(t, func() { refuse.Store(false) })
	r.waitProbe(t, "/readyz", http.StatusOK, "ok drop-topic: last publish ok")
	produceGarbage(t, r.brokers)
	r.waitProbe(t, "/readyz", http.StatusServiceUnavailable, "FAIL drop-topic: last publish failed")
	refuse.Store(false)
	r.waitProbe(t, "/readyz", http.StatusOK, "ok drop-topic: last publish ok")
}
