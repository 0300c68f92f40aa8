package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/internal/backoff"
	"github.com/spanpipe/spanpipe/internal/demo"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kgo"
)

// produceSummary is the last stdout line of `spanpipe produce`. Every record the
// generator emitted is delivered, failed (Kafka refused it, its delivery timeout
// passed, or no buffer room) or not sent (still buffered when the command stopped).
type produceSummary struct {
	Traces        int     `json:"traces"`         // generated
	TracesPlanned int     `json:"traces_planned"` // --traces
	Spans         int     `json:"spans"`
	Records       int64   `json:"records"`
	Delivered     int64   `json:"delivered"`
	Failed        int64   `json:"failed"`
	NotSent       int64   `json:"not_sent"`
	Interrupted   bool    `json:"interrupted,omitempty"`
	ElapsedS      float64 `json:"elapsed_s"`
	SpansPerS     float64 `json:"spans_per_s"`
	FirstError    string  `json:"first_error,omitempty"`
}

// produceCloseGrace is how long, after a signal, buffered records get before they
// are counted as not sent.
const produceCloseGrace = 2 * time.Second

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
	deliveryTimeout := fs.Duration("delivery-timeout", producer.DefaultConfig().DeliveryTimeout, "a record not acknowledged by Kafka within this long fails (counted in the summary)")
	codec := fs.String("codec", producer.DefaultConfig().Codec, "wire codec of the records: json or spanpipe-bin/v1 (compact binary; needs consumers that read it)")
	progressEvery := fs.Duration("progress", 5*time.Second, "print progress to stderr this often (0: never)")
	logf := addLogFlags(fs, app.DefaultConfig().Log)
	if err := fs.Parse(args); err != nil {
		return exitError{2, err}
	}
	var bad problems
	bad.check(*traces >= 1, "--traces must be >= 1, got %d", *traces)
	bad.check(*rate >= 0, "--rate must be >= 0 (0: as fast as possible), got %g", *rate)
	bad.check(*minPayload >= 0 && *minPayload <= *maxPayload, "--min-payload (%d) must be between 0 and --max-payload (%d)", *minPayload, *maxPayload)
	bad.check(*partitions >= 1, "--partitions must be >= 1, got %d", *partitions)
	bad.check(*deliveryTimeout > 0, "--delivery-timeout must be > 0, got %s", *deliveryTimeout)
	bad.check(*codec == schema.CodecJSON || *codec == schema.CodecBinary, "--codec must be %s or %s, got %q", schema.CodecJSON, schema.CodecBinary, *codec)
	bad.check(*progressEvery >= 0, "--progress must be >= 0 (0: never), got %s", *progressEvery)
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
	cfg.DeliveryTimeout = *deliveryTimeout
	cfg.Codec = *codec
	if err := cfg.Validate(); err != nil {
		return exitError{2, app.ConfigError(err)}
	}
	log := app.NewLogger(logCfg)
	sec, err := envKafkaSecurityOpts(ctx, cfg.Brokers)
	if err != nil {
		return err
	}
	var acct produceAccount
	watch := newBrokerWatch(log)
	watched := append([]kgo.Opt{kgo.WithHooks(watch)}, sec...)
	tc := app.DefaultConfig().Topics
	tc.Partitions = int32(*partitions)
	// The watch names an unreachable broker within seconds, while this waits for it.
	ensureTopics(ctx, cfg.Brokers, []string{cfg.Topic}, tc, watched, log)
	reg := app.NewRegistry()
	p, err := producer.New(cfg, producer.WithLogger(log), producer.WithRegisterer(reg), producer.WithOnDrop(acct.drop),
		producer.WithKgoOpts(watched...))
	if err != nil {
		return err
	}
	g := demo.New(p, demo.Options{MinPayload: *minPayload, MaxPayload: *maxPayload, Seed: uint64(time.Now().UnixNano())})
	start := time.Now()
	var done, spans atomic.Int64
	var ids traceSample
	generated := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(generated)
		for i := 0; i < *traces && ctx.Err() == nil; i++ {
			if *rate > 0 {
				due := start.Add(time.Duration(float64(i) / *rate * float64(time.Second)))
				if backoff.Sleep(ctx, time.Until(due)) != nil {
					return
				}
			}
			spans.Add(int64(g.Trace()))
			ids.add(g.LastTraceID())
			done.Add(1)
		}
	})
	stopProgress := every(*progressEvery, func() {
		sent := int64(sentRecords(reg))
		line := fmt.Sprintf("produce: %d/%d traces, %d spans, %d records delivered, %d failed, %.0f spans/s",
			done.Load(), *traces, spans.Load(), sent, acct.failed.Load(), float64(spans.Load())/time.Since(start).Seconds())
		if why := watch.Problem(); why != "" {
			line += ", broker unreachable: " + why
		}
		fmt.Fprintln(os.Stderr, line)
	})
	defer stopProgress()

	select {
	case <-generated:
		// What is buffered gets its delivery timeout (kgo fails it then), unless a
		// signal says stop.
		fctx, cancel := context.WithTimeout(ctx, cfg.DeliveryTimeout+5*time.Second)
		_ = p.Flush(fctx)
		cancel()
	case <-ctx.Done():
	}
	cctx, cancel := context.WithTimeout(context.Background(), produceCloseGrace)
	defer cancel()
	_ = p.Close(cctx) // also ends an Emit blocked for room; what it cannot deliver is counted
	wg.Wait()
	stopProgress()

	el := time.Since(start).Seconds()
	sum := produceSummary{
		Traces: int(done.Load()), TracesPlanned: *traces, Spans: int(spans.Load()), Delivered: int64(sentRecords(reg)),
		Failed: acct.failed.Load(), NotSent: acct.notSent.Load(), Interrupted: ctx.Err() != nil,
		ElapsedS: float64(int64(el*1000)) / 1000, SpansPerS: float64(int64(float64(spans.Load()) / el)), FirstError: acct.firstError(),
	}
	sum.Records = sum.Delivered + sum.Failed + sum.NotSent
	line, _ := json.Marshal(sum)
	fmt.Fprintln(stdout, string(line))
	lost := sum.Failed + sum.NotSent
	if lost == 0 {
		printTraceHint(os.Stderr, ids.list(), "spanpipe trace %s --db FILE", "", "or --dsn DSN: the store your consumer writes to")
	}
	switch {
	case lost > 0:
		why := sum.FirstError
		if p := watch.Problem(); p != "" {
			why = "broker unreachable: " + p
		}
		return fmt.Errorf("produce: %d of %d records lost (%d failed, %d not sent): %s", lost, sum.Records, sum.Failed, sum.NotSent, why)
	case ctx.Err() != nil:
		return exitError{130, errors.New("produce: interrupted")}
	}
	return nil
}

