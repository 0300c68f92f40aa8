package producer_test

import (
	"context"
	"fmt"
	"time"

	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A span's life: every call emits a full snapshot with a higher version, keyed by
// trace id. (An in-process broker stands in for your Kafka cluster.)
func ExampleProducer_StartSpan() {
	cluster, _ := kfake.NewCluster(kfake.SeedTopics(1, "spanpipe.spans"))
	defer cluster.Close()

	cfg := producer.DefaultConfig()
	cfg.Brokers = cluster.ListenAddrs()
	cfg.ServiceName = "support-bot"
	p, err := producer.New(cfg)
	if err != nil {
		panic(err)
	}
	defer p.Close(context.Background())

	run := p.StartSpan(producer.SpanOptions{Name: "support agent", Type: schema.AgentRun,
		Input: map[string]string{"question": "where is my order?"}})
	llm := run.StartChild(producer.SpanOptions{Name: "llm", Type: schema.ModelGeneration})
	llm.Update(func(s *schema.Span) { s.Attributes = producer.JSON(map[string]string{"model": "gpt-4o-mini"}) })
	llm.End(producer.EndOptions{Output: "It ships tomorrow."})
	run.End(producer.EndOptions{Output: "It ships tomorrow."})
	_ = p.Flush(context.Background())

	for _, ev := range readBack(cluster.ListenAddrs(), 5) {
		fmt.Println(ev.Type, ev.Span.Type, "version", ev.Span.Version, "service", ev.Span.ServiceName)
	}
	// Output:
	// span_started agent_run version 1 service support-bot
	// span_started model_generation version 1 service support-bot
	// span_updated model_generation version 2 service support-bot
	// span_ended model_generation version 3 service support-bot
	// span_ended agent_run version 2 service support-bot
}

// Other signals get an id, a timestamp and the service name.
func ExampleProducer_Metric() {
	cluster, _ := kfake.NewCluster(kfake.SeedTopics(1, "spanpipe.spans"))
	defer cluster.Close()
	cfg := producer.DefaultConfig()
	cfg.Brokers = cluster.ListenAddrs()
	cfg.ServiceName = "support-bot"
	p, _ := producer.New(cfg)
	defer p.Close(context.Background())

	_ = p.Metric(&schema.Metric{Name: "mastra_model_total_input_tokens", Value: 812, Labels: map[string]string{"model": "gpt-4o-mini"}})
	_ = p.Flush(context.Background())
	ev := readBack(cluster.ListenAddrs(), 1)[0]
	fmt.Println(ev.Type, ev.Metric.Name, ev.Metric.Value, ev.Metric.Correlation.ServiceName, len(ev.Metric.MetricID))
	// Output: metric mastra_model_total_input_tokens 812 support-bot 32
}

// Go producers can write the compact binary codec: consumers read it several times
// faster than JSON, and every record names its codec in a header, so the topic and
// the stored spans are the same either way.
func ExampleConfig_codec() {
	cluster, _ := kfake.NewCluster(kfake.SeedTopics(1, "spanpipe.spans"))
	defer cluster.Close()
	cfg := producer.DefaultConfig()
	cfg.Brokers = cluster.ListenAddrs()
	cfg.ServiceName = "support-bot"
	cfg.Codec = schema.CodecBinary // default: schema.CodecJSON
	p, _ := producer.New(cfg)
	defer p.Close(context.Background())

	p.StartSpan(producer.SpanOptions{Name: "support agent", Type: schema.AgentRun, Input: "where is my order?"}).
		End(producer.EndOptions{Output: "It ships tomorrow."})
	_ = p.Flush(context.Background())

	cl, _ := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumeTopics("spanpipe.spans"))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for n := 0; n < 2 && ctx.Err() == nil; {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			codec := string(r.Headers[0].Value) // spanpipe-codec
			ev, err := schema.Decode(codec, r.Value)
			if err != nil {
				panic(err)
			}
			fmt.Println(r.Headers[0].Key, codec, ev.Type, ev.Span.Name, string(ev.Span.Input))
			n++
		})
	}
	// Output:
	// spanpipe-codec spanpipe-bin/v1 span_started support agent "where is my order?"
	// spanpipe-codec spanpipe-bin/v1 span_ended support agent "where is my order?"
}

func readBack(brokers []string, n int) []*schema.Event {
	cl, _ := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("spanpipe.spans"))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*schema.Event
	for len(out) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if ev, err := schema.Decode("", r.Value); err == nil {
				out = append(out, ev)
			}
		})
	}
	return out
}
