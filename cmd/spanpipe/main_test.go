package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevExitWhenDone runs the README's first command (smaller) in-process, twice on
// the same database: the second run counts its own spans, not the file's (it used to
// print "stored 3109 of 1153" and exit 1).
func TestDevExitWhenDone(t *testing.T) {
	var out bytes.Buffer
	stdout = &out
	t.Cleanup(func() { stdout = os.Stdout })
	db := filepath.Join(t.TempDir(), "dev.duckdb")
	var inDB int64
	for run := 1; run <= 2; run++ {
		out.Reset()
		// Port 0 and a taken-or-not metrics port: the command falls back to free ports.
		err := runDev(t.Context(), []string{"--demo", "100", "--exit-when-done", "--db", db, "--port", "0",
			"--metrics-addr", "127.0.0.1:0", "--ui", "", "--log-level", "warn"})
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var sum devSummary
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
			t.Fatalf("run %d: last line is not JSON: %q", run, lines[len(lines)-1])
		}
		if sum.Traces != 100 || sum.SpansEmitted == 0 || sum.SpansStored != int64(sum.SpansEmitted) || sum.Dropped != 0 || sum.DB != db {
			t.Fatalf("run %d: summary %+v: want 100 traces, stored == emitted > 0, nothing dropped", run, sum)
		}
		if inDB += sum.SpansStored; sum.SpansInDB != inDB {
			t.Fatalf("run %d: spans_in_db %d, want %d (both runs)", run, sum.SpansInDB, inDB)
		}
	}
}

func TestConsumeInvalidConfigExits2ListingEveryProblem(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(cfg, []byte("kafka:\n  brokers: []\n  group: \"\"\npipeline:\n  max_batch_size: -1\n  strategy: fastest\nsink:\n  type: postgres\n"), 0o644)
	err := runConsume(t.Context(), []string{"--config", cfg, "--check"})
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("err = %v, want exit status 2", err)
	}
	for _, want := range []string{"kafka.brokers", "kafka.group", "pipeline.max_batch_size", "pipeline.strategy", "sink.type"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

func TestConsumeUnknownKeyIsAnError(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "typo.yaml")
	os.WriteFile(cfg, []byte("kafka:\n  brokerz: [a:1]\n"), 0o644)
	err := runConsume(t.Context(), []string{"--config", cfg, "--check"})
	if err == nil || !strings.Contains(err.Error(), "brokerz") {
		t.Fatalf("err = %v, want an error naming the unknown key", err)
	}
}
