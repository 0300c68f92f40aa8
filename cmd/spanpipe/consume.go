package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

func runConsume(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("consume", flag.ContinueOnError)
	path := fs.String("config", os.Getenv("SPANPIPE_CONFIG"), "YAML config file (env SPANPIPE_CONFIG)")
	brokers := fs.String("brokers", "", "seed brokers, comma-separated (overrides kafka.brokers)")
	group := fs.String("group", "", "consumer group (overrides kafka.group)")
	db := fs.String("db", "", "DuckDB file (overrides sink.duckdb.path)")
	strategy := fs.String("strategy", "", "realtime, batch-with-updates, insert-only or auto (overrides pipeline.strategy)")
	metricsAddr := fs.String("metrics-addr", "", "address for /metrics and /healthz (overrides metrics.listen)")
	check := fs.Bool("check", false, "validate the config and exit")
	if err := fs.Parse(args); err != nil {
		return exitError{2, err}
	}
	cfg, err := app.Load(*path, os.Environ())
	if err != nil {
		return exitError{2, err}
	}
	if *brokers != "" {
		cfg.Kafka.Brokers = strings.Split(*brokers, ",")
	}
	if *group != "" {
		cfg.Kafka.Group = *group
	}
	if *db != "" {
		cfg.Sink.DuckDB.Path = *db
	}
	if *strategy != "" {
		cfg.Pipeline.Strategy = pipeline.Strategy(*strategy)
	}
	if *metricsAddr != "" {
		cfg.Metrics.Listen = *metricsAddr
	}
	if err := cfg.Validate(); err != nil {
		return exitError{2, fmt.Errorf("invalid config:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))}
	}
	if *check {
		fmt.Println("config ok")
		return nil
	}
	log := app.NewLogger(cfg.Log)
	reg := app.NewRegistry()

	sink, err := duckdb.Open(ctx, cfg.Sink.DuckDB, duckdb.WithLogger(log), duckdb.WithRegisterer(reg), duckdb.WithFaultInjector(app.FaultInjector(os.Environ(), log)))
	if err != nil {
		return err
	}
	defer func() {
		if err := sink.Close(); err != nil {
			log.Error("closing sink", "err", err)
		}
	}()
	c, err := app.NewConsumer(cfg, sink, log, reg, nil)
	if err != nil {
		return err
	}
	if cfg.Metrics.Listen != "" {
		ms, err := app.ServeMetrics(cfg.Metrics.Listen, false, reg, func() error { return nil })
		if err != nil {
			c.Member.Close()
			return err
		}
		log.Info("serving metrics", "addr", "http://"+ms.Addr+"/metrics")
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = ms.Close(sctx)
		}()
	}
	if err := c.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
