package clickhouse

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func renderAll(t *testing.T, cfg Config) map[string]string {
	t.Helper()
	p := paramsOf(cfg)
	boot, err := p.bootstrap()
	if err != nil {
		t.Fatal(err)
	}
	migs, err := p.migrations()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range boot {
		out[s.name] = s.sql
	}
	for _, m := range migs {
		for _, s := range m.statements {
			if _, dup := out[s.name]; dup {
				t.Fatalf("statement name %s used twice", s.name)
			}
			out[s.name] = s.sql
		}
	}
	return out
}

func mustContain(t *testing.T, name, sql string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(sql, p) {
			t.Errorf("%s: missing %q in:\n%s", name, p, sql)
		}
	}
}

func mustNotContain(t *testing.T, name, sql string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if strings.Contains(sql, p) {
			t.Errorf("%s: unexpected %q in:\n%s", name, p, sql)
		}
	}
}

func TestDDLSingleNode(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TTL.Spans = 30
	stmts := renderAll(t, cfg)
	wantNames := []string{"create_database", "create_migrations_table", "create_spans", "create_trace_roots",
		"create_trace_roots_mv", "create_logs", "create_metrics", "create_scores", "create_feedback",
		// 0002_span_rank
		"add_rank_spans", "create_spans_swap", "exchange_spans", "add_rank_trace_roots", "create_trace_roots_swap",
		"exchange_trace_roots", "create_trace_roots_rank_mv", "drop_trace_roots_mv", "copy_spans", "drop_spans_swap",
		"drop_trace_roots_swap",
		// 0003_newest_score_feedback
		"create_scores_swap", "exchange_scores", "copy_scores", "drop_scores_swap",
		"create_feedback_swap", "exchange_feedback", "copy_feedback", "drop_feedback_swap",
		// 0004_metadata_search_default
		"metadata_search_default"}
	if len(stmts) != len(wantNames) {
		t.Errorf("got %d statements, want %d", len(stmts), len(wantNames))
	}
	for _, n := range wantNames {
		if _, ok := stmts[n]; !ok {
			t.Errorf("missing statement %s", n)
		}
	}
	for name, sql := range stmts {
		mustNotContain(t, name, sql, "ON CLUSTER", "Replicated", "_local", "{{", "--", ";")
	}
	mustContain(t, "create_database", stmts["create_database"], "CREATE DATABASE IF NOT EXISTS spanpipe")
	mustContain(t, "create_spans", stmts["create_spans"],
		"CREATE TABLE IF NOT EXISTS spanpipe.spans\n",
		"ENGINE = ReplacingMergeTree(version)\nPARTITION BY toDate(started_at)\nORDER BY (trace_id, span_id)\n",
		"TTL toDate(started_at) + toIntervalDay(30)\n",
		"SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000",
		"started_at               DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1))",
		"input                    String CODEC(ZSTD(3))",
		"metadata_search          Map(LowCardinality(String), String)",
	)
	mustContain(t, "create_trace_roots", stmts["create_trace_roots"],
		"ORDER BY (started_at, trace_id, span_id)", "TTL toDate(started_at) + toIntervalDay(30)",
		"INDEX idx_trace_id   trace_id   TYPE bloom_filter(0.001)")
	mustContain(t, "create_trace_roots_mv", stmts["create_trace_roots_mv"],
		"CREATE MATERIALIZED VIEW IF NOT EXISTS spanpipe.trace_roots_mv\nTO spanpipe.trace_roots",
		"FROM spanpipe.spans\nWHERE parent_span_id = ''")
	for _, n := range []string{"create_logs", "create_metrics", "create_scores", "create_feedback"} {
		mustContain(t, n, stmts[n], "ENGINE = ReplacingMergeTree()", "PARTITION BY toDate(timestamp)")
		mustNotContain(t, n, stmts[n], "TTL ")
	}
	mustContain(t, "create_migrations_table", stmts["create_migrations_table"], "ENGINE = ReplacingMergeTree(applied_at)")
	for _, tab := range []string{"spans", "trace_roots"} {
		mustContain(t, "add_rank_"+tab, stmts["add_rank_"+tab],
			"ADD COLUMN IF NOT EXISTS rank UInt8 DEFAULT if(is_event OR ended_at IS NOT NULL, 3, 1) AFTER version",
			"ADD COLUMN IF NOT EXISTS ordering UInt128 MATERIALIZED bitShiftLeft(toUInt128(version), 8) + rank")
		mustContain(t, "create_"+tab+"_swap", stmts["create_"+tab+"_swap"], "AS spanpipe."+tab+"\nENGINE = ReplacingMergeTree(ordering)")
	}
	mustContain(t, "create_trace_roots_rank_mv", stmts["create_trace_roots_rank_mv"], "version, rank, ended_at")
	mustContain(t, "metadata_search_default", stmts["metadata_search_default"],
		"ALTER TABLE spanpipe.spans ", "MODIFY COLUMN metadata_search Map(LowCardinality(String), String) DEFAULT CAST(",
		"JSONExtractKeysAndValuesRaw(metadata)")
	mustContain(t, "exchange_spans", stmts["exchange_spans"], "EXCHANGE TABLES spanpipe.spans AND spanpipe.spans_swap")
	mustContain(t, "copy_spans", stmts["copy_spans"], "FROM spanpipe.spans_swap")
	for _, n := range []string{"scores", "feedback"} {
		id := map[string]string{"scores": "score_id", "feedback": "feedback_id"}[n]
		mustContain(t, "create_"+n+"_swap", stmts["create_"+n+"_swap"], "ENGINE = ReplacingMergeTree(timestamp)\nPARTITION BY tuple()\nORDER BY (trace_id, "+id+")",
			"ttl_only_drop_parts = 0")
		mustContain(t, "create_"+n+"_swap", stmts["create_"+n+"_swap"], "PARTITION BY tuple()")
	}
}