// produceAccount counts the records the producer could not deliver.
type produceAccount struct {
	failed, notSent atomic.Int64
	mu              sync.Mutex
	first           string
}

func (a *produceAccount) drop(d producer.Drop) {
	// Failed by the shutdown, not by Kafka: the records were never given their chance.
	if errors.Is(d.Err, producer.ErrClosed) || errors.Is(d.Err, context.Canceled) || errors.Is(d.Err, kgo.ErrClientClosed) {
		a.notSent.Add(1)
		return
	}
	a.failed.Add(1)
	a.mu.Lock()
	if a.first == "" && d.Err != nil {
		a.first = d.Err.Error()
	}
	a.mu.Unlock()
}

func (a *produceAccount) firstError() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.first
}

// sentRecords sums spanpipe_producer_records_sent_total over signals.
func sentRecords(reg prometheus.Gatherer) float64 {
	return metricSum(reg, "spanpipe_producer_records_sent_total")
}

// traceSample keeps the first few trace ids, to show where to look.
type traceSample struct {
	mu  sync.Mutex
	ids []string
}

const traceHints = 3

func (s *traceSample) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ids) < traceHints && id != "" {
		s.ids = append(s.ids, id)
	}
}

func (s *traceSample) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids
}

// printTraceHint shows a few trace ids and how to open them: cmd has one %s for the
// id; uiURL, when set, is the explorer; note, when set, follows the list.
func printTraceHint(w io.Writer, ids []string, cmd, uiURL, note string) {
	if len(ids) == 0 {
		return
	}
	fmt.Fprintln(w, "\n  a few traces:")
	for _, id := range ids {
		fmt.Fprintf(w, "    "+cmd+"\n", id)
		if uiURL != "" {
			fmt.Fprintf(w, "    %s#/trace/%s\n", uiURL, id)
		}
	}
	if note != "" {
		fmt.Fprintf(w, "  (%s)\n", note)
	}
	fmt.Fprintln(w)
}

// every calls fn every d on its own goroutine until the returned stop is called
// (safe to call twice); d <= 0: never.
func every(d time.Duration, fn func()) (stop func()) {
	if d <= 0 {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				fn()
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { close(quit); wg.Wait() }) }
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
