package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/query"
	"github.com/spanpipe/spanpipe/sinks/clickhouse"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

func runConsume(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("consume", flag.ContinueOnError)
	path := fs.String("config", os.Getenv("SPANPIPE_CONFIG"), "YAML config file (env SPANPIPE_CONFIG)")
	brokers := fs.String("brokers", "", "seed brokers, comma-separated (overrides kafka.brokers; default env "+brokersEnv+", else "+defaultBrokers+")")
	topics := fs.String("topic", "", "topics to consume, comma-separated (overrides kafka.topics; default "+strings.Join(app.DefaultConfig().Kafka.Topics, ",")+")")
	group := fs.String("group", "", "consumer group (overrides kafka.group)")
	db := fs.String("db", "", "DuckDB file (sets sink.type duckdb and sink.duckdb.path)")
	dsn := fs.String("dsn", "", "ClickHouse DSN clickhouse://user:pass@host:9000/db (sets sink.type clickhouse and sink.clickhouse.dsn)")
	strategy := fs.String("strategy", "", "realtime, batch-with-updates, insert-only or auto (overrides pipeline.strategy)")
	metricsAddr := fs.String("metrics-addr", "", "address for /metrics, /livez and /readyz (overrides metrics.listen)")
	check := fs.Bool("check", false, "validate the config, sink included, and exit without connecting")
	connectTimeout := fs.Duration("connect-timeout", 30*time.Second, "at start, fail when no broker answers within this long (0: wait forever)")
	ui := addUIFlags(fs, "")
	logf := addLogFlags(fs, app.DefaultConfig().Log)
	if err := fs.Parse(args); err != nil {
		return exitError{2, err}
	}
	token, err := query.ReadToken(*ui.tokenFile, os.Getenv)
	if err != nil {
		return exitError{2, err}
	}
	if *ui.addr != "" {
		if err := (query.ServerConfig{Addr: *ui.addr, Token: token}).Validate(); err != nil {
			return exitError{2, err}
		}
	}
	cfg, loadErr := app.Load(*path, os.Environ())
	var bad problems
	bad.add(loadErr)
	if isSet(fs, "brokers") {
		bs, err := parseBrokers(*brokers)
		if bad.add(err); err == nil {
			cfg.Kafka.Brokers = bs
		}
	}
	if isSet(fs, "topic") {
		cfg.Kafka.Topics = splitList(*topics)
		bad.check(len(cfg.Kafka.Topics) > 0, "--topic must name at least one topic")
	}
	if *group != "" {
		cfg.Kafka.Group = *group
	}
	logf.apply(fs, &cfg.Log)
	bad.add(applySinkFlags(&cfg, *db, *dsn))
	if *strategy != "" {
		cfg.Pipeline.Strategy = pipeline.Strategy(*strategy)
	}
	if *metricsAddr != "" {
		cfg.Metrics.Listen = *metricsAddr
	}
	bad.check(*connectTimeout >= 0, "--connect-timeout must be >= 0 (0: wait forever), got %s", *connectTimeout)
	bad.add(cfg.Validate())
	if *check {
		bad.add(checkPaths(cfg))
	}
	if err := bad.err(); err != nil {
		return err
	}
	if *check {
		fmt.Fprintf(stdout, "config ok (sink %s)\n", cfg.Sink.Type)
		return nil
	}
	log := app.NewLogger(cfg.Log)
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	reg := app.NewRegistry()
	sec, err := kafkaSecurityOpts(ctx, cfg.Kafka.Security, cfg.Kafka.Brokers)
	if err != nil {
		return err
	}
	if err := checkKafka(ctx, cfg.Kafka.Brokers, cfg.Kafka.Topics, *connectTimeout, sec, log); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// After checkKafka: a broker that answers, so creating a missing topic is not a
	// 15 s wait on an unreachable one. It warns of each topic it leaves missing.
	ensureTopics(ctx, cfg.Kafka.Brokers, cfg.Kafka.Topics, cfg.Topics, sec, log)

	sink, err := openSink(ctx, cfg.Sink, log, reg)
	if err != nil {
		return err
	}
	defer func() {
		if err := sink.Close(); err != nil {
			log.Error("closing sink", "err", err)
		}
	}()
	app.ApplyGoRuntime(cfg, sink.Capabilities(), log)
	c, err := app.NewConsumer(cfg, app.WithFault(sink, app.FaultInjector(os.Environ(), log)), log, reg, sec)
	if err != nil {
		return err
	}
	if cfg.Metrics.Listen != "" {
		stop, err := serveMetrics(cfg.Metrics.Listen, reg, c.Probes(), log)
		if err != nil {
			c.Member.Close()
			return err
		}
		defer stop()
	}
	if *ui.addr != "" {
		r, err := readerOf(sink)
		if err == nil {
			var e *explorer
			drops := &dropSource{topic: cfg.Drops.Topic, opts: append([]kgo.Opt{kgo.SeedBrokers(cfg.Kafka.Brokers...)}, sec...)}
			if e, err = startUI(ctx, *ui.addr, false, token, r, drops, log); err == nil {
				defer stopUI(e, log)
			}
		}
		if err != nil {
			c.Member.Close()
			return err
		}
	}
	if err := c.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// checkKafka waits up to timeout for a broker to answer: a consumer of brokers
// nobody can reach used to run forever with only the client's WARN lines. Topics that
// do not exist yet are said at WARN and waited for (a producer may create them).
// Only Kafka is checked: a sink that is down is backpressure, never a reason to fail.
func checkKafka(ctx context.Context, brokers, topics []string, timeout time.Duration, sec []kgo.Opt, log *slog.Logger) error {
	if timeout <= 0 {
		return nil
	}
	watch := newBrokerWatch(log.With("component", "kafka"))
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.WithHooks(watch)}, sec...)...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	// Missing topics are ensureTopics' to create or to warn about.
	if _, err := awaitKafka(ctx, cl, watch, brokers, topics, timeout, false); err != nil {
		return fmt.Errorf("consume: %w (check kafka.brokers / --brokers, or raise --connect-timeout)", err)
	}
	return nil
}

