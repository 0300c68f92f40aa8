package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/internal/bench"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
)

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	brokers := fs.String("brokers", os.Getenv("KAFKA_BROKERS"), "seed brokers; empty starts a local Apache Kafka with deploy/local/kafka.sh (the run creates topics bench.spans.RUN and bench.drops.RUN and deletes them, and its groups, at the end)")
	spans := fs.Int("spans", 200000, "spans in the drain workload")
	payload := fs.Int("payload", 1024, "average payload bytes per span (input + output)")
	lifecycle := fs.String("lifecycle", "insert-only", "insert-only (one ended snapshot per span) or updates (started, updated, ended)")
	codec := fs.String("codec", producer.DefaultConfig().Codec, "the producer's wire codec: json or spanpipe-bin/v1")
	consumers := fs.Int("consumers", 1, "consumers (in-process group members)")
	sink := fs.String("sink", "duckdb", "duckdb, clickhouse (--dsn) or null (decode and batch, write nothing)")
	dsn := fs.String("dsn", os.Getenv("CLICKHOUSE_DSN"), "ClickHouse DSN for --sink clickhouse, e.g. clickhouse://default@127.0.0.1:9000/default; empty starts a local server with deploy/local/clickhouse.sh")
	strategy := fs.String("strategy", "insert-only", "pipeline strategy")
	partitions := fs.Int("partitions", 12, "partitions of the benchmark topic")
	latency := fs.Int("latency-seconds", 10, "length of the steady-rate latency phase (0 skips it)")
	out := fs.String("out", "bench.json", "write the result as JSON here (empty: don't)")
	dbDir := fs.String("db-dir", os.TempDir(), "directory for the DuckDB files")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the drain phase here (go tool pprof)")
	heapProfile := fs.String("heapprofile", "", "write a heap profile taken at half of the drain here (go tool pprof)")
	path := fs.String("config", os.Getenv("SPANPIPE_CONFIG"), "YAML config file of spanpipe consume whose pipeline and sink settings (sink.duckdb memory_limit and the like) and kafka fetch_max_bytes, fetch_max_partition_bytes and max_poll_records the bench's consumers take; SPANPIPE_PIPELINE_*, SPANPIPE_SINK_* and those SPANPIPE_KAFKA_* variables apply too (env SPANPIPE_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return exitError{2, err}
	}
	cfg, loadErr := app.Load(*path, os.Environ())
	var bad problems
	bad.add(loadErr)
	bad.add(cfg.Validate())
	// Every value is checked before a broker or server starts: --spans -5 used to
	// start Kafka, produce nothing and fail counting the spans stored.
	bad.check(*spans >= 1, "--spans must be >= 1, got %d", *spans)
	bad.check(*payload >= 0, "--payload must be >= 0, got %d", *payload)
	bad.check(*consumers >= 1, "--consumers must be >= 1, got %d", *consumers)
	bad.check(*partitions >= 1, "--partitions must be >= 1, got %d", *partitions)
	bad.check(*latency >= 0, "--latency-seconds must be >= 0 (0: no latency phase), got %d", *latency)
	bad.check(*lifecycle == "insert-only" || *lifecycle == "updates", "--lifecycle must be insert-only or updates, got %q", *lifecycle)
	bad.check(*sink == "duckdb" || *sink == "null" || *sink == "clickhouse", "--sink must be duckdb, clickhouse or null, got %q", *sink)
	bad.check(*codec == schema.CodecJSON || *codec == schema.CodecBinary, "--codec must be %s or %s, got %q", schema.CodecJSON, schema.CodecBinary, *codec)
	st, err := pipeline.ParseStrategy(*strategy)
	bad.add(err)
	var seeds []string // empty: start a local Kafka
	if *brokers != "" {
		seeds, err = parseBrokers(*brokers)
		bad.add(err)
	}
	if err := bad.err(); err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(os.Stderr, "bench: warning:", w)
	}
	var profile io.Writer
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		profile = f
	}
	var heap io.Writer
	if *heapProfile != "" {
		f, err := os.Create(*heapProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		heap = f
	}
	if len(seeds) == 0 {
		addr, stop, err := startLocalKafka(ctx)
		if err != nil {
			return err
		}
		defer stop()
		seeds = []string{addr}
	}
	res, err := bench.Run(ctx, bench.Options{
		Brokers: seeds, Spans: *spans, PayloadAvg: *payload, Lifecycle: *lifecycle, Codec: *codec,
		Consumers: *consumers, Sink: *sink, DSN: *dsn, Strategy: st, Partitions: *partitions, DBDir: *dbDir,
		LatencySeconds: *latency, Progress: os.Stderr, CPUProfile: profile, HeapProfile: heap, Config: &cfg,
	})
	if err != nil {
		return err
	}
	if err := res.WriteTable(stdout); err != nil {
		return err
	}
	if *out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// startLocalKafka runs deploy/local/kafka.sh from the enclosing checkout on a free port
// with a throw-away data dir.
func startLocalKafka(ctx context.Context) (addr string, stop func(), err error) {
	script, err := findUp("deploy/local/kafka.sh")
	if err != nil {
		return "", nil, fmt.Errorf("bench: no --brokers and %w; run from a spanpipe checkout or pass --brokers", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	data, err := os.MkdirTemp("", "spanpipe-bench-kafka-")
	if err != nil {
		return "", nil, err
	}
	fmt.Fprintf(os.Stderr, "bench: starting a local Apache Kafka on 127.0.0.1:%d (%s)\n", port, script)
	cmd := exec.CommandContext(ctx, "bash", script, "start", "--port", fmt.Sprint(port), "--data-dir", data)
	cmd.Stderr = os.Stderr
	outb, err := cmd.Output()
	if err != nil {
		os.RemoveAll(data)
		return "", nil, fmt.Errorf("bench: start local kafka: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(outb)), "\n")
	stop = func() {
		c := exec.Command("bash", script, "stop", "--data-dir", data)
		c.Stderr = os.Stderr
		_ = c.Run()
		os.RemoveAll(data)
	}
	return lines[len(lines)-1], stop, nil
}

func findUp(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s not found above the working directory", rel)
		}
		dir = parent
	}
}
