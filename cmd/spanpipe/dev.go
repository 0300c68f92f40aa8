package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/internal/demo"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/query"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// devSummary is the last stdout line of `spanpipe dev --exit-when-done`.
type devSummary struct {
	Traces       int    `json:"traces"`
	SpansEmitted int    `json:"spans_emitted"`
	SpansStored  int64  `json:"spans_stored"` // by this run
	SpansInDB    int64  `json:"spans_in_db"`  // by this run and earlier ones
	Dropped      int64  `json:"dropped"`
	ElapsedMS    int64  `json:"elapsed_ms"`
	DB           string `json:"db"`
	Strategy     string `json:"strategy"`
	Broker       string `json:"broker"`
	Metrics      string `json:"metrics"`
	UI           string `json:"ui,omitempty"`
	// Interrupted: a signal stopped the demo; Traces and SpansEmitted are what it
	// published before that, not what --demo asked for.
	Interrupted bool `json:"interrupted,omitempty"`
}

func runDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	demoN := fs.Int("demo", 0, "publish N demo agent traces through the producer")
	exitWhenDone := fs.Bool("exit-when-done", false, "exit once every emitted span is stored; the last stdout line is a JSON summary")
	dbPath := fs.String("db", "spanpipe.duckdb", "DuckDB file")
	port := fs.Int("port", 9092, "broker port on 127.0.0.1 (a free port is used if the default is taken; a port given here is used or an error)")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9464", "address for /metrics, /livez and /readyz (a free port is used if it is taken)")
	strategy := fs.String("strategy", "auto", "realtime, batch-with-updates, insert-only or auto")
	partitions := fs.Int("partitions", 4, "partitions of the spans topic")
	timeout := fs.Duration("timeout", 5*time.Minute, "with --exit-when-done: give up after this long")
	logf := addLogFlags(fs, app.DefaultConfig().Log)
	ui := addUIFlags(fs, query.DefaultAddr)
	if err := fs.Parse(args); err != nil {
		return exitError{2, err}
	}
	portGiven := isSet(fs, "port")
	var bad problems
	bad.check(*demoN >= 0, "--demo must be >= 0, got %d", *demoN)
	bad.check(*partitions >= 1, "--partitions must be >= 1, got %d", *partitions)
	bad.check(validPort(*port), "--port must be 0 to 65535, got %d", *port)
	bad.check(*timeout > 0, "--timeout must be > 0, got %s", *timeout)
	logCfg, err := logf.config()
	bad.add(err)
	if err := bad.err(); err != nil {
		return err
	}
	token, err := query.ReadToken(*ui.tokenFile, os.Getenv)
	if err != nil {
		return exitError{2, err}
	}
	start := time.Now()
	cfg := app.DefaultConfig()
	cfg.Log = logCfg
	cfg.Sink.DuckDB.Path = *dbPath
	cfg.Pipeline.Strategy = pipeline.Strategy(*strategy)
	// Dev is interactive: show data within a second rather than after Mastra's 5s.
	cfg.Pipeline.MaxBatchWait = time.Second
	cfg.Kafka.ClientID = "spanpipe-dev"

	broker, err := kfake.NewCluster(kfake.Ports(*port), kfake.SeedTopics(int32(*partitions), cfg.Kafka.Topics...),
		kfake.SeedTopics(1, cfg.Drops.Topic), kfake.AllowAutoTopicCreation())
	if err != nil && portGiven {
		// Moving elsewhere would leave the user's clients talking to whatever holds it.
		return exitError{1, fmt.Errorf("dev: --port %d: %w (another spanpipe dev or a Kafka broker may hold it; leave --port out to use a free port)", *port, err)}
	}
	if err != nil {
		broker, err = kfake.NewCluster(kfake.SeedTopics(int32(*partitions), cfg.Kafka.Topics...),
			kfake.SeedTopics(1, cfg.Drops.Topic), kfake.AllowAutoTopicCreation())
	}
	if err != nil {
		return fmt.Errorf("dev: start in-process broker: %w", err)
	}
	defer broker.Close()
	cfg.Kafka.Brokers = broker.ListenAddrs()
	if err := cfg.Validate(); err != nil {
		return exitError{2, err}
	}
	log := app.NewLogger(cfg.Log)
	reg := app.NewRegistry()

	sink, err := duckdb.Open(ctx, cfg.Sink.DuckDB, duckdb.WithLogger(log), duckdb.WithRegisterer(reg))
	if err != nil {
		return err
	}
	defer sink.Close()
	// No app.ApplyGoRuntime, unlike consume: the in-process broker keeps every record
	// produced in this heap, and a Go memory limit sized for a consumer's buffers
	// would have the collector run without end once the topics outgrew it.
	c, err := app.NewConsumer(cfg, sink, log, reg, nil)
	if err != nil {
		return err
	}
	ms, err := app.ServeMetrics(*metricsAddr, true, reg, c.Probes())
	if err != nil {
		c.Member.Close()
		return err
	}
	defer ms.Close(context.Background())
	uiURL := ""
	if *ui.addr != "" {
		// The explorer reads through the sink's handle: DuckDB lets one process open the file.
		drops := &dropSource{topic: cfg.Drops.Topic, opts: []kgo.Opt{kgo.SeedBrokers(cfg.Kafka.Brokers...)}}
		e, err := startUI(ctx, *ui.addr, *ui.addr == query.DefaultAddr, token, duckdb.NewReader(sink.DB()), drops, log)
		if err != nil {
			c.Member.Close()
			return exitError{2, err}
		}
		defer stopUI(e, log)
		uiURL = e.srv.URL()
	}
	log.Info("spanpipe dev running", "broker", cfg.Kafka.Brokers[0], "db", *dbPath, "metrics", "http://"+ms.Addr+"/metrics", "strategy", c.Batcher.Strategy())
	fmt.Fprintf(os.Stderr, "\n  broker   %s\n  duckdb   %s\n  metrics  http://%s/metrics\n", cfg.Kafka.Brokers[0], *dbPath, ms.Addr)
	if uiURL != "" {
		fmt.Fprintf(os.Stderr, "  explorer %s\n", uiURL)
	}
	fmt.Fprintln(os.Stderr)

	consumeCtx, stopConsume := context.WithCancel(ctx)
	defer stopConsume()
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = c.Run(consumeCtx) })

	pcfg := producer.DefaultConfig()
	pcfg.Brokers = cfg.Kafka.Brokers
	pcfg.ServiceName = "spanpipe-demo"
	pcfg.Environment = "dev"
	// The demo must not drop what it means to count: block for room instead.
	pcfg.OnBufferFull = producer.OnFullBlock
	pcfg.BlockTimeout = time.Minute
	prod, err := producer.New(pcfg, producer.WithLogger(log), producer.WithRegisterer(reg), producer.WithKgoOpts(app.KafkaOpts(reg, app.KafkaLogger(cfg.Log), "producer")...))
	if err != nil {
		stopConsume()
		wg.Wait()
		return err
	}
	// The database may hold earlier runs' spans (the README's command, run twice):
	// this run's are what it holds beyond them, since demo trace ids are new each run.
	before, err := sink.CountSpans(ctx)
	if err != nil {
		stopConsume()
		wg.Wait()
		_ = prod.Close(context.Background())
		return err
	}
	emitted, traces := 0, 0
	var ids traceSample
	if *demoN > 0 {
		// Every explorer view has something to show: long traces, errors and, where the
		// strategy stores them, running spans.
		o := demo.Options{Seed: uint64(time.Now().UnixNano()), Long: 0.1, Running: 0.05}
		if c.Batcher.Strategy() == pipeline.InsertOnly {
			o.Running = 0
		}
		g := demo.New(prod, o)
		var published, spans atomic.Int64
		stopProgress := every(2*time.Second, func() {
			line := fmt.Sprintf("dev: %d/%d demo traces published, %d spans", published.Load(), *demoN, spans.Load())
			if n, err := sink.CountSpans(ctx); err == nil {
				line += fmt.Sprintf(", %d stored", n-before)
			}
			fmt.Fprintln(os.Stderr, line)
		})
		for traces < *demoN && ctx.Err() == nil {
			emitted += g.Trace()
			ids.add(g.LastTraceID())
			traces++
			published.Store(int64(traces))
			spans.Store(int64(emitted))
		}
		stopProgress()
		if ctx.Err() == nil {
			fctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := prod.Flush(fctx)
			cancel()
			if err != nil {
				log.Error("flushing demo traces", "err", err)
			}
			log.Info("demo traces published", "traces", traces, "spans", emitted)
			printTraceHint(os.Stderr, ids.list(), "spanpipe trace %s --db "+*dbPath, uiURL, "spanpipe trace once dev has exited: DuckDB admits one process")
		} else {
			log.Warn("demo interrupted", "traces", traces, "of", *demoN, "spans", emitted)
		}
	}

	interrupted := *demoN > 0 && traces < *demoN
	switch {
	case interrupted:
		// Stop at once: the consumer stores, as it drains, what reached the broker.
	case !*exitWhenDone:
		<-ctx.Done()
		log.Info("shutting down")
	default:
		wctx, cancel := context.WithTimeout(ctx, *timeout)
		err := waitStored(wctx, cfg, sink, before+int64(emitted))
		cancel()
		if err != nil {
			log.Error("not every span was stored", "err", err)
		}
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := prod.Close(closeCtx); err != nil {
		log.Error("closing producer", "err", err)
	}
	stopConsume()
	wg.Wait()
	if runErr != nil {
		return runErr
	}
	if !*exitWhenDone && !interrupted {
		return nil
	}
	total, err := sink.CountSpans(context.Background())
	if err != nil {
		return err
	}
	stored := total - before
	sum := devSummary{
		Traces: traces, SpansEmitted: emitted, SpansStored: stored, SpansInDB: total, Dropped: int64(metricSum(reg, "spanpipe_dropped_records_total")),
		ElapsedMS: time.Since(start).Milliseconds(), DB: *dbPath, Strategy: string(c.Batcher.Strategy()),
		Broker: cfg.Kafka.Brokers[0], Metrics: ms.Addr, UI: uiURL, Interrupted: interrupted,
	}
	line, _ := json.Marshal(sum)
	fmt.Fprintln(stdout, string(line))
	if interrupted {
		return exitError{130, fmt.Errorf("dev: interrupted after %d of %d demo traces; stored %d of their %d spans, %d dropped", traces, *demoN, stored, emitted, sum.Dropped)}
	}
	if stored != int64(emitted) || sum.Dropped != 0 {
		return exitError{1, fmt.Errorf("dev: stored %d of %d spans, %d dropped", stored, emitted, sum.Dropped)}
	}
	return nil
}

// waitStored waits until the group has committed everything in the spans topic and
// the database holds want spans. Committed offsets come after durable writes, so this
// also means every final snapshot is stored, not just a running one.
func waitStored(ctx context.Context, cfg app.Config, sink *duckdb.Writer, want int64) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		lags, err := adm.Lag(ctx, cfg.Kafka.Group)
		if err == nil {
			if gl, ok := lags[cfg.Kafka.Group]; ok && gl.Error() == nil && gl.Lag.Total() == 0 && len(gl.Lag) > 0 {
				n, err := sink.CountSpans(ctx)
				if err == nil && n >= want {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d spans: %w", want, ctx.Err())
		case <-tick.C:
		}
	}
}

// metricSum sums a counter over all its labels; -1 if the registry cannot say.
func metricSum(g prometheus.Gatherer, name string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		return -1
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
