package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/query"
	"github.com/spanpipe/spanpipe/sinks/clickhouse"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

// runServe serves the explorer and the query API over a store no consumer of this
// process writes: ClickHouse (any number of replicas), or a DuckDB file no other
// process holds (for a DuckDB file a consumer writes, use its --ui).
func runServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := fs.String("config", os.Getenv("SPANPIPE_CONFIG"), "YAML config file; reads the sink it selects (env SPANPIPE_CONFIG)")
	db := fs.String("db", "", "read this DuckDB file (not while a consumer has it open: use the consumer's --ui)")
	dsn := fs.String("dsn", "", "read this ClickHouse DSN clickhouse://user:pass@host:9000/db (a readonly user is enough)")
	listen := fs.String("listen", query.DefaultAddr, "address of the explorer; other than loopback requires a token")
	tokenFile := fs.String("token-file", "", "file holding the token every request must carry (else env "+query.TokenEnv+")")
	brokers := fs.String("brokers", "", "read the drop summary from the drop topic (drops.topic) of these seed brokers, comma-separated (empty: no drop summary)")
	logf := addLogFlags(fs, app.DefaultConfig().Log)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: spanpipe serve [--config FILE | --db FILE | --dsn DSN] [--listen ADDR] [--token-file FILE] [--brokers HOST:PORT]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitError{2, err}
	}
	if fs.NArg() > 0 {
		return exitError{2, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := app.Load(*path, os.Environ())
	var bad problems
	bad.add(err)
	bad.add(applySinkFlags(&cfg, *db, *dsn))
	logf.apply(fs, &cfg.Log)
	bad.add(cfg.Log.ValidateFlags())
	if err := bad.err(); err != nil {
		return err
	}
	token, err := query.ReadToken(*tokenFile, os.Getenv)
	if err != nil {
		return exitError{2, err}
	}
	if err := (query.ServerConfig{Addr: *listen, Token: token}).Validate(); err != nil {
		return exitError{2, err}
	}
	log := app.NewLogger(cfg.Log)
	r, err := openTraceReader(ctx, cfg.Sink)
	if err != nil {
		return err
	}
	defer r.Close()
	var drops *dropSource
	if bs := splitList(*brokers); len(bs) > 0 {
		sec, err := kafkaSecurityOpts(ctx, cfg.Kafka.Security, bs)
		if err != nil {
			return err
		}
		drops = &dropSource{topic: cfg.Drops.Topic, opts: append([]kgo.Opt{kgo.SeedBrokers(bs...)}, sec...)}
	}
	e, err := startUI(ctx, *listen, false, token, r, drops, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return stopUI(e, log)
}

// uiFlags are the explorer flags of consume and dev.
type uiFlags struct{ addr, tokenFile *string }

func addUIFlags(fs *flag.FlagSet, def string) uiFlags {
	return uiFlags{
		addr:      fs.String("ui", def, "serve the explorer and the query API on this address (empty: off); other than loopback requires a token"),
		tokenFile: fs.String("ui-token-file", "", "file holding the token every explorer request must carry (else env "+query.TokenEnv+")"),
	}
}

// dropSource is the Kafka the explorer's drop summary reads: the drop topic, and
// client options (seed brokers, security). nil: no drop summary.
type dropSource struct {
	topic string
	opts  []kgo.Opt
}

// explorer is a running explorer and the drop feed it owns.
type explorer struct {
	srv  *query.Server
	feed *query.DropFeed
}

// startUI serves the explorer over r, with the drop summary of drops when not nil.
// With fallback, a taken port is replaced by a free one (dev's default address);
// otherwise it is an error.
func startUI(ctx context.Context, addr string, fallback bool, token string, r query.Reader, drops *dropSource, log *slog.Logger) (*explorer, error) {
	e := &explorer{}
	cfg := query.ServerConfig{Addr: addr, Token: token}
	if drops != nil {
		feed, err := query.StartDropFeed(ctx, drops.topic, log.With("component", "explorer"), drops.opts...)
		if err != nil {
			return nil, err
		}
		e.feed, cfg.Drops = feed, feed.Drops
	}
	srv, err := query.Serve(cfg, r, log.With("component", "explorer"))
	var opErr *net.OpError
	if err != nil && fallback && errors.As(err, &opErr) {
		host, _, _ := net.SplitHostPort(addr)
		cfg.Addr = net.JoinHostPort(host, "0")
		srv, err = query.Serve(cfg, r, log.With("component", "explorer"))
	}
	if err != nil {
		if e.feed != nil {
			e.feed.Close()
		}
		return nil, err
	}
	e.srv = srv
	log.Info("explorer listening", "url", srv.URL(), "auth", token != "", "drops", drops != nil)
	return e, nil
}

func stopUI(e *explorer, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := e.srv.Close(ctx)
	if e.feed != nil {
		e.feed.Close()
	}
	if err != nil {
		log.Error("stopping explorer", "err", err)
	}
	return err
}

// readerOf returns the query side of an open sink: the UI of a DuckDB consumer reads
// through the consumer's own handle, since DuckDB lets one process open the file.
func readerOf(s sink) (query.Reader, error) {
	switch w := s.(type) {
	case *duckdb.Writer:
		return duckdb.NewReader(w.DB()), nil
	case *clickhouse.Writer:
		return w.Reader(), nil
	}
	return nil, fmt.Errorf("--ui: the %T sink has no reader", s)
}
