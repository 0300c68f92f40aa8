package demo_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/internal/demo"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
)

// TestTracesLookReal: demo traces, read back from Kafka, carry what an explorer user
// expects of agent traces: model calls of hundreds of milliseconds to seconds, tool
// calls of tens of milliseconds, failing tools and running traces.
func TestTracesLookReal(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.spans", "spanpipe.drops")
	cfg := producer.DefaultConfig()
	cfg.Brokers, cfg.ServiceName = c.ListenAddrs(), "demo-test"
	reg := prometheus.NewRegistry()
	p, err := producer.New(cfg, producer.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	g := demo.New(p, demo.Options{Seed: 1, MaxPayload: 300, Long: 0.1, Running: 0.2})
	for range 100 {
		g.Trace()
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := 0
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "spanpipe_producer_records_sent_total" {
			for _, m := range mf.GetMetric() {
				n += int(m.GetCounter().GetValue())
			}
		}
	}
	recs := kafkatest.ReadAll(t, c.ListenAddrs(), "spanpipe.spans", n, 30*time.Second)
	ended := map[string]*schema.Span{}
	started := map[string]*schema.Span{}
	for _, r := range recs {
		ev, err := schema.Decode(schema.CodecJSON, r.Value)
		if err != nil || ev.Span == nil {
			continue
		}
		switch ev.Type {
		case schema.SpanEnded:
			ended[ev.Span.SpanID] = ev.Span
		case schema.SpanStarted:
			started[ev.Span.SpanID] = ev.Span
		}
	}
	var models, tools, failed, running int
	for id, s := range started {
		e := ended[id]
		if e == nil {
			if !s.IsEvent {
				running++
			}
			continue
		}
		d := e.EndTime.Sub(e.StartTime)
		switch e.Type {
		case schema.ModelGeneration:
			models++
			if d < 100*time.Millisecond || d > 10*time.Second {
				t.Errorf("model call %s took %s, want hundreds of ms to seconds", e.Name, d)
			}
		case schema.ToolCall:
			tools++
			if d < 5*time.Millisecond || d > 500*time.Millisecond {
				t.Errorf("tool call %s took %s, want tens of ms", e.Name, d)
			}
			if e.ErrorInfo != nil {
				failed++
			}
		}
	}
	if models == 0 || tools == 0 || failed == 0 || running == 0 {
		t.Fatalf("%d model calls, %d tool calls, %d failed tools, %d running spans: want some of each", models, tools, failed, running)
	}
}
