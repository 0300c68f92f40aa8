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
	"strings"
	"syscall"

	"github.com/spanpipe/spanpipe/internal/app"
)

// command is one subcommand of the binary.
type command struct {
	name    string
	summary string
	run     func(context.Context, []string) error
	// subs are its own subcommands (drops tail, topics create), for completion.
	subs []string
}

// commands lists every subcommand: main dispatches through it, and usage, `-h` and
// shell completion are made from it.
var commands = []command{
	{"dev", "run broker (in-process), consumer and DuckDB in one process; --demo N publishes N traces", runDev, nil},
	{"consume", "run a consumer-group member against real brokers (--config FILE)", runConsume, nil},
	{"produce", "publish generated agent traces to real brokers (load generator)", runProduce, nil},
	{"topics", "create or describe the spans, drop and dead-letter topics (partitions, replication, configs, offsets)", runTopics, []string{"create", "describe"}},
	{"offsets", "offsets skip: move a stopped group past an offset range, recorded as a drop event", runOffsets, []string{"skip"}},
	{"migrate", "apply the ClickHouse schema migrations (--config FILE or --dsn DSN)", runMigrate, nil},
	{"trace", "print a stored trace as a tree: trace <trace-id> --config FILE (or --db / --dsn)", runTrace, nil},
	{"serve", "the explorer (web UI) and query API over ClickHouse or a DuckDB file no consumer holds", runServe, nil},
	{"alert", "alert on drop events: Alertmanager API v2 and/or a webhook (--alertmanager URL)", runAlert, nil},
	{"drops", "drops tail: print drop events (and --dead-letters) as they arrive", runDrops, []string{"tail"}},
	{"replay", "re-publish dead letters to their source topics (--dry-run counts them)", runReplay, nil},
	{"bench", "end-to-end throughput, latency and memory against a real broker", runBench, nil},
	{"healthcheck", "ask a running spanpipe's /readyz (--url): exit 0 when it answers 200", runHealthcheck, nil},
	{"completion", "print a shell completion script: completion bash|zsh|fish", runCompletion, []string{"bash", "zsh", "fish"}},
	{"version", "print the version and commit (also: spanpipe --version)", nil, nil},
}

func usage() string {
	var b strings.Builder
	b.WriteString("usage: spanpipe <command> [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-12s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'spanpipe <command> -h' for the flags of a command.\n")
	return b.String()
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

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
		fmt.Fprint(os.Stderr, usage())
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
	cmd, args := os.Args[1], os.Args[2:]
	switch cmd {
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, app.BuildInfo())
		return
	case "-h", "--help", "-help", "help":
		fmt.Print(usage())
		return
	}
	c := lookup(cmd)
	if c == nil {
		fmt.Fprintf(os.Stderr, "spanpipe: unknown command %q\n\n%s", cmd, usage())
		os.Exit(2)
	}
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		// Every command's help starts with what it does, whatever its own usage says.
		fmt.Fprintf(os.Stderr, "spanpipe %s: %s\n\n", c.name, c.summary)
	}
	err := c.run(ctx, args)
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