// The statements that cannot be idempotent by themselves carry a guard.
func TestDDLGuards(t *testing.T) {
	migs, err := paramsOf(DefaultConfig()).migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migs {
		for _, s := range m.statements {
			needs := strings.HasPrefix(s.sql, "EXCHANGE") || strings.HasPrefix(s.sql, "INSERT")
			if needs && !strings.HasPrefix(s.unless, "SELECT count()") && !strings.HasPrefix(s.unless, "SELECT toUInt64(count()") {
				t.Errorf("%s/%s: %.40q needs a guard, has %q", m.name, s.name, s.sql, s.unless)
			}
		}
	}
}

func TestDDLCluster(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Cluster, cfg.Replicated = "main", true
	cfg.TTL.Logs = 7
	stmts := renderAll(t, cfg)
	for name, sql := range stmts {
		if strings.HasPrefix(sql, "INSERT") { // INSERT has no ON CLUSTER: it goes through the Distributed table
			mustContain(t, name, sql, "INSERT INTO spanpipe.", "FROM ")
			continue
		}
		mustContain(t, name, sql, " ON CLUSTER `main`")
		mustNotContain(t, name, sql, "non_replicated_deduplication_window", "ENGINE = ReplacingMergeTree")
	}
	mustContain(t, "create_spans", stmts["create_spans"],
		"CREATE TABLE IF NOT EXISTS spanpipe.spans_local ON CLUSTER `main`",
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)")
	mustContain(t, "create_logs", stmts["create_logs"],
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')",
		"TTL toDate(timestamp) + toIntervalDay(7)")
	mustContain(t, "create_trace_roots_mv", stmts["create_trace_roots_mv"],
		"TO spanpipe.trace_roots_local", "FROM spanpipe.spans_local")
	// Inserts go through the Distributed table, which computes the DEFAULT.
	mustContain(t, "metadata_search_default", stmts["metadata_search_default"], "ALTER TABLE spanpipe.spans_local ON CLUSTER")
	mustContain(t, "metadata_search_default_distributed", stmts["metadata_search_default_distributed"],
		"ALTER TABLE spanpipe.spans ON CLUSTER `main` MODIFY COLUMN metadata_search Map(LowCardinality(String), String) DEFAULT CAST(")
	for tab, key := range map[string]string{"spans": "trace_id", "trace_roots": "trace_id", "logs": "log_id",
		"metrics": "metric_id", "scores": "score_id", "feedback": "feedback_id"} {
		n := "create_" + tab + "_distributed"
		mustContain(t, n, stmts[n], "CREATE TABLE IF NOT EXISTS spanpipe."+tab+" ON CLUSTER `main` AS spanpipe."+tab+"_local",
			"ENGINE = Distributed('main', 'spanpipe', '"+tab+"_local', cityHash64("+key+"))")
	}

	// A cluster without replication: plain engines on every shard.
	cfg.Replicated = false
	stmts = renderAll(t, cfg)
	mustContain(t, "create_spans", stmts["create_spans"], "ENGINE = ReplacingMergeTree(version)", "non_replicated_deduplication_window")
	// Replication without a cluster: no Distributed tables.
	cfg.Cluster, cfg.Replicated = "", true
	stmts = renderAll(t, cfg)
	if _, ok := stmts["create_spans_distributed"]; ok {
		t.Error("no Distributed tables without a cluster")
	}
	mustContain(t, "create_spans", stmts["create_spans"], "ReplicatedReplacingMergeTree(", "spanpipe.spans\n")
}

