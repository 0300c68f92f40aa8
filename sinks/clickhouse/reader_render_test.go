package clickhouse

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/spanpipe/spanpipe/query"
)

// readerCase is one statement of [Reader] with its parameters and the rows it must
// give on the data of TestRenderSQLForChdb's scenario (the first len(row) columns of
// each row, as text; in order).
type readerCase struct {
	Name   string        `json:"name"`
	SQL    string        `json:"sql"`
	Params ch.Parameters `json:"params"`
	Expect [][]string    `json:"expect"`
}

// TestRenderReaderSQLForChdb writes the reader's statements to
// $SPANPIPE_CHDB_OUT/reader.json for testdata/chdb_reader.py, which runs them on the
// data the writer's scenario inserted.
func TestRenderReaderSQLForChdb(t *testing.T) {
	out := os.Getenv("SPANPIPE_CHDB_OUT")
	if out == "" {
		t.Skip("SPANPIPE_CHDB_OUT not set; run sinks/clickhouse/testdata/chdb_check.sh")
	}
	const traceC = "5b8efff798038103d269b633813fc60c"
	p := paramsOf(DefaultConfig())
	now := time.Now().UTC()
	all := [][]string{{traceC}, {traceB}, {traceA}}
	var cases []readerCase
	list := func(name string, f query.TraceFilter, want [][]string) {
		if err := f.Validate(); err != nil {
			t.Fatal(err)
		}
		sql, params := p.listSQL(f)
		cases = append(cases, readerCase{"list " + name, sql, params, want})
	}
	list("all", query.TraceFilter{}, all)
	list("limit 1 reads one more", query.TraceFilter{Limit: 1}, [][]string{{traceC}, {traceB}})
	list("error", query.TraceFilter{Status: query.StatusError}, [][]string{{traceB}})
	list("ok", query.TraceFilter{Status: query.StatusOK}, [][]string{{traceC}, {traceA}})
	list("running", query.TraceFilter{Status: query.StatusRunning}, nil)
	list("search", query.TraceFilter{Search: "A2 V3"}, [][]string{{traceA}})
	list("context", query.TraceFilter{UserID: "user-1", ThreadID: "thread-1", EntityType: "agent", SpanType: "agent_run",
		Metadata: []query.KV{{Key: "customer", Value: "acme"}}, From: now.Add(-time.Hour), To: now.Add(time.Hour)}, all)
	list("no match", query.TraceFilter{Service: "nope", Tags: []string{"x"}}, nil)
	list("cursor", query.TraceFilter{Cursor: &query.Cursor{Start: now.Add(time.Hour), TraceID: "f"}}, all)

	sql, params := p.countsSQL([]string{traceA, traceB, traceC})
	cases = append(cases, readerCase{"counts", sql + " ORDER BY trace_id", params,
		[][]string{{traceA, "2", "0"}, {traceB, "1", "1"}, {traceC, "1", "0"}}})
	sql, params = p.traceSpansSQL(traceA)
	cases = append(cases, readerCase{"trace spans", sql, params, [][]string{{"00000000000000a1"}, {"00000000000000a2"}}})
	sql, params = p.spanSQL(traceA, "00000000000000a2")
	cases = append(cases, readerCase{"span", sql, params, [][]string{{traceA, "00000000000000a2", "3"}}})

	q := query.StatsQuery{From: now.Add(-time.Hour), To: now.Add(time.Hour)}
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	series, durations, models, params := p.statsSQL(q)
	// The scenario's spans start within seconds: one bucket holds them all.
	cases = append(cases,
		readerCase{"stats series", "SELECT sum(c1), sum(c2), sum(c3), sum(c4) FROM (" +
			"SELECT b, `countIf(equals(parent_span_id, ''))` AS c1, `count()` AS c2, `countIf(notEquals(error, ''))` AS c3, " +
			"`uniqExactIf(trace_id, notEquals(error, ''))` AS c4 FROM (" + series + "))", params, [][]string{{"3", "4", "1", "1"}}},
		readerCase{"stats durations", durations, params, [][]string{{"agent_run", "Weather agent", "3"}}},
		readerCase{"stats models", models, params, [][]string{{"gpt-4o-mini", "\\N", "\\N", "\\N", "0.0123"}}},
	)
	b, err := json.MarshalIndent(cases, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "reader.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
