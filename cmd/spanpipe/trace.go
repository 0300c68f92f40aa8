package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/query"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/clickhouse"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

// traceReader is a store's query side and what closes it.
type traceReader interface {
	query.Reader
	Close() error
}

// runTrace prints one trace as an indented tree.
func runTrace(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	path := fs.String("config", os.Getenv("SPANPIPE_CONFIG"), "YAML config file; reads the sink it selects (env SPANPIPE_CONFIG)")
	db := fs.String("db", "", "read this DuckDB file (not while a consumer has it open)")
	dsn := fs.String("dsn", "", "read this ClickHouse DSN clickhouse://user:pass@host:9000/db")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: spanpipe trace <trace-id> [--config FILE | --db FILE | --dsn DSN]")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitError{2, err}
	}
	if len(pos) != 1 || pos[0] == "" {
		fs.Usage()
		return exitError{2, errors.New("trace: want exactly one trace id")}
	}
	traceID, err := query.TraceID(pos[0])
	if err != nil {
		return exitError{2, fmt.Errorf("trace: %s", strings.TrimPrefix(err.Error(), query.ErrInvalid.Error()+": "))}
	}
	cfg, err := app.Load(*path, os.Environ())
	if err != nil {
		return exitError{2, app.ConfigError(err)}
	}
	if err := applySinkFlags(&cfg, *db, *dsn); err != nil {
		return exitError{2, err}
	}
	r, err := openTraceReader(ctx, cfg.Sink)
	if err != nil {
		return err
	}
	defer r.Close()
	spans, err := r.TraceSpans(ctx, traceID)
	if err != nil {
		return err
	}
	if len(spans) == 0 {
		return exitError{1, fmt.Errorf("trace %s: not found", traceID)}
	}
	printTrace(stdout, traceID, spans)
	return nil
}

// parseInterspersed parses flags that may come before or after the positional
// arguments (`trace <id> --config F`), which flag.Parse alone stops at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// openTraceReader opens the store cfg selects for reading only: ClickHouse without
// migrating, a DuckDB file read-only.
func openTraceReader(ctx context.Context, cfg app.SinkConfig) (traceReader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, exitError{2, app.ConfigError(err)}
	}
	switch cfg.Type {
	case app.SinkClickHouse:
		ch := cfg.ClickHouse
		ch.AutoMigrate = false // a reader never changes the schema
		w, err := clickhouse.Open(ctx, ch)
		if err != nil {
			return nil, err
		}
		return closer{w.Reader(), w.Close}, nil
	case app.SinkDuckDB:
		db, err := duckdb.OpenReadOnly(ctx, cfg.DuckDB.Path)
		if err != nil {
			return nil, err
		}
		return closer{duckdb.NewReader(db), db.Close}, nil
	}
	return nil, exitError{2, fmt.Errorf("sink.type must be duckdb or clickhouse, got %q", cfg.Type)}
}

type closer struct {
	query.Reader
	close func() error
}

func (c closer) Close() error { return c.close() }

// printTrace writes the spans as a tree (query.BuildTrace's order: children under
// their parent by start time). A span whose parent is not in the trace (not stored
// yet, or outside it) is printed at the top level with a note.
func printTrace(w io.Writer, traceID string, spans []*schema.Span) {
	t := query.BuildTrace(traceID, spans)
	last, running := t.StartedAt, 0
	for _, n := range t.Spans {
		last = maxTime(last, n.StartedAt)
		if n.EndedAt != nil {
			last = maxTime(last, *n.EndedAt)
		} else if !n.IsEvent {
			running++
		}
	}
	fmt.Fprintf(w, "trace %s: %s, %s", traceID, plural(len(t.Spans), "span", "spans"), fmtDuration(last.Sub(t.StartedAt)))
	if t.ErrorCount > 0 {
		fmt.Fprintf(w, ", %s", plural(t.ErrorCount, "with an error", "with errors"))
	}
	if running > 0 {
		fmt.Fprintf(w, ", %d running", running)
	}
	fmt.Fprintln(w)

	// isLast: no later sibling, i.e. the next span at this depth or above is above.
	isLast := func(i int) bool {
		for _, n := range t.Spans[i+1:] {
			if n.Depth <= t.Spans[i].Depth {
				return n.Depth < t.Spans[i].Depth
			}
		}
		return true
	}
	var more []bool // more[d]: the ancestor at depth d has later siblings (draw │)
	for i, n := range t.Spans {
		lastChild := isLast(i)
		var prefix strings.Builder
		for d := 1; d < n.Depth; d++ {
			prefix.WriteString(map[bool]string{true: "│  ", false: "   "}[more[d]])
		}
		if n.Depth > 0 {
			prefix.WriteString(map[bool]string{true: "└─ ", false: "├─ "}[lastChild])
		}
		more = append(more[:n.Depth], !lastChild)
		note := ""
		if n.Orphan {
			note = "  (parent " + escape(n.ParentSpanID) + " not in trace)"
		}
		fmt.Fprintf(w, "%s%s [%s] %s %s%s\n", prefix.String(), escape(n.Name), escape(n.SpanType), spanDuration(n), spanStatus(n), note)
	}
}

func spanDuration(n query.SpanNode) string {
	switch {
	case n.IsEvent:
		return "event"
	case n.EndedAt == nil:
		return "-"
	}
	return fmtDuration(n.EndedAt.Sub(n.StartedAt))
}

func spanStatus(n query.SpanNode) string {
	if n.Status != query.StatusError {
		return string(n.Status)
	}
	msg := strings.Join(strings.Fields(n.Error), " ")
	if r := []rune(msg); len(r) > 120 {
		msg = string(r[:117]) + "..."
	}
	return "ERROR: " + escape(msg)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// escape makes stored text safe to print on a terminal: control characters (escape
// sequences could rewrite the screen or the title), bidirectional overrides (which
// reorder what is shown) and invalid UTF-8 are printed as Go escapes.
func escape(s string) string {
	unsafe := func(r rune) bool {
		return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x200e || r == 0x200f ||
			(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == utf8.RuneError
	}
	if !strings.ContainsFunc(s, unsafe) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				fmt.Fprintf(&b, `\x%02x`, s[i])
			} else {
				b.WriteString(`\ufffd`)
			}
		case unsafe(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafe(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// fmtDuration rounds to a readable precision: 850µs, 12.3ms, 1.25s, 2m3s.
func fmtDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + fmtDuration(-d)
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
