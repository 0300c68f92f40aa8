package duckdb_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

var _ pipeline.Sink = (*duckdb.Writer)(nil)

// t0 is microsecond-precise and UTC, as the store returns times.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "spanpipe.duckdb") }

func openWriter(t testing.TB, path string, opts ...duckdb.Option) *duckdb.Writer {
	t.Helper()
	cfg := duckdb.DefaultConfig()
	cfg.Path = path
	return openConfig(t, cfg, opts...)
}

// openCheckpointing opens a Writer on a new file that checkpoints at threshold, and
// returns it with the file's path.
func openCheckpointing(t testing.TB, threshold string) (*duckdb.Writer, string) {
	t.Helper()
	cfg := duckdb.DefaultConfig()
	cfg.Path, cfg.CheckpointThreshold = dbPath(t), threshold
	return openConfig(t, cfg), cfg.Path
}

// openConfig opens a Writer with cfg, closed when the test ends.
func openConfig(t testing.TB, cfg duckdb.Config, opts ...duckdb.Option) *duckdb.Writer {
	t.Helper()
	w, err := duckdb.Open(t.Context(), cfg, opts...)
	if err != nil {
		t.Fatalf("Open(%q): %v", cfg.Path, err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return w
}

// span returns a snapshot of version v; the span has ended from version 3 on.
func span(traceID, spanID string, v uint64) *schema.Span {
	s := &schema.Span{
		TraceID:      traceID,
		SpanID:       spanID,
		ParentSpanID: "00000000000000aa",
		Name:         fmt.Sprintf("agent run v%d", v),
		Type:         schema.AgentRun,
		Correlation: schema.Correlation{
			EntityType:  "agent",
			EntityID:    "weather-agent",
			EntityName:  "Weather agent",
			UserID:      "user-1",
			ThreadID:    "thread-1",
			Environment: "test",
			ServiceName: "svc",
			Tags:        []string{"prod", "beta"},
		},
		StartTime:  t0,
		Attributes: jsontext.Value(fmt.Sprintf(`{"step":%d}`, v)),
		Metadata:   jsontext.Value(`{"userId":"user-1","k":"v"}`),
		Input:      jsontext.Value(`{"messages":[{"role":"user","content":"hi"}]}`),
		IsRootSpan: true,
		Version:    v,
	}
	if v >= 3 {
		s.EndTime = t0.Add(time.Duration(v) * time.Second)
		s.Output = jsontext.Value(`{"text":"sunny"}`)
		s.ErrorInfo = &schema.ErrorInfo{Message: "boom", Category: "USER", Details: jsontext.Value(`{"code":7}`)}
	}
	return s
}

func write(t *testing.T, w *duckdb.Writer, b *pipeline.Batch) {
	t.Helper()
	if err := w.Write(t.Context(), b); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

func spanJSON(s *schema.Span) string {
	b, _ := json.Marshal(s, json.Deterministic(true))
	return string(b)
}

func checkSpan(t *testing.T, w *duckdb.Writer, want *schema.Span) {
	t.Helper()
	got, err := w.Span(t.Context(), want.TraceID, want.SpanID)
	if err != nil {
		t.Fatalf("Span(%s, %s): %v", want.TraceID, want.SpanID, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stored span:\ngot  %s\nwant %s", spanJSON(got), spanJSON(want))
	}
}

func counts(t *testing.T, w *duckdb.Writer) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, table := range []string{"spans", "logs", "metrics", "scores", "feedback"} {
		n, err := w.CountRows(t.Context(), table)
		if err != nil {
			t.Fatalf("CountRows(%s): %v", table, err)
		}
		out[table] = n
	}
	return out
}

func TestVersionOrder(t *testing.T) {
	tests := []struct {
		name     string
		versions []uint64 // written in this order, one batch each
		want     uint64
	}{
		{"in order", []uint64{1, 2, 3}, 3},
		{"v1 then v3 then v2", []uint64{1, 3, 2}, 3},
		{"reverse", []uint64{3, 2, 1}, 3},
		{"ended before started", []uint64{3, 1}, 3},
		{"same version again", []uint64{2, 2}, 2},
		{"running only", []uint64{1}, 1},
	}
	w := openWriter(t, dbPath(t))
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			traceID := fmt.Sprintf("%032x", i+1)
			for _, v := range tt.versions {
				write(t, w, &pipeline.Batch{Strategy: pipeline.BatchWithUpdates, Spans: []*schema.Span{span(traceID, "0000000000000001", v)}})
			}
			checkSpan(t, w, span(traceID, "0000000000000001", tt.want))
		})
	}
}

