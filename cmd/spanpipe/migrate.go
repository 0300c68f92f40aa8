package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/sinks/clickhouse"
)

// runMigrate applies the ClickHouse sink's pending migrations and TTL changes, and
// prints what it changed. It is idempotent: a second run prints that the schema is up
// to date. The DuckDB sink migrates itself when it opens its file, so there is
// nothing to run for it.
func runMigrate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	path := fs.String("config", os.Getenv("SPANPIPE_CONFIG"), "YAML config file with sink.type clickhouse (env SPANPIPE_CONFIG)")
	dsn := fs.String("dsn", "", "ClickHouse DSN clickhouse://user:pass@host:9000/db (overrides sink.clickhouse.dsn)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: spanpipe migrate [--config FILE] [--dsn DSN]\n\nApplies the ClickHouse schema migrations (ON CLUSTER in cluster mode) and TTL changes.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitError{2, err}
	}
	if fs.NArg() > 0 {
		return exitError{2, fmt.Errorf("migrate: unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := app.Load(*path, os.Environ())
	if err != nil {
		return exitError{2, app.ConfigError(err)}
	}
	if *dsn != "" {
		cfg.Sink.Type, cfg.Sink.ClickHouse.DSN = app.SinkClickHouse, *dsn
	}
	if cfg.Sink.Type != app.SinkClickHouse {
		return exitError{2, fmt.Errorf("migrate: sink.type is %q; migrate applies to clickhouse (give --dsn or a config with sink.type: clickhouse); DuckDB migrates when it opens its file", cfg.Sink.Type)}
	}
	ch := cfg.Sink.ClickHouse
	if err := cfg.Sink.Validate(); err != nil {
		return exitError{2, app.ConfigError(err)}
	}
	eff, _ := ch.Resolve()
	where := fmt.Sprintf("database %s on %s", eff.Database, strings.Join(eff.Addr, ","))
	if eff.Cluster != "" {
		where += " (ON CLUSTER " + eff.Cluster + ")"
	}
	log := app.NewLogger(cfg.Log)
	res, err := clickhouse.Migrate(ctx, ch, clickhouse.WithLogger(log))
	for _, m := range res.Applied {
		fmt.Fprintf(stdout, "applied migration %s\n", m)
	}
	for _, s := range res.TTL {
		fmt.Fprintf(stdout, "changed TTL: %s\n", s)
	}
	if err != nil {
		return fmt.Errorf("migrate %s: %w", where, err)
	}
	if len(res.Applied) == 0 && len(res.TTL) == 0 {
		fmt.Fprintf(stdout, "%s: schema up to date, nothing applied\n", where)
	} else {
		fmt.Fprintf(stdout, "%s: %d migration(s) applied, %d TTL change(s)\n", where, len(res.Applied), len(res.TTL))
	}
	return nil
}
