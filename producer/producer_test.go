package producer_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/spanpipe/spanpipe/internal/promx"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kfake"
)

func newProducer(t *testing.T, brokers []string, mut func(*producer.Config), opts ...producer.Option) *producer.Producer {
	t.Helper()
	cfg := producer.DefaultConfig()
	cfg.Brokers = brokers
	cfg.ServiceName = "checkout"
	cfg.Environment = "test"
	if mut != nil {
		mut(&cfg)
	}
	p, err := producer.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

func TestSpanLifecycleSnapshots(t *testing.T) {
	c := kafkatest.Cluster(t, 3, "spanpipe.spans", "spanpipe.drops")
	p := newProducer(t, c.ListenAddrs(), nil)
	root := p.StartSpan(producer.SpanOptions{Name: "agent", Type: schema.AgentRun, EntityType: "agent", EntityID: "a1",
		Correlation: schema.Correlation{UserID: "u1", Tags: []string{"prod"}},
		Metadata:    map[string]any{"password": "hunter2", "plan": "pro"}})
	child := root.StartChild(producer.SpanOptions{Name: "tool", Type: schema.ToolCall})
	child.Update(func(s *schema.Span) { s.Attributes = producer.JSON(map[string]int{"step": 2}) })
	child.End(producer.EndOptions{Err: errors.New("boom")})
	child.End(producer.EndOptions{}) // ignored, as in Mastra
	root.End(producer.EndOptions{Output: "done"})
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	recs := kafkatest.ReadAll(t, c.ListenAddrs(), "spanpipe.spans", 5, 10*time.Second)
	if len(recs) != 5 {
		t.Fatalf("%d records, want 5 (2 started, 1 updated, 2 ended)", len(recs))
	}
	versions := map[string][]uint64{}
	for _, r := range recs {
		ev, err := schema.Decode(string(r.Headers[0].Value), r.Value)
		if err != nil {
			t.Fatal(err)
		}
		s := ev.Span
		if string(r.Key) != s.TraceID || s.TraceID != root.TraceID() {
			t.Errorf("record key %q, trace %q; want both %q", r.Key, s.TraceID, root.TraceID())
		}
		if s.ServiceName != "checkout" || s.Environment != "test" || s.UserID != "u1" {
			t.Errorf("span %s: service %q env %q user %q; want checkout, test, u1 on every span", s.Name, s.ServiceName, s.Environment, s.UserID)
		}
		if strings.Contains(string(s.Metadata), "hunter2") {
			t.Errorf("password reached Kafka: %s", s.Metadata)
		}
		versions[s.Name] = append(versions[s.Name], s.Version)
		if s.Name == "tool" {
			if s.ParentSpanID != root.SpanID() || s.ParentEntityType != "agent" || s.ParentEntityID != "a1" || len(s.Tags) != 0 {
				t.Errorf("child: parent %q entity %q/%q tags %v; want root's id, agent/a1, no tags", s.ParentSpanID, s.ParentEntityType, s.ParentEntityID, s.Tags)
			}
			if ev.Type == schema.SpanEnded && (s.ErrorInfo == nil || s.ErrorInfo.Message != "boom") {
				t.Errorf("ended child has no error info")
			}
		}
	}
	if fmt.Sprint(versions["tool"]) != "[1 2 3]" || fmt.Sprint(versions["agent"]) != "[1 2]" {
		t.Errorf("versions %v, want tool [1 2 3] and agent [1 2]", versions)
	}
}

func TestSignalsGetIDsServiceAndRedaction(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.spans")
	p := newProducer(t, c.ListenAddrs(), nil)
	errs := []error{
		p.Log(&schema.Log{Level: "warn", Message: "slow tool", Data: producer.JSON(map[string]string{"token": "abc"})}),
		p.Metric(&schema.Metric{Name: "latency_ms", Value: 12}),
		p.Score(&schema.Score{ScorerID: "relevance", Score: 0.8}),
		p.Feedback(&schema.Feedback{FeedbackType: "thumbs", Value: producer.JSON(1)}),
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	p.Flush(t.Context())
	for _, r := range kafkatest.ReadAll(t, c.ListenAddrs(), "spanpipe.spans", 4, 10*time.Second) {
		ev, err := schema.Decode("", r.Value)
		if err != nil {
			t.Fatalf("%s: %v", r.Value, err)
		}
		if strings.Contains(string(r.Value), `"abc"`) || !strings.Contains(string(r.Value), `"serviceName":"checkout"`) {
			t.Errorf("%s event: want the token redacted and the service name set: %s", ev.Type, r.Value)
		}
	}
}

// TestDropsWhileKafkaIsDown: the broker is down, the buffer fills, the overflow is
// dropped at once (counted, reported) and published as a drop event once Kafka is up.
func TestDropsWhileKafkaIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there yet: the broker is "down"
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	reg := prometheus.NewRegistry()
	var onDrop atomic.Int64
	p := newProducer(t, []string{addr}, func(c *producer.Config) {
		c.MaxBufferedRecords = 5
		c.DropReportInterval = 50 * time.Millisecond
	}, producer.WithRegisterer(reg), producer.WithOnDrop(func(d producer.Drop) {
		if d.Reason == dropalerts.ReasonProducerBufferFull {
			onDrop.Add(1)
		}
	}))
	var dropped int
	for range 20 {
		p.StartSpan(producer.SpanOptions{Name: "s", Type: schema.Generic})
	}
	for i := range 5 {
		err := p.Log(&schema.Log{Level: "info", Message: fmt.Sprint(i)})
		if errors.Is(err, producer.ErrDropped) {
			dropped++
		}
	}
	if dropped != 5 || onDrop.Load() != 20 {
		t.Fatalf("Emit reported %d drops of the last 5, OnDrop saw %d; want 5 and 20 (15 spans + 5 logs beyond the 5 buffered)", dropped, onDrop.Load())
	}
	if v := testutil.ToFloat64(promx.DroppedRecords(reg).WithLabelValues("tracing", "producer-buffer-full", "producer")); v != 15 {
		t.Fatalf("spanpipe_dropped_records_total{tracing,producer-buffer-full} = %v, want 15", v)
	}
	// The broker comes up: buffered records are delivered and the drops are published.
	c, err := kfake.NewCluster(kfake.Ports(port), kfake.SeedTopics(1, "spanpipe.spans", "spanpipe.drops"))
	if err != nil {
		t.Fatalf("start broker on %d: %v", port, err)
	}
	t.Cleanup(c.Close)
	var total int
	deadline := time.Now().Add(20 * time.Second)
	for total < 20 && time.Now().Before(deadline) {
		total = 0
		for _, r := range kafkatest.ReadAll(t, []string{addr}, "spanpipe.drops", 1, 2*time.Second) {
			ev, err := dropalerts.ParseEvent(r.Value)
			if err == nil && ev.Reason == dropalerts.ReasonProducerBufferFull && ev.Component == "producer" {
				total += ev.Count
			}
		}
	}
	if total != 20 {
		t.Fatalf("drop events on the drop topic count %d records, want 20", total)
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := len(kafkatest.ReadAll(t, []string{addr}, "spanpipe.spans", 5, 5*time.Second)); got != 5 {
		t.Fatalf("%d buffered records delivered after the outage, want 5", got)
	}
}

func TestTooLargeIsDroppedWithReason(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.spans")
	var mu sync.Mutex
	var reasons []dropalerts.Reason
	p := newProducer(t, c.ListenAddrs(), func(c *producer.Config) { c.MaxRecordBytes = 1024 },
		producer.WithOnDrop(func(d producer.Drop) { mu.Lock(); reasons = append(reasons, d.Reason); mu.Unlock() }))
	// Encoding happens off the caller's goroutine: Emit accepts the event, and the
	// drop is reported by the time Flush returns.
	if err := p.Log(&schema.Log{Level: "info", Message: strings.Repeat("x", 4096)}); err != nil {
		t.Fatalf("Log = %v, want nil (the size is known only once encoded)", err)
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reasons) != 1 || reasons[0] != dropalerts.ReasonTooLarge {
		t.Fatalf("reasons %v; want one too-large drop", reasons)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := producer.Config{OnBufferFull: "panic", Compression: "brotli", Codec: "protobuf", Redact: producer.RedactConfig{Style: "fancy"}}
	err := cfg.Validate()
	for _, key := range []string{"producer.brokers", "producer.topic", "producer.service_name", "producer.on_buffer_full",
		"producer.compression", "producer.codec", "producer.max_record_bytes", "redact.style"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
	if _, err := producer.New(cfg); err == nil {
		t.Error("New accepted an invalid config")
	}
}

func TestEmitAfterClose(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.spans")
	p := newProducer(t, c.ListenAddrs(), nil)
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := p.Log(&schema.Log{Level: "info", Message: "late"}); !errors.Is(err, producer.ErrClosed) {
		t.Fatalf("Emit after Close = %v, want ErrClosed", err)
	}
}

// Close with the broker down must neither hang nor lose events silently: what was not
// delivered within Close's context is counted as dropped.
func TestCloseWithBrokerDownCountsUndelivered(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := producer.DefaultConfig()
	cfg.Brokers = []string{addr}
	cfg.ServiceName = "checkout"
	var drops atomic.Int64
	p, err := producer.New(cfg, producer.WithOnDrop(func(producer.Drop) { drops.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		if err := p.Log(&schema.Log{Level: "info", Message: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); err == nil {
		t.Fatal("Close with the broker down = nil, want the flush error")
	}
	if n := drops.Load(); n != 7 {
		t.Fatalf("OnDrop saw %d drops, want all 7 undelivered events", n)
	}
	if err := p.Flush(t.Context()); !errors.Is(err, producer.ErrClosed) {
		t.Fatalf("Flush after Close = %v, want ErrClosed", err)
	}
}
