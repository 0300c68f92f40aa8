package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// spanpipe runs the built binary with args, without the caller's SPANPIPE_*
// variables and with env added, and returns its stdout, stderr and exit status.
func spanpipe(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	// A command that should have exited but runs on (old code: `dev --partitions -3`
	// started a broker) fails the test instead of hanging it.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SPANPIPE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("spanpipe %v: %v", args, err)
	}
	return out.String(), errb.String(), 0
}

// TestNonsenseFlagsExit2: values that cannot mean anything are refused before
// anything starts, with exit status 2 and a message naming the flag (they used to be
// accepted: --traces -5 published nothing and exited 0, --partitions -3 reached the
// broker, --brokers "" dialled nothing, --check passed a DuckDB file in a directory
// that does not exist, bench --spans -5 started Kafka and failed after producing
// nothing).
func TestNonsenseFlagsExit2(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"produce", "--traces", "-5"}, []string{"--traces must be >= 1, got -5"}},
		{[]string{"produce", "--min-payload", "5000", "--max-payload", "10"}, []string{"--min-payload (5000) must be between 0 and --max-payload (10)"}},
		{[]string{"produce", "--brokers", "", "--traces", "0"}, []string{"--brokers must list at least one host:port", "--traces must be >= 1", "(2 problems)"}},
		{[]string{"produce", "--brokers", "localhost"}, []string{`--brokers: "localhost" is not host:port`}},
		{[]string{"produce", "--codec", "protobuf"}, []string{`--codec must be json or spanpipe-bin/v1, got "protobuf"`}},
		{[]string{"produce", "--log-level", "loud"}, []string{"--log-level must be debug, info, warn or error"}},
		{[]string{"dev", "--partitions", "-3", "--demo", "-1", "--port", "70000"}, []string{"--partitions must be >= 1, got -3", "--demo must be >= 0", "--port must be 0 to 65535", "(3 problems)"}},
		{[]string{"dev", "--log-format", "xml"}, []string{"--log-format must be text or json"}},
		{[]string{"consume", "--brokers", "", "--check"}, []string{"--brokers must list at least one host:port"}},
		{[]string{"consume", "--topic", ",", "--check"}, []string{"--topic must name at least one topic"}},
		{[]string{"consume", "--connect-timeout", "-1s", "--check"}, []string{"--connect-timeout must be >= 0 (0: wait forever), got -1s"}},
		{[]string{"healthcheck", "--timeout", "-1s"}, []string{"--timeout must be > 0, got -1s"}},
		{[]string{"consume", "--check", "--db", "/nonexistent-spanpipe-dir/x.duckdb"}, []string{"sink.duckdb.path /nonexistent-spanpipe-dir/x.duckdb: directory /nonexistent-spanpipe-dir: no such file or directory"}},
		{[]string{"drops", "tail", "--brokers", "", "--exit-after", "-1"}, []string{"--brokers must list", "--exit-after must be >= 0"}},
		{[]string{"alert", "--brokers", "", "--check"}, []string{"--brokers must list"}},
		{[]string{"replay", "--brokers", " , "}, []string{"--brokers must list"}},
		{[]string{"topics", "create", "--partitions", "-3"}, []string{"--partitions must be >= 1, got -3"}},
		{[]string{"offsets", "skip", "--partition", "0"}, []string{"--to-offset must be >= 0"}},
		{[]string{"serve", "--db", "x.duckdb", "--log-level", "chatty"}, []string{"--log-level must be debug, info, warn or error"}},
		{[]string{"bench", "--config", "/nonexistent-spanpipe-dir/c.yaml"}, []string{"config file: open /nonexistent-spanpipe-dir/c.yaml"}},
		{[]string{"bench", "--spans", "-5", "--payload", "-1", "--consumers", "0", "--partitions", "0", "--latency-seconds", "-1"},
			[]string{"--spans must be >= 1, got -5", "--payload must be >= 0, got -1", "--consumers must be >= 1, got 0", "--partitions must be >= 1, got 0", "--latency-seconds must be >= 0", "(5 problems)"}},
		{[]string{"bench", "--sink", "mysql", "--lifecycle", "twice", "--codec", "protobuf", "--strategy", "fast", "--brokers", "localhost"},
			[]string{`--sink must be duckdb, clickhouse or null, got "mysql"`, `--lifecycle must be insert-only or updates, got "twice"`,
				`--codec must be json or spanpipe-bin/v1, got "protobuf"`, `unknown strategy "fast"`, `--brokers: "localhost" is not host:port`, "(5 problems)"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, stderr, code := spanpipe(t, nil, tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr)
			}
			if !strings.HasPrefix(stderr, "spanpipe: invalid config (") {
				t.Errorf("stderr does not start with the one heading: %q", stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestConsumeListsEveryProblemAtOnce: the file, the environment and the flags are
// checked together and reported under one heading, each problem naming its key
// (a file problem used to hide the rest, and spoke Go: "field grup not found in type
// consumer.Config").
func TestConsumeListsEveryProblemAtOnce(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("kafka:\n  grup: g\n  brokers: 127.0.0.1:9092\npipeline:\n  max_batch_wait: 45\n  max_batch_bytes: 16MB\n"), 0o644)
	_, stderr, code := spanpipe(t, []string{"SPANPIPE_KAFKA_SESSION_TIMEOUT=forever", "SPANPIPE_PORT=tcp://10.0.0.1:9464"},
		"consume", "--config", cfg, "--check", "--brokers", "", "--log-level", "loud")
	if code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, stderr)
	}
	for _, want := range []string{
		"spanpipe: invalid config (5 problems):\n",
		cfg + ":2: kafka.grup: unknown key",
		cfg + ":5: pipeline.max_batch_wait: 45 has no unit",
		`SPANPIPE_KAFKA_SESSION_TIMEOUT: "forever" is not a duration`,
		"--brokers must list at least one host:port",
		`log.level must be debug, info, warn or error, got "loud"`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "SPANPIPE_PORT") || strings.Contains(stderr, "consumer.Config") {
		t.Errorf("stderr mentions what is no problem:\n%s", stderr)
	}

	// The same file with its problems fixed, and a byte size with a unit: ok.
	os.WriteFile(cfg, []byte("kafka:\n  brokers: 127.0.0.1:9092\npipeline:\n  max_batch_bytes: 16MB\nsink:\n  duckdb:\n    path: "+filepath.Join(t.TempDir(), "x.duckdb")+"\n"), 0o644)
	out, stderr, code := spanpipe(t, nil, "consume", "--config", cfg, "--check")
	if code != 0 || !strings.Contains(out, "config ok") {
		t.Errorf("valid config: exit %d, %s%s", code, out, stderr)
	}
}

// TestDeprecatedFlagSpellings: the drop topic is --drop-topic and the dead-letter
// topic --dead-letter-topic everywhere; the old spellings still work and say so.
func TestDeprecatedFlagSpellings(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"replay", "--deadletter-topic", "dl", "--brokers", ""}, 2, "spanpipe: --deadletter-topic is deprecated; use --dead-letter-topic"},
		{[]string{"alert", "--topic", "x", "--webhook", "http://127.0.0.1:1/hook", "--check"}, 0, "spanpipe: --topic is deprecated; use --drop-topic"},
		{[]string{"drops", "tail", "--topic", "x", "--exit-after", "-1"}, 2, "spanpipe: --topic is deprecated; use --drop-topic"},
	}
	for _, tt := range tests {
		_, stderr, code := spanpipe(t, nil, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("spanpipe %q: exit %d, stderr %q; want %d and %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
}
