package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMigrateUsageErrors(t *testing.T) {
	duck := filepath.Join(t.TempDir(), "duck.yaml")
	os.WriteFile(duck, []byte("sink:\n  type: duckdb\n"), 0o644)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("sink:\n  type: clickhouse\n  clickhouse:\n    database: a-b\n    ttl: {spans: -1}\n"), 0o644)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"duckdb sink", []string{"--config", duck}, []string{"applies to clickhouse"}},
		{"invalid clickhouse block", []string{"--config", bad}, []string{`database "a-b"`, "ttl.spans"}},
		{"bad dsn", []string{"--dsn", "clickhouse://h:9000?foo=1"}, []string{`"foo" is not supported`}},
		{"stray argument", []string{"now"}, []string{"unexpected argument"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runMigrate(t.Context(), tt.args)
			var ee exitError
			if !errors.As(err, &ee) || ee.code != 2 {
				t.Fatalf("runMigrate(%q): got %v, want exit status 2", tt.args, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("runMigrate(%q): got %v, want it to mention %q", tt.args, err, w)
				}
			}
		})
	}
}

// TestMigrateUnreachableServerNamesIt: with nothing listening, migrate fails with an
// error naming the database and the address, not a usage error.
func TestMigrateUnreachableServerNamesIt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	err = runMigrate(t.Context(), []string{"--dsn", "clickhouse://" + addr + "/traces?dial_timeout=2s"})
	var ee exitError
	if err == nil || errors.As(err, &ee) || !strings.Contains(err.Error(), "database traces on "+addr) {
		t.Fatalf("got %v, want a connection error naming database traces on %s", err, addr)
	}
}

func TestConsumeCheckClickHouse(t *testing.T) {
	for _, f := range []string{"spanpipe.yaml", "cluster.yaml"} {
		out := captureStdout(t)
		if err := runConsume(t.Context(), []string{"--config", filepath.Join("..", "..", "deploy", "clickhouse", f), "--check"}); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !strings.Contains(out.String(), "config ok (sink clickhouse)") {
			t.Errorf("%s: got %q", f, out.String())
		}
	}
	out := captureStdout(t)
	if err := runConsume(t.Context(), []string{"--brokers", "k:9092", "--dsn", "clickhouse://w:pw@ch:9000/traces", "--check"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "sink clickhouse") {
		t.Errorf("--dsn did not select the clickhouse sink: %q", out.String())
	}
	err := runConsume(t.Context(), []string{"--brokers", "k:9092", "--dsn", "clickhouse://ch:9000?async=1", "--check"})
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "sink.clickhouse.dsn parameter") {
		t.Errorf("bad DSN: got %v, want exit status 2 naming sink.clickhouse", err)
	}
}
