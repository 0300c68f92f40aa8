package clickhouse_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/clickhouse"
)

func TestMastraLayoutConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*clickhouse.Config)
		want string // "" = valid
	}{
		{"default", func(*clickhouse.Config) {}, ""},
		{"empty is spanpipe", func(c *clickhouse.Config) { c.Layout = "" }, ""},
		{"mastra", func(c *clickhouse.Config) { c.Layout = "mastra" }, ""},
		{"unknown", func(c *clickhouse.Config) { c.Layout = "studio" }, `layout must be spanpipe or mastra, got "studio"`},
		{"mastra with ttl", func(c *clickhouse.Config) { c.Layout = "mastra"; c.TTL.Logs = 3 }, "cluster, replicated and ttl must be unset"},
		{"mastra on a cluster", func(c *clickhouse.Config) { c.Layout = "mastra"; c.Cluster = "c" }, "cluster, replicated and ttl must be unset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := clickhouse.DefaultConfig()
			tc.set(&c)
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

// createMastraTables creates Mastra's base tables from the DDL its init() ran
// (testdata/mastra_1.16.0.sql), as a Mastra app would have before spanpipe writes.
func createMastraTables(t *testing.T, conn ch.Conn, db string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "mastra_1.16.0.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(t.Context(), "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(string(b), "{{db}}", db), "\n") {
		if !strings.HasPrefix(l, "--") {
			lines = append(lines, l)
		}
	}
	for _, stmt := range strings.Split(strings.Join(lines, "\n"), ";") {
		if s := strings.TrimSpace(stmt); s != "" {
			if err := conn.Exec(t.Context(), s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
}

// mastraRows returns the table's rows as JSON objects (what Mastra's HTTP reads see),
// ordered by key.
func mastraRows(t *testing.T, conn ch.Conn, db, table, key string) []map[string]any {
	t.Helper()
	rows, err := conn.Query(t.Context(), "SELECT formatRow('JSONEachRow', *) FROM "+db+"."+table+" ORDER BY "+key)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []map[string]any
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

const (
	mTrace = "0af7651916cd43dd8448eb211c80319c"
	mRoot  = "b7ad6b7169203331"
	mChild = "c7ad6b7169203332"
	mEvent = "d7ad6b7169203333"
	mOpen  = "e7ad6b7169203334"
)

func mastraBatch(src int64) *pipeline.Batch {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 123_000_000, time.UTC)
	cost := 0.25
	return &pipeline.Batch{
		Strategy: pipeline.InsertOnly,
		Sources:  []pipeline.SourceRange{{Topic: "spans", Partition: 0, First: src, Last: src + 10}},
		Spans: []*schema.Span{
			{
				TraceID: mTrace, SpanID: mRoot, Name: "support agent", Type: schema.SpanType("agent_run"),
				Correlation: schema.Correlation{EntityType: "agent", EntityID: "a1", EntityName: "support", Tags: []string{" e2e ", "t0", "e2e", ""}},
				StartTime:   t0, EndTime: t0.Add(2 * time.Second),
				Metadata:   jsontext.Value(`{"userId":"u1","threadId":"th1","serviceName":"svc","source":"cloud","custom":"  x  ","n":3,"scope":{"core":"1.71.0"}}`),
				Input:      jsontext.Value(`{"q":"hi"}`),
				Attributes: jsontext.Value(`{"maxSteps":5}`),
				IsRootSpan: true, Event: schema.SpanEnded, Version: 3,
			},
			{
				TraceID: mTrace, SpanID: mChild, ParentSpanID: mRoot, Name: "lookup", Type: schema.SpanType("tool_call"),
				StartTime: t0.Add(time.Second), EndTime: t0.Add(1500 * time.Millisecond),
				ErrorInfo: &schema.ErrorInfo{Message: "lookup failed", Name: "Error"},
				Event:     schema.SpanEnded, Version: 3,
			},
			{
				TraceID: mTrace, SpanID: mEvent, ParentSpanID: mRoot, Name: "signal", Type: schema.SpanType("agent_signal"),
				StartTime: t0.Add(time.Second), Output: jsontext.Value(`{"state":"thinking"}`), IsEvent: true,
				Event: schema.SpanEnded, Version: 3,
			},
			// Running: the layout cannot hold it.
			{TraceID: mTrace, SpanID: mOpen, ParentSpanID: mRoot, Name: "open", Type: schema.SpanType("processor_run"), StartTime: t0, Event: schema.SpanStarted, Version: 1},
		},
		Logs: []*schema.Log{{
			LogID: "log-1", Timestamp: t0, TraceID: mTrace, SpanID: mRoot, Level: "warn", Message: "slow",
			Data: jsontext.Value(`{"ms":1200}`), Correlation: &schema.Correlation{EntityName: "support", Tags: []string{"e2e"}},
			Metadata: jsontext.Value(`{"entity_type":"agent","service_name":"legacy-svc"}`),
		}},
		Metrics: []*schema.Metric{{
			MetricID: "m-1", Timestamp: t0, TraceID: mTrace, Name: "mastra_model_total_input_tokens", Value: 12,
			Labels:      map[string]string{"route": " a ", "entity_type": "agent", "blank": " "},
			Correlation: &schema.Correlation{ServiceName: "svc"},
			CostContext: &schema.CostContext{Provider: "openai", Model: "gpt-4o-mini", EstimatedCost: &cost, CostUnit: "usd"},
		}},
		Scores: []*schema.Score{{
			ScoreID: "s-1", Timestamp: t0, TraceID: mTrace, SpanID: mRoot, ScorerID: "relevance", ScorerName: "Relevance",
			Source: "live", Score: 0.5, Reason: "ok", TargetEntityType: "agent", ExperimentID: "exp-1",
		}},
		Feedback: []*schema.Feedback{
			{FeedbackID: "f-1", Timestamp: t0, TraceID: mTrace, FeedbackType: "thumbs", Value: jsontext.Value(`"up"`), Source: "ui", UserID: "fb-u"},
			{FeedbackID: "f-2", Timestamp: t0, TraceID: mTrace, FeedbackType: "rating", Value: jsontext.Value(`4`), FeedbackSource: "api",
				Correlation: &schema.Correlation{UserID: "ctx-user"}, Metadata: jsontext.Value(`{"userId":"md-user"}`)},
		},
	}
}

// TestMastraLayoutAgainstServer writes a batch into Mastra's tables (created by the
// DDL Mastra's init ran) and checks the rows against what @mastra/clickhouse's
// spanRecordToRow & co. write for the same events; writing it again, under the same
// or other Kafka sources (a retry; a redelivery batched differently), adds no row.
func TestMastraLayoutAgainstServer(t *testing.T) {
	cfg := serverConfig(t)
	cfg.Layout = clickhouse.LayoutMastra
	ctx := t.Context()
	conn := rawConn(t, cfg)

	if _, err := clickhouse.Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "init()") || !strings.Contains(err.Error(), "mastra_span_events does not exist") {
		t.Fatalf("Open without Mastra's tables = %v, want an error that asks for Mastra's init()", err)
	}
	createMastraTables(t, conn, cfg.Database)
	noAuto := cfg
	noAuto.AutoMigrate = false
	if _, err := clickhouse.Open(ctx, noAuto); err == nil || !strings.Contains(err.Error(), "non_replicated_deduplication_window") {
		t.Fatalf("Open without auto_migrate = %v, want an error that asks for spanpipe migrate", err)
	}
	res, err := clickhouse.Migrate(ctx, cfg)
	if err != nil || len(res.Applied) != 5 {
		t.Fatalf("Migrate = %+v, %v; want the dedup window set on 5 tables", res, err)
	}
	w, err := clickhouse.Open(ctx, noAuto)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if c := w.Capabilities(); c.Preferred != pipeline.InsertOnly || len(c.Supported) != 1 {
		t.Fatalf("capabilities %+v, want insert-only only", c)
	}
	for i, src := range []int64{100, 100, 7} {
		if err := w.Write(ctx, mastraBatch(src)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}

	spans := mastraRows(t, conn, cfg.Database, "mastra_span_events", "dedupeKey")
	if len(spans) != 3 {
		t.Fatalf("%d span rows, want 3 (the running span left out, nothing twice): %v", len(spans), spans)
	}
	root, child, event := spans[0], spans[1], spans[2]
	want := map[string]any{
		"dedupeKey": mTrace + ":" + mRoot, "parentSpanId": nil, "spanType": "agent_run", "entityType": "agent",
		"userId": "u1", "threadId": "th1", "serviceName": "svc", "executionSource": "cloud", "resourceId": nil,
		"startedAt": "2026-11-30 12:00:00.123", "endedAt": "2026-11-30 12:00:02.123", "isEvent": false,
		"tags":           []any{"e2e", "t0"},
		"metadataSearch": map[string]any{"custom": "x", "source": "cloud"}, // "source" is not a promoted key
		"metadataRaw":    `{"userId":"u1","threadId":"th1","serviceName":"svc","source":"cloud","custom":"  x  ","n":3,"scope":{"core":"1.71.0"}}`,
		"scope":          `{"core":"1.71.0"}`, "links": nil, "input": `{"q":"hi"}`, "output": nil, "error": nil,
		"attributes": `{"maxSteps":5}`, "requestContext": nil,
	}
	checkRow(t, "root span", root, want)
	checkRow(t, "child span", child, map[string]any{"parentSpanId": mRoot, "error": `{"message":"lookup failed","name":"Error"}`,
		"endedAt": "2026-11-30 12:00:01.623", "tags": []any{}, "metadataSearch": map[string]any{}, "metadataRaw": nil, "userId": nil})
	checkRow(t, "event span", event, map[string]any{"isEvent": true, "endedAt": "2026-11-30 12:00:01.123", "output": `{"state":"thinking"}`})

	logs := mastraRows(t, conn, cfg.Database, "mastra_log_events", "logId")
	if len(logs) != 1 {
		t.Fatalf("%d log rows, want 1", len(logs))
	}
	checkRow(t, "log", logs[0], map[string]any{"entityType": "agent", "entityName": "support", "serviceName": "legacy-svc",
		"traceId": mTrace, "tags": []any{"e2e"}, "data": `{"ms":1200}`, "scope": nil})
	metrics := mastraRows(t, conn, cfg.Database, "mastra_metric_events", "metricId")
	if len(metrics) != 1 {
		t.Fatalf("%d metric rows, want 1", len(metrics))
	}
	checkRow(t, "metric", metrics[0], map[string]any{"labels": map[string]any{"route": "a"}, "entityType": "agent",
		"serviceName": "svc", "provider": "openai", "estimatedCost": 0.25, "costUnit": "usd", "value": float64(12)})
	scores := mastraRows(t, conn, cfg.Database, "mastra_score_events", "scoreId")
	if len(scores) != 1 {
		t.Fatalf("%d score rows, want 1", len(scores))
	}
	checkRow(t, "score", scores[0], map[string]any{"scoreSource": "live", "entityType": "agent", "experimentId": "exp-1", "scorerVersion": nil})
	fb := mastraRows(t, conn, cfg.Database, "mastra_feedback_events", "feedbackId")
	if len(fb) != 2 {
		t.Fatalf("%d feedback rows, want 2", len(fb))
	}
	checkRow(t, "string feedback", fb[0], map[string]any{"valueString": "up", "valueNumber": nil, "feedbackSource": "ui", "feedbackUserId": "fb-u", "userId": "fb-u"})
	checkRow(t, "number feedback", fb[1], map[string]any{"valueString": nil, "valueNumber": float64(4), "feedbackSource": "api", "feedbackUserId": "md-user", "userId": "md-user"})
}

func checkRow(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok || !reflect.DeepEqual(g, v) {
			t.Errorf("%s: %s = %#v, want %#v", what, k, got[k], v)
		}
	}
}
