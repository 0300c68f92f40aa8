package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

func captureStdout(t *testing.T) *bytes.Buffer {
	t.Helper()
	var out bytes.Buffer
	stdout = &out
	t.Cleanup(func() { stdout = os.Stdout })
	return &out
}

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func traceSpans(trace string) []*schema.Span {
	sp := func(id, parent, name string, typ schema.SpanType, start, dur time.Duration, v uint64) *schema.Span {
		s := &schema.Span{TraceID: trace, SpanID: id, ParentSpanID: parent, Name: name, Type: typ,
			StartTime: t0.Add(start), Version: v, IsRootSpan: parent == ""}
		if dur > 0 {
			s.EndTime = s.StartTime.Add(dur)
		}
		return s
	}
	failed := sp("0000000000000004", "0000000000000002", "search", schema.ToolCall, 300*time.Millisecond, 50*time.Millisecond, 3)
	failed.ErrorInfo = &schema.ErrorInfo{Message: "upstream\ntimeout", Name: "TimeoutError"}
	return []*schema.Span{
		sp("0000000000000001", "", "support-agent", schema.AgentRun, 0, 1500*time.Millisecond, 3),
		sp("0000000000000003", "0000000000000001", "answer", schema.ModelGeneration, time.Second, 0, 2), // running
		sp("0000000000000002", "0000000000000001", "plan", schema.ModelGeneration, 100*time.Millisecond, 800*time.Millisecond, 3),
		failed,
		sp("0000000000000005", "00000000000000ff", "late child", schema.SpanType("custom_step"), 1200*time.Millisecond, 2*time.Millisecond, 3),
	}
}

const wantTree = `trace 4bf92f3577b34da6a3ce929d0e0e4736: 5 spans, 1.5s, 1 with an error, 1 running
support-agent [agent_run] 1.5s ok
├─ plan [model_generation] 800ms ok
│  └─ search [tool_call] 50ms ERROR: upstream timeout
└─ answer [model_generation] - running
late child [custom_step] 2ms ok  (parent 00000000000000ff not in trace)
`

func TestPrintTrace(t *testing.T) {
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	var out bytes.Buffer
	printTrace(&out, trace, traceSpans(trace))
	if out.String() != wantTree {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), wantTree)
	}
}

func TestPrintTraceSurvivesParentCycle(t *testing.T) {
	spans := []*schema.Span{
		{SpanID: "a", ParentSpanID: "b", Name: "a", Type: schema.Generic, StartTime: t0},
		{SpanID: "b", ParentSpanID: "a", Name: "b", Type: schema.Generic, StartTime: t0},
	}
	var out bytes.Buffer
	printTrace(&out, "x", spans)
	if n := strings.Count(out.String(), "\n"); n != 3 {
		t.Errorf("got %d lines, want a header and each span once:\n%s", n, out.String())
	}
}

// TestTraceFromDuckDB stores a trace (two snapshots of one span included) with the
// DuckDB sink and prints it with `spanpipe trace <id> --db FILE`.
func TestTraceFromDuckDB(t *testing.T) {
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	older := *traceSpans(trace)[2]
	older.Version, older.EndTime, older.Name = 1, time.Time{}, "plan (started)"
	db := storeSpans(t, traceSpans(trace), []*schema.Span{&older}) // an older snapshot arriving late

	out := captureStdout(t)
	if err := runTrace(t.Context(), []string{trace, "--db", db}); err != nil {
		t.Fatal(err)
	}
	if out.String() != wantTree {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), wantTree)
	}

	err := runTrace(t.Context(), []string{"--db", db, "00000000000000000000000000000000"})
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown trace: got %v, want exit status 1, not found", err)
	}
}

// storeSpans writes each batch of spans with the DuckDB sink into a new file and
// returns its path.
func storeSpans(t *testing.T, batches ...[]*schema.Span) string {
	t.Helper()
	cfg := duckdb.DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "t.duckdb")
	w, err := duckdb.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, spans := range batches {
		if err := w.Write(t.Context(), &pipeline.Batch{Strategy: pipeline.BatchWithUpdates, Spans: spans}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return cfg.Path
}

func TestTraceUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no id", []string{"--db", "x.duckdb"}, "exactly one trace id"},
		{"two ids", []string{"a", "b", "--db", "x.duckdb"}, "exactly one trace id"},
		{"two sinks", []string{"a", "--db", "x.duckdb", "--dsn", "clickhouse://h:9000"}, "give one"},
		{"bad dsn", []string{"a", "--dsn", "http://h:8123"}, "native protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runTrace(t.Context(), tt.args)
			var ee exitError
			if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("runTrace(%q): got %v, want exit status 2 mentioning %q", tt.args, err, tt.want)
			}
		})
	}
}

// TestTraceBinaryOutput runs `spanpipe trace` as a user does: ids in any case, an
// invalid id named invalid, singular counts, and stored names and errors that carry
// terminal escape sequences printed escaped.
func TestTraceBinaryOutput(t *testing.T) {
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	evil := &schema.Span{TraceID: trace, SpanID: "0000000000000001", Name: "agent\x1b]0;pwned\x07 \x1b[2J\u202eevil",
		Type: schema.AgentRun, StartTime: t0, EndTime: t0.Add(time.Second), IsRootSpan: true, Version: 3,
		ErrorInfo: &schema.ErrorInfo{Message: "bad\x1b[31m red\r\nline " + strings.Repeat("é", 130)}}
	db := storeSpans(t, []*schema.Span{evil})
	run := func(args ...string) (string, string, int) {
		return spanpipe(t, nil, append([]string{"trace"}, args...)...)
	}

	out, stderr, code := run(trace, "--db", db)
	if code != 0 {
		t.Fatalf("trace: exit %d: %s", code, stderr)
	}
	if upper, stderr, code := run(strings.ToUpper(trace), "--db", db); code != 0 || upper != out {
		t.Errorf("trace with the id in upper case: exit %d, %s%s; want the same trace", code, stderr, upper)
	}
	wantHead := "trace " + trace + ": 1 span, 1s, 1 with an error\n"
	if !strings.HasPrefix(out, wantHead) {
		t.Errorf("header: got %q, want %q", strings.SplitAfter(out, "\n")[0], wantHead)
	}
	if strings.ContainsFunc(out, func(r rune) bool { return r < 0x20 && r != '\n' || r == 0x7f || r == 0x202e }) {
		t.Errorf("output carries raw control characters: %q", out)
	}
	for _, want := range []string{`agent\x1b]0;pwned\x07 \x1b[2J\u202eevil [agent_run]`, `ERROR: bad\x1b[31m red line éé`, "é..."} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !utf8.ValidString(out) {
		t.Errorf("output is not valid UTF-8 (a message cut inside a character): %q", out)
	}

	for _, id := range []string{"not-a-trace-id", strings.Repeat("a", 33)} {
		_, stderr, code = run(id, "--db", db)
		if code != 2 || !strings.Contains(stderr, "invalid trace id") {
			t.Errorf("trace %s: exit %d, stderr %q; want 2 and 'invalid trace id'", id, code, stderr)
		}
	}
	_, stderr, code = run(strings.Repeat("f", 32), "--db", db)
	if code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("unknown trace: exit %d, stderr %q; want 1 and 'not found'", code, stderr)
	}
}
