// Command spanpipe is spanpipe's single binary: dev (everything in one process),
// consume (a consumer-group member), produce (a load generator).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spanpipe/spanpipe/internal/app"
)

const usage = `usage: spanpipe <command> [flags]

commands:
  dev       run broker (in-process), consumer and DuckDB in one process; --demo N publishes N traces
  consume   run a consumer-group member against real brokers (--config FILE)
  migrate   apply the ClickHouse schema migrations (--config FILE or --dsn DSN)
  trace     print a stored trace as a tree: trace <trace-id> --config FILE (or --db / --dsn)
  serve     the explorer (web UI) and query API over ClickHouse or a DuckDB file no consumer holds
  produce   publish generated agent traces to real brokers (load generator)
  alert     alert on drop events: Alertmanager API v2 and/or a webhook (--alertmanager URL)
  drops     drops tail: print drop events (and --dead-letters) as they arrive
  replay    re-publish dead letters to their source topics (--dry-run counts them)
  bench     end-to-end throughput, latency and memory against a real broker
  healthcheck  ask a running spanpipe's /readyz (--url): exit 0 when it answers 200
  version   print the version and commit (also: spanpipe --version)

Run 'spanpipe <command> -h' for the flags of a command.
`

// stdout is where commands print results; tests replace it.
var stdout io.Writer = os.Stdout

// exitError carries a process exit code.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }

// Unwrap lets main see flag.ErrHelp (and other causes) through the exit code.
func (e exitError) Unwrap() error { return e.err }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	// The first signal starts a graceful drain; a second one exits at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		fmt.Fprintln(os.Stderr, "spanpipe: second signal, exiting now")
		os.Exit(130)
	}()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "dev":
		err = runDev(ctx, args)
	case "consume":
		err = runConsume(ctx, args)
	case "migrate":
		err = runMigrate(ctx, args)
	case "trace":
		err = runTrace(ctx, args)
	case "serve":
		err = runServe(ctx, args)
	case "produce":
		err = runProduce(ctx, args)
	case "alert":
		err = runAlert(ctx, args)
	case "drops":
		err = runDrops(ctx, args)
	case "replay":
		err = runReplay(ctx, args)
	case "bench":
		err = runBench(ctx, args)
	case "healthcheck":
		err = runHealthcheck(ctx, args)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, app.BuildInfo())
		return
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "spanpipe: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "spanpipe:", err)
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}
