package producer_test

import (
	"context"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kfake"
)

// benchEvent is a model_generation span_ended event of about 1 KB once encoded.
func benchEvent() *schema.Event {
	start := time.Date(2025, 3, 1, 12, 0, 0, 120e6, time.UTC)
	end := start.Add(2725 * time.Millisecond)
	return &schema.Event{Type: schema.SpanEnded, Span: &schema.Span{
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", ParentSpanID: "b7ad6b7169203331",
		Name: "llm: 'gpt-4o-mini'", Type: schema.ModelGeneration, StartTime: start, EndTime: end, Version: 3,
		Attributes: producer.JSON(map[string]any{"model": "gpt-4o-mini", "provider": "openai.chat",
			"responseId": "chatcmpl-AbC123xyz789", "finishReason": "stop", "streaming": true, "temperature": 0.2,
			"usage": map[string]any{"inputTokens": 412, "outputTokens": 96}}),
		Input: producer.JSON(map[string]any{"messages": []map[string]string{
			{"role": "system", "content": "You are a helpful support agent for Acme Corp. Answer briefly and politely."},
			{"role": "user", "content": "My order #48213 has not arrived yet. Can you check its status, please?"}}}),
		Output: producer.JSON(map[string]any{"text": "I checked order #48213: it shipped on 27 February and is due tomorrow. You will get a tracking email shortly."}),
		Correlation: schema.Correlation{UserID: "user-8f3a2c", ThreadID: "thread-2b91e0", ResourceID: "support-agent",
			RunID: "run-5d7e1a", EntityType: "agent", EntityID: "support-agent", EntityName: "Support Agent"},
	}}
}

// BenchmarkEmit is the cost of Emit on the caller's goroutine for a 1 KB span, with
// the default config (sensitive-data filter on) against an in-process broker.
func BenchmarkEmit(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "spanpipe.spans", "spanpipe.drops"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cfg := producer.DefaultConfig()
	cfg.Brokers = c.ListenAddrs()
	cfg.ServiceName = "bench"
	cfg.OnBufferFull = producer.OnFullBlock
	cfg.BlockTimeout = time.Minute
	p, err := producer.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	evs := make([]*schema.Event, 1024)
	for i := range evs {
		evs[i] = benchEvent()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := p.Emit(evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.StopTimer()
	if err := p.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
}