func TestSameSpanTwiceInBatch(t *testing.T) {
	tests := []struct {
		name     string
		versions []uint64 // order within the one batch
		want     uint64
	}{
		{"newest last", []uint64{1, 2, 4}, 4},
		{"newest first", []uint64{4, 1, 2}, 4},
		{"newest in the middle", []uint64{2, 5, 3}, 5},
	}
	w := openWriter(t, dbPath(t))
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			traceID := fmt.Sprintf("%032x", i+100)
			b := &pipeline.Batch{}
			for _, v := range tt.versions {
				b.Spans = append(b.Spans, span(traceID, "0000000000000002", v))
			}
			write(t, w, b)
			checkSpan(t, w, span(traceID, "0000000000000002", tt.want))
			// An older snapshot in a later batch changes nothing.
			write(t, w, &pipeline.Batch{Spans: []*schema.Span{span(traceID, "0000000000000002", 1)}})
			checkSpan(t, w, span(traceID, "0000000000000002", tt.want))
		})
	}
}

func fullBatch(traceID string) *pipeline.Batch {
	cost := 0.0125
	corr := &schema.Correlation{
		EntityType: "agent", EntityID: "a1", ParentEntityType: "workflow", ParentEntityID: "wf1",
		RootEntityType: "workflow", RootEntityID: "wf1", UserID: "u1", OrganizationID: "org1",
		RunID: "run1", SessionID: "sess1", Environment: "test", Source: "cloud",
		ServiceName: "svc", ExperimentID: "exp1", Tags: []string{"t1", "t2"},
	}
	running := span(traceID, "0000000000000001", 1)
	ended := span(traceID, "0000000000000002", 3)
	event := &schema.Span{
		TraceID: traceID, SpanID: "0000000000000003", ParentSpanID: "0000000000000001",
		Name: "chunk", Type: schema.SpanType("future_type"), StartTime: t0, IsEvent: true, IsInternal: true, Version: 1,
	}
	return &pipeline.Batch{
		Strategy: pipeline.BatchWithUpdates,
		Spans:    []*schema.Span{running, ended, event},
		Logs: []*schema.Log{
			{LogID: "log-1", Timestamp: t0, TraceID: traceID, SpanID: "0000000000000001", Level: "info", Message: "hello", Data: jsontext.Value(`{"a":1}`), Correlation: corr, Metadata: jsontext.Value(`{"m":true}`)},
			{LogID: "log-2", Timestamp: t0, Level: "warn", Message: ""},
		},
		Metrics: []*schema.Metric{
			{MetricID: "metric-1", Timestamp: t0, TraceID: traceID, Name: "mastra_model_total_input_tokens", Value: 42,
				Labels: map[string]string{"model": "gpt", "agent": "a1"}, Correlation: corr,
				CostContext: &schema.CostContext{Provider: "openai", Model: "gpt", EstimatedCost: &cost, CostUnit: "usd", CostMetadata: jsontext.Value(`{"tier":"x"}`)}},
			{MetricID: "metric-2", Timestamp: t0, Name: "latency_ms", Value: 1.5},
		},
		Scores: []*schema.Score{
			{ScoreID: "score-1", Timestamp: t0, TraceID: traceID, SpanID: "0000000000000002", ScorerID: "relevance", ScorerName: "Relevance", ScoreSource: "live", Score: 0.75, Reason: "ok", Correlation: corr},
		},
		Feedback: []*schema.Feedback{
			{FeedbackID: "fb-1", Timestamp: t0, TraceID: traceID, FeedbackType: "rating", Value: jsontext.Value(`4`), Comment: "good", FeedbackUserID: "u9", Correlation: corr},
			{FeedbackID: "fb-2", Timestamp: t0, TraceID: traceID, FeedbackType: "thumbs", Value: jsontext.Value(`"up"`)},
		},
	}
}

