package clickhouse

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
)

// TestRenderSQLForChdb writes everything the sink sends to ClickHouse into the
// directory named by SPANPIPE_CHDB_OUT, for testdata/chdb_check.py to run on a real
// ClickHouse engine (chdb): the rendered DDL (single node, and cluster mode for a
// parse check), the statements of the migrator, the inserts of a scenario of batches
// as Native-format files with their settings (including the deduplication tokens),
// the read queries, and the results they must give. Skipped when the variable is
// unset; testdata/chdb_check.sh sets it.
func TestRenderSQLForChdb(t *testing.T) {
	out := os.Getenv("SPANPIPE_CHDB_OUT")
	if out == "" {
		t.Skip("SPANPIPE_CHDB_OUT not set; run sinks/clickhouse/testdata/chdb_check.sh")
	}
	cfg := DefaultConfig()
	cfg.MaxPartitionsPerInsert = 2
	cfg.TTL = TTLConfig{Spans: 30, Logs: 14}
	p := paramsOf(cfg)

	m := manifest{Database: p.DB, AppliedQuery: p.appliedQuery(), Columns: map[string][][2]string{}}
	boot, err := p.bootstrap()
	if err != nil {
		t.Fatal(err)
	}
	m.Bootstrap = toJSON(boot)
	migs, err := p.migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, mg := range migs {
		m.Migrations = append(m.Migrations, manifestMigration{Version: mg.version, Name: mg.name,
			Statements: toJSON(mg.statements), Record: p.recordMigration(mg)})
	}
	for _, tab := range allTables {
		for _, c := range tab.cols {
			m.Columns[tab.name] = append(m.Columns[tab.name], [2]string{c.name, c.typ})
		}
	}

	// TTL: what Migrate expects to find in engine_full, and the changes it makes when
	// the configuration becomes spans 7 days, logs none, metrics 90 days.
	m.TTL.Expect = map[string]string{}
	believed := map[string]string{}
	for _, tt := range p.ttlTargets() {
		if tt.days > 0 {
			m.TTL.Expect[tt.table] = "TTL " + ttlExpr(tt.column, tt.days)
			believed[tt.table] = "ReplacingMergeTree TTL " + ttlExpr(tt.column, tt.days) + " SETTINGS index_granularity = 8192"
		} else {
			m.TTL.None = append(m.TTL.None, tt.table)
			believed[tt.table] = "ReplacingMergeTree SETTINGS index_granularity = 8192"
		}
	}
	p2 := p
	p2.TTL = TTLConfig{Spans: 7, Metrics: 90}
	m.TTL.Changes = toJSON(p2.ttlChanges(believed))
	m.TTL.ExpectAfter = map[string]string{}
	for _, tt := range p2.ttlTargets() {
		if tt.days > 0 {
			m.TTL.ExpectAfter[tt.table] = "TTL " + ttlExpr(tt.column, tt.days)
		} else {
			m.TTL.NoneAfter = append(m.TTL.NoneAfter, tt.table)
		}
	}

	// Cluster mode and replication cannot run in chdb (no cluster, no Keeper); the
	// check parses them.
	for _, variant := range []struct {
		name       string
		cluster    string
		replicated bool
	}{{"cluster_replicated", "spanpipe_cluster", true}, {"cluster", "spanpipe_cluster", false}, {"replicated", "", true}} {
		c := cfg
		c.Cluster, c.Replicated = variant.cluster, variant.replicated
		cp := paramsOf(c)
		boot, err := cp.bootstrap()
		if err != nil {
			t.Fatal(err)
		}
		stmts := boot
		migs, err := cp.migrations()
		if err != nil {
			t.Fatal(err)
		}
		for _, mg := range migs {
			stmts = append(stmts, mg.statements...)
		}
		cp2 := cp
		cp2.TTL = p2.TTL
		stmts = append(stmts, cp2.ttlChanges(map[string]string{cp.local("spans"): "x TTL y", cp.local("logs"): "x TTL y"})...)
		for _, s := range stmts {
			m.ParseOnly = append(m.ParseOnly, jsonStatement{Name: variant.name + "/" + s.name, SQL: s.sql})
		}
	}

	// The scenario.
	now := time.Now().UTC().Round(0)
	w, rec := testWriter(t, cfg)
	step := func(label string, w *Writer, rec *recorder, b *pipeline.Batch) {
		t.Helper()
		rec.inserts = nil
		if err := w.Write(t.Context(), b); err != nil {
			t.Fatalf("step %s: %v", label, err)
		}
		st := manifestStep{Label: label}
		for i, ins := range rec.sent("") {
			data, err := ins.native()
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(out, fmt.Sprintf("%s_%02d_%s.native", label, i, ins.table.name))
			if err := os.WriteFile(file, data, 0o644); err != nil {
				t.Fatal(err)
			}
			settings := map[string]any{}
			for k, v := range ins.settings {
				settings[k] = v
			}
			st.Inserts = append(st.Inserts, manifestInsert{Table: ins.table.name, Columns: ins.table.colNames(),
				File: file, Settings: settings, Rows: ins.Rows()})
		}
		m.Steps = append(m.Steps, st)
	}

	b1 := fullBatch(now)
	for i := range 4 { // five days of logs: three inserts of at most two partitions
		b1.Logs = append(b1.Logs, logAt(fmt.Sprintf("late-%d", i), now.AddDate(0, 0, -i-1)))
	}
	step("b1", w, rec, b1)
	step("b1_retry", w, rec, b1)                             // the pipeline retries the same batch: same tokens
	rootEnds := span(traceA, "00000000000000a1", "", 3, now) // the root ends
	rootEnds.Event = schema.SpanEnded
	b2 := &pipeline.Batch{
		Strategy: pipeline.BatchWithUpdates,
		Spans: []*schema.Span{
			rootEnds,
			span(traceA, "00000000000000a2", "00000000000000a1", 2, now.Add(time.Second)), // older than stored
		},
		Sources: sources("spanpipe.spans", 0, 10, 19),
	}
	step("b2", w, rec, b2)
	b3 := *b2 // redelivered after a rebalance, in a batch with other offsets
	b3.Sources = sources("spanpipe.spans", 1, 0, 9)
	step("b3", w, rec, &b3)
	// A started snapshot of the root's version 3 arrives after its ended one (a
	// producer that sets one version for the whole span): the ended row stays, in
	// spans and in trace_roots, however the parts merge.
	late := span(traceA, "00000000000000a1", "", 3, now)
	late.Event, late.EndTime, late.Output, late.Name = schema.SpanStarted, time.Time{}, nil, "late started snapshot"
	step("b4_tie", w, rec, &pipeline.Batch{Spans: []*schema.Span{late}, Sources: sources("spanpipe.spans", 0, 20, 20)})
	// An older score and feedback of stored ids are replayed (another day, another
	// value), then a newer feedback arrives: each id stays one row, the latest.
	step("b5_replay", w, rec, &pipeline.Batch{
		Scores: []*schema.Score{{ScoreID: "s-1", Timestamp: now.Add(-26 * time.Hour), TraceID: traceA,
			SpanID: "00000000000000a1", ScorerID: "relevance", Score: 0.1}},
		Feedback: []*schema.Feedback{
			{FeedbackID: "f-1", Timestamp: now.Add(-26 * time.Hour), TraceID: traceA, FeedbackType: "thumbs", Value: jsontext.Value(`-1`)},
			{FeedbackID: "f-2", Timestamp: now.Add(time.Minute), TraceID: traceB, FeedbackType: "label", Value: jsontext.Value(`"right tool"`)},
		},
		Sources: sources("spanpipe.spans", 0, 21, 23),
	})
	m.Expect.Checks = []sqlCheck{
		{"SELECT score FROM " + p.qualified("scores") + " FINAL WHERE score_id = 's-1'", "0.8"},
		{"SELECT value FROM " + p.qualified("feedback") + " FINAL WHERE feedback_id = 'f-1'", "1"},
		{"SELECT value FROM " + p.qualified("feedback") + " FINAL WHERE feedback_id = 'f-2'", "right tool"},
	}
	acfg := cfg
	acfg.AsyncInsert = true
	aw, arec := testWriter(t, acfg)
	const traceC = "5b8efff798038103d269b633813fc60c"
	step("async", aw, arec, &pipeline.Batch{
		Spans:   []*schema.Span{span(traceC, "00000000000000c1", "", 3, now.Add(3*time.Second))},
		Sources: sources("spanpipe.spans", 2, 0, 0),
	})

	// Reads and their expected results.
	m.Reads.Count = map[string]string{}
	for _, tab := range readableTables {
		m.Reads.Count[tab] = p.countQuery(tab)
	}
	m.Reads.Trace, m.Reads.TraceCols = p.traceQuery(), traceCols()
	m.Reads.Recent = p.recentTracesQuery()
	m.Expect.Counts = map[string]int{"spans": 4, "trace_roots": 3, "logs": 6, "metrics": 2, "scores": 1, "feedback": 2}
	m.Expect.TraceID = traceA
	const f = "2006-01-02 15:04:05.000000000"
	m.Expect.Trace = []map[string]any{
		{"span_id": "00000000000000a1", "version": 3, "parent_span_id": "", "name": "00000000000000a1 v3",
			"started_at": now.Format(f), "ended_at": now.Add(3 * time.Second).Format(f), "output": `{"text":"sunny"}`},
		{"span_id": "00000000000000a2", "version": 3, "parent_span_id": "00000000000000a1", "name": "00000000000000a2 v3",
			"started_at": now.Add(time.Second).Format(f), "ended_at": now.Add(4 * time.Second).Format(f)},
	}
	m.Expect.Recent = []map[string]any{
		{"trace_id": traceC, "version": 3, "has_error": false},
		{"trace_id": traceB, "version": 3, "has_error": true},
		{"trace_id": traceA, "version": 3, "has_error": false, "ended_at": now.Add(3 * time.Second).Format(f)},
	}
	m.Expect.MetadataSearch = fmt.Sprintf("SELECT count() FROM %s FINAL WHERE metadata_search['customer'] = 'acme'", p.qualified("spans"))
	m.Expect.MetadataSearchCount = 4

	// Server errors of situations the writer meets: the engine must raise codes that
	// classify sorts as the case says.
	m.Errors.Permanent = map[string]string{}
	for code, name := range permanentCodes {
		m.Errors.Permanent[fmt.Sprint(code)] = name
	}
	m.Errors.Cases = []errorCase{
		{"unknown table", "INSERT INTO spanpipe.no_such_table (x) SELECT 1", true},
		{"unknown database", "INSERT INTO no_such_db.spans (trace_id) SELECT 'x'", true},
		{"unknown column", "INSERT INTO spanpipe.spans (no_such_column) SELECT 1", true},
		{"unparsable value", "INSERT INTO spanpipe.spans (trace_id, span_id, version, started_at) SELECT 'a', 'b', toUInt64('x'), now64(9)", true},
		{"too many partitions", "INSERT INTO spanpipe.logs (log_id, timestamp) SELECT toString(number), now64(9) - toIntervalDay(number) " +
			"FROM numbers(5) SETTINGS max_partitions_per_insert_block = 2, async_insert = 0", true},
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "manifest.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

type jsonStatement struct {
	Name   string `json:"name"`
	SQL    string `json:"sql"`
	Unless string `json:"unless,omitempty"`
}

func toJSON(s []statement) []jsonStatement {
	out := make([]jsonStatement, len(s))
	for i, x := range s {
		out[i] = jsonStatement{x.name, x.sql, x.unless}
	}
	return out
}

// sqlCheck is a query and the TSV text it must return.
type sqlCheck struct {
	SQL  string `json:"sql"`
	Want string `json:"want"`
}

type errorCase struct {
	Name      string `json:"name"`
	SQL       string `json:"sql"`
	Permanent bool   `json:"permanent"`
}

type manifestMigration struct {
	Version    int             `json:"version"`
	Name       string          `json:"name"`
	Statements []jsonStatement `json:"statements"`
	Record     string          `json:"record"`
}

type manifestInsert struct {
	Table    string         `json:"table"`
	Columns  string         `json:"columns"`
	File     string         `json:"file"`
	Settings map[string]any `json:"settings"`
	Rows     int            `json:"rows"`
}

type manifestStep struct {
	Label   string           `json:"label"`
	Inserts []manifestInsert `json:"inserts"`
}

type manifest struct {
	Database     string                 `json:"database"`
	Bootstrap    []jsonStatement        `json:"bootstrap"`
	Migrations   []manifestMigration    `json:"migrations"`
	AppliedQuery string                 `json:"applied_query"`
	Columns      map[string][][2]string `json:"columns"`
	TTL          struct {
		Expect      map[string]string `json:"expect"`
		None        []string          `json:"none"`
		Changes     []jsonStatement   `json:"changes"`
		ExpectAfter map[string]string `json:"expect_after"`
		NoneAfter   []string          `json:"none_after"`
	} `json:"ttl"`
	ParseOnly []jsonStatement `json:"parse_only"`
	Steps     []manifestStep  `json:"steps"`
	Reads     struct {
		Count     map[string]string `json:"count"`
		Trace     string            `json:"trace"`
		TraceCols []string          `json:"trace_cols"`
		Recent    string            `json:"recent"`
	} `json:"reads"`
	Expect struct {
		Counts              map[string]int   `json:"counts"`
		TraceID             string           `json:"trace_id"`
		Trace               []map[string]any `json:"trace"`
		Recent              []map[string]any `json:"recent"`
		MetadataSearch      string           `json:"metadata_search"`
		MetadataSearchCount int              `json:"metadata_search_count"`
		Checks              []sqlCheck       `json:"checks"`
	} `json:"expect"`
	Errors struct {
		Permanent map[string]string `json:"permanent_codes"`
		Cases     []errorCase       `json:"cases"`
	} `json:"errors"`
}
