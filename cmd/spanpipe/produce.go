package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/internal/demo"
	"github.com/spanpipe/spanpipe/producer"
)

func runProduce(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	brokers := fs.String("brokers", envOr("SPANPIPE_KAFKA_BROKERS", "127.0.0.1:9092"), "seed brokers, comma-separated")
	topic := fs.String("topic", "spanpipe.spans", "topic")
	traces := fs.Int("traces", 1000, "number of traces to publish")
	rate := fs.Float64("rate", 0, "traces per second (0 = as fast as possible)")
	minPayload := fs.Int("min-payload", 200, "smallest input/output payload, bytes")
	maxPayload := fs.Int("max-payload", 2000, "largest input/output payload, bytes")
	service := fs.String("service", "spanpipe-loadgen", "service name written into every span")
	onFull := fs.String("on-buffer-full", producer.OnFullBlock, "drop or block")
	if err := fs.Parse(args); err != nil {
		return exitError{2, err}
	}
	cfg := producer.DefaultConfig()
	cfg.Brokers = strings.Split(*brokers, ",")
	cfg.Topic = *topic
	cfg.ServiceName = *service
	cfg.OnBufferFull = *onFull
	cfg.BlockTimeout = time.Minute
	if err := cfg.Validate(); err != nil {
		return exitError{2, err}
	}
	log := app.NewLogger(app.LogConfig{Level: "warn"})
	var drops atomic.Int64
	sec, err := envKafkaSecurityOpts(ctx, cfg.Brokers)
	if err != nil {
		return err
	}
	p, err := producer.New(cfg, producer.WithLogger(log), producer.WithOnDrop(func(producer.Drop) { drops.Add(1) }), producer.WithKgoOpts(sec...))
	if err != nil {
		return err
	}
	g := demo.New(p, demo.Options{MinPayload: *minPayload, MaxPayload: *maxPayload, Seed: uint64(time.Now().UnixNano())})
	start := time.Now()
	last := start
	spans := 0
	for i := 0; i < *traces && ctx.Err() == nil; i++ {
		if *rate > 0 {
			due := start.Add(time.Duration(float64(i) / *rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		spans += g.Trace()
		if time.Since(last) >= time.Second {
			last = time.Now()
			el := last.Sub(start).Seconds()
			fmt.Fprintf(os.Stderr, "produce: %d/%d traces, %d spans, %.0f spans/s, %d dropped\n", i+1, *traces, spans, float64(spans)/el, drops.Load())
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Close(cctx); err != nil {
		return err
	}
	el := time.Since(start).Seconds()
	fmt.Printf("{\"traces\":%d,\"spans\":%d,\"dropped\":%d,\"elapsed_s\":%.3f,\"spans_per_s\":%.0f}\n", *traces, spans, drops.Load(), el, float64(spans)/el)
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