func TestRoundTripAllSignals(t *testing.T) {
	path := dbPath(t)
	w := openWriter(t, path)
	traceID := strings.Repeat("ab", 16)
	b := fullBatch(traceID)
	write(t, w, b)

	wantCounts := map[string]int64{"spans": 3, "logs": 2, "metrics": 2, "scores": 1, "feedback": 2}
	if got := counts(t, w); !reflect.DeepEqual(got, wantCounts) {
		t.Errorf("row counts: got %v, want %v", got, wantCounts)
	}
	if n, err := w.CountSpans(t.Context()); err != nil || n != 3 {
		t.Errorf("CountSpans: got %d, %v, want 3", n, err)
	}
	for _, s := range b.Spans {
		checkSpan(t, w, s)
	}
	if _, err := w.Span(t.Context(), traceID, "ffffffffffffffff"); !errors.Is(err, duckdb.ErrNotFound) {
		t.Errorf("Span(unknown): got %v, want ErrNotFound", err)
	}
	if _, err := w.CountRows(t.Context(), "spans; DROP TABLE spans"); err == nil {
		t.Error("CountRows(bad name): got nil error")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// Spot-check the columns the read helpers do not map, through a read-only handle.
	db, err := duckdb.OpenReadOnly(t.Context(), path)
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	defer db.Close()
	checks := []struct {
		query string
		want  string
	}{
		{`SELECT ended_at IS NULL FROM spans WHERE span_id = '0000000000000001'`, "true"},
		{`SELECT metadata FROM spans WHERE span_id = '0000000000000001'`, `{"userId":"user-1","k":"v"}`},
		{`SELECT output IS NULL AND error IS NULL FROM spans WHERE span_id = '0000000000000001'`, "true"},
		{`SELECT error FROM spans WHERE span_id = '0000000000000002'`, `{"message":"boom","category":"USER","details":{"code":7}}`},
		{`SELECT array_to_string(tags, ',') FROM spans WHERE span_id = '0000000000000002'`, "prod,beta"},
		{`SELECT tags IS NULL AND metadata IS NULL FROM spans WHERE span_id = '0000000000000003'`, "true"},
		{`SELECT span_type || ' ' || is_event || ' ' || is_internal FROM spans WHERE span_id = '0000000000000003'`, "future_type true true"},
		{`SELECT parent_entity_id IS NULL AND external_parent_span_id IS NULL FROM spans WHERE span_id = '0000000000000002'`, "true"},
		{`SELECT count(*) FROM spans WHERE created_at <= updated_at`, "3"},
		{`SELECT level || '|' || message || '|' || data || '|' || metadata || '|' || run_id FROM logs WHERE log_id = 'log-1'`, `info|hello|{"a":1}|{"m":true}|run1`},
		{`SELECT array_to_string(tags, ',') || '|' || parent_entity_id || '|' || source FROM logs WHERE log_id = 'log-1'`, "t1,t2|wf1|cloud"},
		{`SELECT message = '' AND trace_id IS NULL AND user_id IS NULL FROM logs WHERE log_id = 'log-2'`, "true"},
		{`SELECT CAST("timestamp" AS VARCHAR) FROM logs WHERE log_id = 'log-1'`, "2026-03-14 15:09:26.535897"},
		{`SELECT labels || '|' || value || '|' || provider || '|' || estimated_cost || '|' || cost_unit || '|' || cost_metadata FROM metrics WHERE metric_id = 'metric-1'`, `{"agent":"a1","model":"gpt"}|42.0|openai|0.0125|usd|{"tier":"x"}`},
		{`SELECT labels = '{}' AND provider IS NULL AND estimated_cost IS NULL FROM metrics WHERE metric_id = 'metric-2'`, "true"},
		{`SELECT scorer_id || '|' || scorer_name || '|' || score || '|' || score_source || '|' || experiment_id FROM scores WHERE score_id = 'score-1'`, "relevance|Relevance|0.75|live|exp1"},
		{`SELECT value || '|' || (value_string IS NULL) || '|' || value_number || '|' || comment || '|' || feedback_user_id FROM feedback WHERE feedback_id = 'fb-1'`, "4|true|4.0|good|u9"},
		{`SELECT value || '|' || value_string || '|' || (value_number IS NULL) FROM feedback WHERE feedback_id = 'fb-2'`, `up|up|true`},
	}
	for _, c := range checks {
		var got string
		if err := db.QueryRowContext(t.Context(), c.query).Scan(&got); err != nil {
			t.Errorf("%s: %v", c.query, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s:\ngot  %s\nwant %s", c.query, got, c.want)
		}
	}
}

func TestSameBatchTwice(t *testing.T) {
	w := openWriter(t, dbPath(t))
	traceID := strings.Repeat("cd", 16)
	b := fullBatch(traceID)
	write(t, w, b)
	first := counts(t, w)
	write(t, w, fullBatch(traceID))
	if got := counts(t, w); !reflect.DeepEqual(got, first) {
		t.Errorf("row counts after the second write: got %v, want %v", got, first)
	}
	for _, s := range b.Spans {
		checkSpan(t, w, s)
	}
}

func TestBatchWithDuplicateIDs(t *testing.T) {
	w := openWriter(t, dbPath(t))
	b := fullBatch(strings.Repeat("ef", 16))
	b.Logs = append(b.Logs, b.Logs...)
	b.Metrics = append(b.Metrics, b.Metrics...)
	b.Scores = append(b.Scores, b.Scores...)
	b.Feedback = append(b.Feedback, b.Feedback...)
	write(t, w, b)
	want := map[string]int64{"spans": 3, "logs": 2, "metrics": 2, "scores": 1, "feedback": 2}
	if got := counts(t, w); !reflect.DeepEqual(got, want) {
		t.Errorf("row counts: got %v, want %v", got, want)
	}
}

func TestEmptyBatch(t *testing.T) {
	w := openWriter(t, dbPath(t))
	for _, b := range []*pipeline.Batch{nil, {}, {Spans: []*schema.Span{}}} {
		write(t, w, b)
	}
	// Only logs: the other tables are skipped.
	write(t, w, &pipeline.Batch{Logs: fullBatch("").Logs})
	want := map[string]int64{"spans": 0, "logs": 2, "metrics": 0, "scores": 0, "feedback": 0}
	if got := counts(t, w); !reflect.DeepEqual(got, want) {
		t.Errorf("row counts: got %v, want %v", got, want)
	}
}

// The settings reach DuckDB through the DSN: a typo in a setting name would only show
// as a default silently kept.
func TestSettingsApplied(t *testing.T) {
	cfg := duckdb.Config{Path: dbPath(t), MemoryLimit: "300MB", CheckpointThreshold: "64MB", Threads: 1}
	w, err := duckdb.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var threads int
	var ckpt string
	if err := w.DB().QueryRowContext(t.Context(),
		"SELECT current_setting('threads'), current_setting('checkpoint_threshold')").Scan(&threads, &ckpt); err != nil {
		t.Fatal(err)
	}
	if threads != 1 || !strings.HasPrefix(ckpt, "6") {
		t.Fatalf("threads %d, checkpoint_threshold %q; want 1 and about 64MB", threads, ckpt)
	}
}

// TestDefaultMemoryLimit: the default buffer pool is 96 MB, which DuckDB prints in
// MiB (see Config.MemoryLimit for why).
func TestDefaultMemoryLimit(t *testing.T) {
	w := openWriter(t, dbPath(t))
	var limit string
	if err := w.DB().QueryRowContext(t.Context(), "SELECT current_setting('memory_limit')").Scan(&limit); err != nil {
		t.Fatal(err)
	}
	if want := "91.5 MiB"; limit != want {
		t.Errorf("memory_limit %q, want %q (96MB)", limit, want)
	}
}

// TestAllocatorFlushAfterCheckpoint: a Write whose commit checkpointed (here every
// second one: the threshold is between one and two batches of WAL) sets memory_limit
// again to return freed memory, and leaves the limit as configured.
func TestAllocatorFlushAfterCheckpoint(t *testing.T) {
	for _, tt := range []struct {
		name, limit string
		want        string // prefix of current_setting('memory_limit') afterwards
		exact       bool   // the same string as before; DuckDB's default is set as it prints it, rounded
	}{
		{"configured", "96MB", "9", true},
		{"duckdb default", "", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := duckdb.DefaultConfig()
			cfg.Path, cfg.MemoryLimit, cfg.CheckpointThreshold = dbPath(t), tt.limit, "150KB"
			w, err := duckdb.Open(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			var before string
			if err := w.DB().QueryRowContext(t.Context(), "SELECT current_setting('memory_limit')").Scan(&before); err != nil {
				t.Fatal(err)
			}
			for i := range 4 {
				if err := w.Write(t.Context(), benchBatch(100, fmt.Sprintf("%032x", i))); err != nil {
					t.Fatal(err)
				}
			}
			if got := w.AllocatorFlushes(); got < 2 {
				t.Errorf("allocator flushes after 4 writes, 2 of them checkpointing: %d, want >= 2", got)
			}
			var after string
			if err := w.DB().QueryRowContext(t.Context(), "SELECT current_setting('memory_limit')").Scan(&after); err != nil {
				t.Fatal(err)
			}
			unit := func(s string) string { return s[strings.LastIndexByte(s, ' ')+1:] }
			if (tt.exact && after != before) || unit(after) != unit(before) || !strings.HasPrefix(after, tt.want) {
				t.Errorf("memory_limit %q after the writes, %q before; want unchanged (prefix %q)", after, before, tt.want)
			}
			if n, err := w.CountSpans(t.Context()); err != nil || n != 400 {
				t.Errorf("CountSpans = %d, %v; want 400", n, err)
			}
		})
	}
}

// TestCheckpointedBlocksEvicted: after a checkpoint, the blocks it wrote do not stay
// cached in DuckDB's buffer pool (the writer never reads them), and memory_limit is
// the configured one again.
func TestCheckpointedBlocksEvicted(t *testing.T) {
	duckdb.SetEvictHeadroom(t, 1<<20)
	w, _ := openCheckpointing(t, "4MB")
	cached := func() (n int64) {
		t.Helper()
		if err := w.DB().QueryRowContext(t.Context(),
			"SELECT coalesce(sum(memory_usage_bytes), 0)::BIGINT FROM duckdb_memory() WHERE tag = 'BASE_TABLE'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := 0; w.Evictions() == 0; i++ {
		if i == 40 {
			t.Fatalf("no eviction after %d batches of 1000 spans (cached blocks: %d bytes)", i, cached())
		}
		// Random text, so that the file's blocks are as large as the rows: the same
		// text in every span compresses to almost nothing. It goes in the error
		// column, which DuckDB compresses as it chooses: a checkpoint of the payload
		// columns (zstd, see TestPayloadCompression) leaves under 1 MiB cached.
		b := benchBatch(1000, fmt.Sprintf("%032x", i))
		for _, s := range b.Spans {
			var text strings.Builder
			for range 40 {
				text.WriteString(rand.Text()) // 26 characters
			}
			s.ErrorInfo = &schema.ErrorInfo{Message: text.String()}
		}
		if err := w.Write(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	if n := cached(); n >= 4<<20 {
		t.Errorf("cached blocks of the file after an eviction: %d bytes, want < 4 MiB", n)
	}
	var limit string
	if err := w.DB().QueryRowContext(t.Context(), "SELECT current_setting('memory_limit')").Scan(&limit); err != nil {
		t.Fatal(err)
	}
	if want := "91.5 MiB"; limit != want {
		t.Errorf("memory_limit %q after the eviction, want %q (96MB)", limit, want)
	}
}

// TestCheckpointWhileAnotherTransactionRuns: writes checkpoint the file when its
// write-ahead log passes checkpoint_threshold even while another transaction is open
// (a background compaction, a query of the explorer). DuckDB does not checkpoint on
// the commit of a transaction that updated rows while another one is active: a write
// that reserved its seq numbers with an UPDATE never checkpointed during a
// compaction, and the log and the rows held in memory grew until it ended.
func TestCheckpointWhileAnotherTransactionRuns(t *testing.T) {
	w, path := openCheckpointing(t, "2MB")
	w.SetCompaction(1<<40, nil)
	w.SetCompactionAfter(0)
	write(t, w, benchBatch(10, strings.Repeat("0f", 16)))
	reader, err := w.DB().Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var n int64
	if _, err := reader.ExecContext(t.Context(), "BEGIN TRANSACTION"); err != nil {
		t.Fatal(err)
	}
	if err := reader.QueryRowContext(t.Context(), "SELECT count(*) FROM span_versions").Scan(&n); err != nil {
		t.Fatal(err)
	}
	defer reader.ExecContext(context.WithoutCancel(t.Context()), "ROLLBACK")
	walSize := func() int64 {
		st, err := os.Stat(path + ".wal")
		if err != nil {
			return 0
		}
		return st.Size()
	}
	var grew int64
	for i := range 20 {
		b := benchBatch(500, fmt.Sprintf("%032x", i+1))
		for _, s := range b.Spans {
			s.Output = jsontext.Value(fmt.Sprintf("%q", rand.Text()+strings.Repeat("x", 1000)))
		}
		write(t, w, b)
		size := walSize()
		if size < grew {
			return // checkpointed
		}
		grew = size
	}
	t.Fatalf("the write-ahead log grew to %d bytes over 20 writes of 500 spans while a read transaction was open; want a checkpoint at 2MB", grew)
}

// TestCompactedBlocksEvicted: the write after a background compaction evicts the
// blocks the compaction read, as after a checkpoint, and only once.
func TestCompactedBlocksEvicted(t *testing.T) {
	duckdb.SetEvictAbove(t, 0)
	w, _ := openCheckpointing(t, "1GB")
	w.SetCompaction(100, nil)
	w.SetCompactionAfter(0)
	if err := w.Write(t.Context(), benchBatch(200, strings.Repeat("c1", 16))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !w.CompactedSinceFlush() {
		if time.Now().After(deadline) {
			t.Fatal("no compaction ended within 30 s of a 200-span tail (every 100)")
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := w.Evictions()
	if err := w.Write(t.Context(), benchBatch(1, strings.Repeat("c2", 16))); err != nil {
		t.Fatal(err)
	}
	if got := w.Evictions(); got != before+1 {
		t.Errorf("evictions: %d after the write that followed a compaction, want %d", got, before+1)
	}
	if w.CompactedSinceFlush() {
		t.Error("the compaction is still pending after the write that evicted")
	}
}

func TestReopen(t *testing.T) {
	path := dbPath(t)
	for i := range 3 {
		cfg := duckdb.Config{Path: path, MemoryLimit: "256MB", Threads: 1}
		w, err := duckdb.Open(t.Context(), cfg)
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		if err := w.Write(t.Context(), &pipeline.Batch{Spans: []*schema.Span{span(fmt.Sprintf("%032x", i+1), "0000000000000001", 3)}}); err != nil {
			t.Fatalf("Write after open #%d: %v", i+1, err)
		}
		n, err := w.CountSpans(t.Context())
		if err != nil || n != int64(i+1) {
			t.Errorf("CountSpans after open #%d: got %d, %v, want %d", i+1, n, err, i+1)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	db, err := duckdb.OpenReadOnly(t.Context(), path)
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	defer db.Close()
	var rows, distinct int
	if err := db.QueryRowContext(t.Context(), "SELECT count(*), count(DISTINCT version) FROM spanpipe_migrations").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != distinct || rows < 1 {
		t.Errorf("spanpipe_migrations: %d rows for %d versions, want one row per version", rows, distinct)
	}
	var name string
	if err := db.QueryRowContext(t.Context(), "SELECT name FROM spanpipe_migrations WHERE version = 1").Scan(&name); err != nil || name != "0001_init" {
		t.Errorf("migration 1: got %q, %v, want 0001_init", name, err)
	}
}

// seq numbers span_versions rows once each, across the Writers of one file and across
// reopenings: two Writers of one process write versions of the same spans at once
// while compactions run, and a reopened file whose bookkeeping lags its rows (a
// process killed before a compaction recorded them) goes on after its last row.
// TestCompactionWaitsForAWriteInFlight covers the order of commits.
func TestSeqAcrossWritersAndReopens(t *testing.T) {
	path := dbPath(t)
	const spansPerBatch, batches = 40, 30
	ids := make([]string, spansPerBatch)
	for i := range ids {
		ids[i] = fmt.Sprintf("%032x", i+1)
	}
	w1, w2 := openWriter(t, path), openWriter(t, path)
	errs := make(chan error, 2)
	for n, w := range []*duckdb.Writer{w1, w2} {
		w.SetCompaction(100, nil)
		go func() {
			for b := range batches {
				batch := &pipeline.Batch{Strategy: pipeline.BatchWithUpdates}
				for _, id := range ids {
					batch.Spans = append(batch.Spans, span(id, "0000000000000001", uint64(2*b+n+1)))
				}
				if err := w.Write(t.Context(), batch); err != nil {
					errs <- fmt.Errorf("writer %d, batch %d: %w", n+1, b, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(stage string, db *sql.DB) (rows, maxSeq int64) {
		t.Helper()
		var distinct int64
		if err := db.QueryRowContext(t.Context(), "SELECT count(*), count(DISTINCT seq), max(seq) FROM span_versions").Scan(&rows, &distinct, &maxSeq); err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
		if rows != distinct {
			t.Fatalf("%s: span_versions has %d rows and %d distinct seq", stage, rows, distinct)
		}
		return rows, maxSeq
	}
	seqs("two writers", w1.DB())
	var newest int64
	if err := w1.DB().QueryRowContext(t.Context(), "SELECT min(version) FROM spans").Scan(&newest); err != nil || newest != 2*batches {
		t.Fatalf("oldest version in the spans view: %d, %v; want %d (every span's newest)", newest, err, 2*batches)
	}
	if err := errors.Join(w1.Close(), w2.Close()); err != nil {
		t.Fatal(err)
	}
	w := openWriter(t, path)
	rows, last := seqs("after close", w.DB())
	if rows != spansPerBatch {
		t.Fatalf("span_versions has %d rows after the writers closed, want %d (one per span)", rows, spansPerBatch)
	}
	if _, err := w.DB().ExecContext(t.Context(), `UPDATE spanpipe_span_state SET next_seq = 1;
		UPDATE spanpipe_span_compaction SET compacted_seq = 0`); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openWriter(t, path)
	write(t, w, &pipeline.Batch{Spans: []*schema.Span{span(strings.Repeat("ab", 16), "0000000000000001", 1)}})
	var first int64
	if err := w.DB().QueryRowContext(t.Context(), "SELECT min(seq) FROM span_versions WHERE version = 1").Scan(&first); err != nil {
		t.Fatal(err)
	}
	if first != last+1 {
		t.Errorf("the first row written after reopening a file whose next_seq is 1 has seq %d, want %d (after its last row)", first, last+1)
	}
	seqs("reopened", w.DB())
}

func TestInMemory(t *testing.T) {
	w := openWriter(t, ":memory:")
	write(t, w, fullBatch(strings.Repeat("12", 16)))
	if n, err := w.CountSpans(t.Context()); err != nil || n != 3 {
		t.Errorf("CountSpans: got %d, %v, want 3", n, err)
	}
}

func TestCancelledWriteIsRetryable(t *testing.T) {
	w := openWriter(t, dbPath(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b := fullBatch(strings.Repeat("56", 16))
	err := w.Write(ctx, b)
	if err == nil {
		t.Fatal("Write with a cancelled context: got nil error")
	}
	if errors.Is(err, pipeline.ErrPermanent) {
		t.Errorf("Write with a cancelled context: got permanent error %v", err)
	}
	// The write connection is still usable.
	write(t, w, b)
	if n, _ := w.CountSpans(t.Context()); n != 3 {
		t.Errorf("CountSpans: got %d, want 3", n)
	}
}

// prepareFile creates a database file with the given statements run in it.
func prepareFile(t *testing.T, stmts string) string {
	t.Helper()
	path := dbPath(t)
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.ExecContext(t.Context(), stmts)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("prepare %s: %v", path, err)
	}
	return path
}

const recordInit = `
	CREATE TABLE spanpipe_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL);
	INSERT INTO spanpipe_migrations VALUES (1, '0001_init', TIMESTAMP '2026-01-01');`

func TestOpenSchemaMismatch(t *testing.T) {
	// Tables without the columns the writer expects, with the migration recorded as
	// applied (as after a hand edit or a bad downgrade): Open fails rather than the
	// first Write.
	path := prepareFile(t, recordInit+`
		INSERT INTO spanpipe_migrations VALUES (2, '0002_rank_and_newest', TIMESTAMP '2026-01-01'),
			(5, '0005_span_versions', TIMESTAMP '2026-01-01'), (8, '0008_compaction_mark', TIMESTAMP '2026-01-01'),
			(9, '0009_superseded_semi_join', TIMESTAMP '2026-01-01'), (10, '0010_span_key_hash', TIMESTAMP '2026-01-01');
		CREATE TABLE span_versions (trace_id VARCHAR, span_id VARCHAR);`)
	cfg := duckdb.Config{Path: path}
	w, err := duckdb.Open(t.Context(), cfg)
	if err == nil {
		w.Close()
		t.Fatal("Open of a file with mismatched tables: got nil error")
	}
	if !strings.Contains(err.Error(), "duckdb: prepare spans table: ") {
		t.Errorf("error %q does not name the operation", err)
	}
}

func TestConstraintErrorIsPermanent(t *testing.T) {
	// The real schema plus a constraint the batch violates: retrying cannot help.
	var ddl string
	for _, name := range []string{"0001_init", "0002_rank_and_newest", "0005_span_versions"} {
		b, err := os.ReadFile("migrations/" + name + ".sql")
		if err != nil {
			t.Fatal(err)
		}
		ddl += string(b)
	}
	const col = "span_type                VARCHAR   NOT NULL,"
	if strings.Count(ddl, col) != 2 {
		t.Fatalf("migrations 0001 and 0005 do not both have the line %q", col)
	}
	// The constraint goes on span_versions (0005), where the writer appends.
	at := strings.LastIndex(ddl, col)
	ddl = ddl[:at] + "span_type VARCHAR NOT NULL CHECK (span_type <> 'agent_run')," + ddl[at+len(col):]
	path := prepareFile(t, recordInit+`
		INSERT INTO spanpipe_migrations VALUES (2, '0002_rank_and_newest', TIMESTAMP '2026-01-01'),
			(5, '0005_span_versions', TIMESTAMP '2026-01-01');`+ddl)
	w := openWriter(t, path)
	err := w.Write(t.Context(), fullBatch(strings.Repeat("78", 16)))
	if !errors.Is(err, pipeline.ErrPermanent) {
		t.Fatalf("Write violating a constraint: got %v, want a permanent error", err)
	}
	if !strings.HasPrefix(err.Error(), "duckdb: insert spans batch of 3: ") {
		t.Errorf("error %q does not name the operation", err)
	}
	// Nothing of the batch was stored, and the writer still works.
	zero := map[string]int64{"spans": 0, "logs": 0, "metrics": 0, "scores": 0, "feedback": 0}
	if got := counts(t, w); !reflect.DeepEqual(got, zero) {
		t.Errorf("row counts after a failed write: got %v, want %v", got, zero)
	}
	b := fullBatch(strings.Repeat("79", 16))
	b.Spans = nil
	write(t, w, b)
	if n, _ := w.CountRows(t.Context(), "logs"); n != 2 {
		t.Errorf("logs after recovery: got %d, want 2", n)
	}
}

func TestWriteAfterClose(t *testing.T) {
	cfg := duckdb.DefaultConfig()
	cfg.Path = dbPath(t)
	w, err := duckdb.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.Write(t.Context(), fullBatch("")); !errors.Is(err, duckdb.ErrClosed) {
		t.Errorf("Write after Close: got %v, want ErrClosed", err)
	}
}

func TestNameAndCapabilities(t *testing.T) {
	w := openWriter(t, ":memory:")
	if got := w.Name(); got != "duckdb" {
		t.Errorf("Name: got %q, want duckdb", got)
	}
	c := w.Capabilities()
	if c.Preferred != pipeline.BatchWithUpdates {
		t.Errorf("Preferred: got %q, want %q", c.Preferred, pipeline.BatchWithUpdates)
	}
	for _, s := range []pipeline.Strategy{pipeline.Realtime, pipeline.BatchWithUpdates, pipeline.InsertOnly} {
		if !c.Supports(s) {
			t.Errorf("Supports(%q): got false, want true", s)
		}
	}
	for _, s := range schema.AllSignals {
		if !c.Stores(s) {
			t.Errorf("Stores(%q): got false, want true", s)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  duckdb.Config
		want []string // substrings of the error, one per problem; none means valid
	}{
		{name: "default", cfg: duckdb.DefaultConfig()},
		{name: "memory", cfg: duckdb.Config{Path: ":memory:", MemoryLimit: "1GB", Threads: 4}},
		{name: "sizes", cfg: duckdb.Config{Path: "x.duckdb", MemoryLimit: "512 MiB"}},
		{name: "empty path", cfg: duckdb.Config{}, want: []string{"path must not be empty"}},
		{name: "dsn in path", cfg: duckdb.Config{Path: "x.duckdb?threads=1"}, want: []string{"must not contain '?'"}},
		{name: "smallest block size", cfg: duckdb.Config{Path: "x.duckdb", BlockSize: 16384}},
		{name: "block size not a power of two", cfg: duckdb.Config{Path: "x.duckdb", BlockSize: 65535}, want: []string{"block_size must be a power of two"}},
		{name: "block size too small", cfg: duckdb.Config{Path: "x.duckdb", BlockSize: 8192}, want: []string{"block_size must be a power of two from 16384 to 262144"}},
		{name: "block size too large", cfg: duckdb.Config{Path: "x.duckdb", BlockSize: 524288}, want: []string{"got 524288"}},
		{name: "negative block size", cfg: duckdb.Config{Path: "x.duckdb", BlockSize: -65536}, want: []string{"got -65536"}},
		{
			name: "everything wrong",
			cfg:  duckdb.Config{Path: " ", MemoryLimit: "lots", CheckpointThreshold: "often", Threads: -1},
			want: []string{"path must not be empty", `memory_limit "lots"`, `checkpoint_threshold "often"`, "threads must be >= 0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("Validate(%+v): got %v, want nil", tt.cfg, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%+v): got nil, want %d problems", tt.cfg, len(tt.want))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate(%+v) = %q, want it to contain %q", tt.cfg, err, w)
				}
			}
			if got := strings.Count(err.Error(), "\n") + 1; got != len(tt.want) {
				t.Errorf("Validate(%+v) reported %d problems, want %d: %q", tt.cfg, got, len(tt.want), err)
			}
		})
	}
	if _, err := duckdb.Open(t.Context(), duckdb.Config{}); err == nil {
		t.Error("Open with an invalid config: got nil error")
	}
}

// TestOpenFileOfANewerVersion: a file that a newer spanpipe migrated further than
// this binary knows is refused at Open, naming the migration, rather than taking
// writes that would all be dead-lettered (the table has a column this one does not
// fill).
func TestOpenFileOfANewerVersion(t *testing.T) {
	path := dbPath(t)
	w := openWriter(t, path)
	if _, err := w.DB().ExecContext(t.Context(),
		"INSERT INTO spanpipe_migrations VALUES (9999, '9999_from_the_future', TIMESTAMP '2027-01-01')"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w2, err := duckdb.Open(t.Context(), duckdb.Config{Path: path})
	if err == nil {
		w2.Close()
		t.Fatal("Open of a file with an unknown newer migration: got nil error")
	}
	if !strings.Contains(err.Error(), "9999_from_the_future") || !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %q does not name the newer migration", err)
	}
}
