package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/internal/kafkatest"
)

// TestConsumeBadBrokerFailsNamingIt: consume against brokers nobody can reach names
// the reason and exits 1 after --connect-timeout; it used to run forever with only
// the client's WARN lines.
func TestConsumeBadBrokerFailsNamingIt(t *testing.T) {
	p := start(t, "consume", "--brokers", closedPort(t), "--db", filepath.Join(t.TempDir(), "c.duckdb"),
		"--metrics-addr", "127.0.0.1:0", "--connect-timeout", "2s")
	if code := p.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("exit status %d, want 1; stderr:\n%s", code, p.stderrText())
	}
	if out := p.stderrText(); !strings.Contains(out, "no Kafka broker reachable") || !strings.Contains(out, "connection refused") {
		t.Fatalf("stderr does not name the problem:\n%s", out)
	}
}

// TestConsumeMissingTopicWarnsAndWaits: a consumer whose topic does not exist yet
// says so at WARN and keeps waiting (a producer may create it), until SIGTERM.
func TestConsumeMissingTopicWarnsAndWaits(t *testing.T) {
	t.Setenv("SPANPIPE_TOPICS_CREATE", "false") // else consume creates it
	c := kafkatest.Cluster(t, 1, "spanpipe.drops")
	p := start(t, "consume", "--brokers", c.ListenAddrs()[0], "--db", filepath.Join(t.TempDir(), "c.duckdb"),
		"--metrics-addr", "127.0.0.1:0", "--connect-timeout", "2s")
	warn := regexp.MustCompile(`level=WARN .*topic does not exist; waiting for it.*spanpipe\.spans`)
	kafkatest.Eventually(t, 30*time.Second, "a WARN naming the missing topic", func() bool { return p.stderrMatch(warn) != "" })
	kafkatest.Eventually(t, 30*time.Second, "the consumer running", func() bool { return p.stderrMatch(regexp.MustCompile(`msg=pipeline `)) != "" })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0; stderr:\n%s", code, p.stderrText())
	}
}

// TestConsumeDerivesGoRuntimeFromTheSink: with an embedded DuckDB, consume fetches
// 2 MiB and collects at 50% heap growth, and says so at start; GOGC still wins.
func TestConsumeDerivesGoRuntimeFromTheSink(t *testing.T) {
	for _, tc := range []struct {
		name, gogc string
		want       []string
	}{
		{"derived", "", []string{`msg="Go runtime" memory_limit_bytes=\d+ gc_percent=50`, `msg=pipeline .*fetch_max_bytes=2097152`}},
		{"GOGC wins", "80", []string{`Go GC target from GOGC; pipeline.go_gc_percent ignored`, `msg="Go runtime" .*gc_percent=80`}},
		{"GOGC off", "off", []string{`Go GC target from GOGC`, `msg="Go runtime" .*gc_percent=-1`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.gogc)
			c := kafkatest.Cluster(t, 1, "spanpipe.spans", "spanpipe.drops")
			p := start(t, "consume", "--brokers", c.ListenAddrs()[0], "--db", filepath.Join(t.TempDir(), "c.duckdb"),
				"--metrics-addr", "127.0.0.1:0")
			for _, w := range tc.want {
				re := regexp.MustCompile(w)
				kafkatest.Eventually(t, 30*time.Second, "a start line matching "+w, func() bool { return p.stderrMatch(re) != "" })
			}
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, 30*time.Second); code != 0 {
				t.Fatalf("exit status %d after SIGTERM, want 0; stderr:\n%s", code, p.stderrText())
			}
		})
	}
}