// Every column the writer inserts is declared in the CREATE TABLE with the same type.
func TestDDLMatchesWriterColumns(t *testing.T) {
	stmts := renderAll(t, DefaultConfig())
	for _, tab := range allTables {
		// The columns of 0001, and those a later migration added.
		sql := stmts["create_"+tab.name] + "\n" + strings.ReplaceAll(stmts["add_rank_"+tab.name], " ADD COLUMN", "\n ADD COLUMN") + ","
		for _, c := range tab.cols {
			re := regexp.MustCompile(`(?m)^\s+(ADD COLUMN IF NOT EXISTS )?` + regexp.QuoteMeta(c.name) + `\s+` + regexp.QuoteMeta(c.typ) + `( CODEC\(.*\)| DEFAULT .*)?,$`)
			if !re.MatchString(sql) {
				t.Errorf("create_%s: no column %q of type %q", tab.name, c.name, c.typ)
			}
		}
	}
}

func TestSplitStatements(t *testing.T) {
	got, err := splitStatements("-- intro\n\n-- name: a\nSELECT 1\n  -- inside\nFROM x;\n-- name: b\n-- unless: SELECT 0\nSELECT 2;\n-- name: c\nSELECT 3;\n", "f.sql")
	if err != nil {
		t.Fatal(err)
	}
	want := []statement{{"a", "SELECT 1\nFROM x", ""}, {"b", "SELECT 2", "SELECT 0"}, {"c", "SELECT 3", ""}}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"SELECT 1;", "-- name: a\nSELECT 1", "-- name: a\nSELECT 1\n-- name: b\nSELECT 2;",
		"-- unless: SELECT 1\n-- name: a\nSELECT 1;", "-- name: a\nSELECT 1\n-- unless: SELECT 1\nFROM x;"} {
		if _, err := splitStatements(bad, "f.sql"); err == nil {
			t.Errorf("splitStatements(%q): no error", bad)
		}
	}
}

func TestTTLChanges(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TTL = TTLConfig{Spans: 7, Metrics: 90}
	p := paramsOf(cfg)
	full := map[string]string{
		"spans":       "ReplacingMergeTree(version) PARTITION BY toDate(started_at) ORDER BY (trace_id, span_id) TTL toDate(started_at) + toIntervalDay(30) SETTINGS index_granularity = 8192",
		"trace_roots": "ReplacingMergeTree(version) PARTITION BY toDate(started_at) ORDER BY (started_at, trace_id, span_id) TTL toDate(started_at) + toIntervalDay(7) SETTINGS index_granularity = 8192",
		"logs":        "ReplacingMergeTree PARTITION BY toDate(timestamp) ORDER BY (timestamp, log_id) TTL toDate(timestamp) + toIntervalDay(14) SETTINGS index_granularity = 8192",
		"metrics":     "ReplacingMergeTree PARTITION BY toDate(timestamp) ORDER BY (name, timestamp, metric_id) TTL toDate(timestamp) + toIntervalDay(900) SETTINGS index_granularity = 8192",
		"scores":      "ReplacingMergeTree PARTITION BY toDate(timestamp) ORDER BY (trace_id, timestamp, score_id) SETTINGS index_granularity = 8192",
	}
	got := p.ttlChanges(full)
	want := []statement{
		{"ttl_spans", "ALTER TABLE spanpipe.spans MODIFY TTL toDate(started_at) + toIntervalDay(7) SETTINGS materialize_ttl_after_modify = 0", ""},
		{"ttl_logs", "ALTER TABLE spanpipe.logs REMOVE TTL", ""},
		{"ttl_metrics", "ALTER TABLE spanpipe.metrics MODIFY TTL toDate(timestamp) + toIntervalDay(90) SETTINGS materialize_ttl_after_modify = 0", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d changes %+v, want %+v", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}