// applySinkFlags applies --db and --dsn, which also select the sink type.
func applySinkFlags(cfg *app.Config, db, dsn string) error {
	switch {
	case db != "" && dsn != "":
		return errors.New("--db (DuckDB) and --dsn (ClickHouse) select different sinks; give one")
	case db != "":
		cfg.Sink.Type, cfg.Sink.DuckDB.Path = app.SinkDuckDB, db
	case dsn != "":
		cfg.Sink.Type, cfg.Sink.ClickHouse.DSN = app.SinkClickHouse, dsn
	}
	return nil
}

// sink is what consume needs of a sink: the pipeline's interface and Close.
type sink interface {
	pipeline.Sink
	Close() error
}

// openSink opens the sink cfg selects. A ClickHouse sink applies pending migrations only
// with sink.clickhouse.auto_migrate; otherwise it fails while one is pending.
func openSink(ctx context.Context, cfg app.SinkConfig, log *slog.Logger, reg prometheus.Registerer) (sink, error) {
	switch cfg.Type {
	case app.SinkClickHouse:
		return clickhouse.Open(ctx, cfg.ClickHouse, clickhouse.WithLogger(log), clickhouse.WithRegisterer(reg))
	case app.SinkDuckDB:
		return duckdb.Open(ctx, cfg.DuckDB, duckdb.WithLogger(log), duckdb.WithRegisterer(reg))
	}
	return nil, fmt.Errorf("sink.type must be duckdb or clickhouse, got %q", cfg.Type)
}

// serveMetrics serves /metrics, /livez, /readyz and /healthz on addr until the
// returned stop is called; probes nil: a process whose checks always pass.
func serveMetrics(addr string, reg *prometheus.Registry, probes app.Probes, log *slog.Logger) (stop func(), err error) {
	ms, err := app.ServeMetrics(addr, false, reg, probes)
	if err != nil {
		return nil, err
	}
	log.Info("serving metrics", "addr", "http://"+ms.Addr+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ms.Close(ctx)
	}, nil
}
