package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/internal/demo"
	"github.com/spanpipe/spanpipe/producer"
)

func runProduce(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	brokers := brokersFlag(fs)
	topic := fs.String("topic", "spanpipe.spans", "topic (kafka.topics); created with --partitions when missing")
	partitions := fs.Int("partitions", int(app.DefaultConfig().Topics.Partitions), "partitions of the topic when produce creates it (topics.partitions)")
	traces := fs.Int("traces", 1000, "number of traces to publish")
	rate := fs.Float64("rate", 0, "traces per second (0 = as fast as possible)")
	minPayload := fs.Int("min-payload", 200, "smallest input/output payload, bytes")
	maxPayload := fs.Int("max-payload", 2000, "largest input/output payload, bytes")
	service := fs.String("service", "spanpipe-loadgen", "service name written into every span")
	onFull := fs.String("on-buffer-full", producer.OnFullBlock, "drop or block")
	logf := addLogFlags(fs, app.DefaultConfig().Log)
	if err := fs.Parse(args); err != nil {
		return exitError{2, err}
	}
	var bad problems
	bad.check(*traces >= 1, "--traces must be >= 1, got %d", *traces)
	bad.check(*rate >= 0, "--rate must be >= 0 (0: as fast as possible), got %g", *rate)
	bad.check(*minPayload >= 0 && *minPayload <= *maxPayload, "--min-payload (%d) must be between 0 and --max-payload (%d)", *minPayload, *maxPayload)
	bad.check(*partitions >= 1, "--partitions must be >= 1, got %d", *partitions)
	bs, err := parseBrokers(*brokers)
	bad.add(err)
	logCfg, err := logf.config()
	bad.add(err)
	if err := bad.err(); err != nil {
		return err
	}
	cfg := producer.DefaultConfig()
	cfg.Brokers = bs
	cfg.Topic = *topic
	cfg.ServiceName = *service
	cfg.OnBufferFull = *onFull
	cfg.BlockTimeout = time.Minute
	if err := cfg.Validate(); err != nil {
		return exitError{2, app.ConfigError(err)}
	}
	log := app.NewLogger(logCfg)
	var drops atomic.Int64
	sec, err := envKafkaSecurityOpts(ctx, cfg.Brokers)
	if err != nil {
		return err
	}
	tc := app.DefaultConfig().Topics
	tc.Partitions = int32(*partitions)
	ensureTopics(ctx, cfg.Brokers, []string{cfg.Topic}, tc, sec, log)
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
