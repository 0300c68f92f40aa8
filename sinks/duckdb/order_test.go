package duckdb_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

// snapshot is a span of version 5 as sent with event ev; its name says which
// snapshot the store kept.
func snapshot(traceID string, ev schema.EventType) *schema.Span {
	s := span(traceID, "0000000000000005", 5)
	s.Event = ev
	s.Name = string(ev)
	return s
}

// TestRankBreaksVersionTies: snapshots of one version are ordered by their event
// (ended > updated > started), whatever the arrival order, across batches and
// within one.
func TestRankBreaksVersionTies(t *testing.T) {
	const (
		st = schema.SpanStarted
		up = schema.SpanUpdated
		en = schema.SpanEnded
	)
	tests := []struct {
		name    string
		batches [][]schema.EventType
		want    schema.EventType
	}{
		{"ended, then started", [][]schema.EventType{{en}, {st}}, en},
		{"ended, then updated", [][]schema.EventType{{en}, {up}}, en},
		{"updated, then started", [][]schema.EventType{{up}, {st}}, up},
		{"started, then ended", [][]schema.EventType{{st}, {en}}, en},
		{"ended twice", [][]schema.EventType{{en}, {en}}, en},
		{"one batch: ended before started", [][]schema.EventType{{en, st, up}}, en},
		{"one batch: updated last", [][]schema.EventType{{st, en, up}}, en},
	}
	w := openWriter(t, dbPath(t))
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			traceID := fmt.Sprintf("%032x", i+500)
			for _, events := range tt.batches {
				b := &pipeline.Batch{Strategy: pipeline.BatchWithUpdates}
				for _, ev := range events {
					b.Spans = append(b.Spans, snapshot(traceID, ev))
				}
				write(t, w, b)
			}
			got, err := w.Span(t.Context(), traceID, "0000000000000005")
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != string(tt.want) {
				t.Errorf("stored the %s snapshot, want the %s one", got.Name, tt.want)
			}
		})
	}
	// A higher version still wins over a higher rank.
	traceID := strings.Repeat("5a", 16)
	write(t, w, &pipeline.Batch{Spans: []*schema.Span{snapshot(traceID, en)}})
	newer := snapshot(traceID, st)
	newer.Version, newer.Name = 6, "v6 started"
	write(t, w, &pipeline.Batch{Spans: []*schema.Span{newer}})
	if got, err := w.Span(t.Context(), traceID, newer.SpanID); err != nil || got.Name != "v6 started" {
		t.Errorf("after v5 ended then v6 started: got %v, %v; want v6 started", got, err)
	}
}

// TestNewestScoreAndFeedbackWin: a score or feedback replaces the stored one of its
// id only when its timestamp is equal or later, so that replaying old records
// (spanpipe replay, a rewound group) never overwrites a newer judgement.
func TestNewestScoreAndFeedbackWin(t *testing.T) {
	score := func(id string, sec int, v float64) *schema.Score {
		return &schema.Score{ScoreID: id, Timestamp: t0.Add(secs(sec)), ScorerID: "relevance", Score: v}
	}
	feedback := func(id string, sec int, v string) *schema.Feedback {
		return &schema.Feedback{FeedbackID: id, Timestamp: t0.Add(secs(sec)), FeedbackType: "rating", Value: jsontext.Value(v)}
	}
	tests := []struct {
		name    string
		batches [][]int // timestamps (seconds after t0) written, the value is the timestamp
		want    int
	}{
		{"newer, then replayed older", [][]int{{10}, {5}}, 10},
		{"older, then newer", [][]int{{5}, {10}}, 10},
		{"same timestamp again: last delivered", [][]int{{10}, {10}}, 10},
		{"one batch, newer first", [][]int{{10, 5}}, 10},
		{"one batch, newer last", [][]int{{5, 10, 7}}, 10},
	}
	w := openWriter(t, dbPath(t))
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("id-%d", i)
			for _, batch := range tt.batches {
				b := &pipeline.Batch{}
				for _, sec := range batch {
					b.Scores = append(b.Scores, score(id, sec, float64(sec)))
					b.Feedback = append(b.Feedback, feedback(id, sec, fmt.Sprint(sec)))
				}
				write(t, w, b)
			}
			w2 := w.DB()
			var s, f float64
			if err := w2.QueryRowContext(t.Context(), "SELECT score FROM scores WHERE score_id = $1", id).Scan(&s); err != nil {
				t.Fatal(err)
			}
			if err := w2.QueryRowContext(t.Context(), "SELECT value_number FROM feedback WHERE feedback_id = $1", id).Scan(&f); err != nil {
				t.Fatal(err)
			}
			if s != float64(tt.want) || f != float64(tt.want) {
				t.Errorf("stored score %v, feedback %v; want the record of t0+%ds", s, f, tt.want)
			}
		})
	}
}

// TestMigrationRankAndNewest opens a file written by the 0001 schema: the migration
// gives existing spans a rank from what they hold, stores {} for metrics without
// labels and feedback values as text, and an existing ended row then wins over a
// started snapshot of its version.
func TestMigrationRankAndNewest(t *testing.T) {
	ddl, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	const spanCols = `(trace_id, span_id, version, name, span_type, started_at, ended_at, is_event, is_root_span, is_internal, created_at, updated_at)`
	path := prepareFile(t, recordInit+string(ddl)+`
		INSERT INTO spans `+spanCols+` VALUES
			('`+strings.Repeat("71", 16)+`', '0000000000000001', 3, 'old ended', 'agent_run', TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-02', false, true, false, now(), now()),
			('`+strings.Repeat("71", 16)+`', '0000000000000002', 2, 'old running', 'agent_run', TIMESTAMP '2026-01-01', NULL, false, true, false, now(), now());
		INSERT INTO metrics (metric_id, "timestamp", name, value, labels, created_at) VALUES ('m', TIMESTAMP '2026-01-01', 'x', 1, NULL, now());
		INSERT INTO feedback (feedback_id, "timestamp", feedback_type, value, value_string, created_at, updated_at)
			VALUES ('f', TIMESTAMP '2026-01-01', 'thumbs', '"up"', 'up', now(), now());`)
	w := openWriter(t, path)

	started := span(strings.Repeat("71", 16), "0000000000000001", 3)
	started.EndTime, started.Event, started.Name = t0.Add(secs(1)), schema.SpanStarted, "new started"
	write(t, w, &pipeline.Batch{Spans: []*schema.Span{started}})
	if got, err := w.Span(t.Context(), started.TraceID, started.SpanID); err != nil || got.Name != "old ended" {
		t.Errorf("stored ended row vs started snapshot of its version: got %v, %v; want old ended kept", got, err)
	}
	updated := span(strings.Repeat("71", 16), "0000000000000002", 2)
	updated.Event, updated.Name = schema.SpanUpdated, "new updated"
	write(t, w, &pipeline.Batch{Spans: []*schema.Span{updated}})
	if got, err := w.Span(t.Context(), updated.TraceID, updated.SpanID); err != nil || got.Name != "new updated" {
		t.Errorf("stored running row vs updated snapshot of its version: got %v, %v; want new updated", got, err)
	}

	db := w.DB()
	// The snapshots from before the migration carry the key_hash the writer computes,
	// so compaction finds them: it deletes the new started snapshot that the stored
	// ended row supersedes, and the stored running row that the updated one does.
	if deleted, err := w.Compact(t.Context()); err != nil || deleted != 2 {
		t.Errorf("compaction: deleted %d rows, %v; want 2", deleted, err)
	}
	for q, want := range map[string]string{
		`SELECT labels FROM metrics WHERE metric_id = 'm'`:   `{}`,
		`SELECT value FROM feedback WHERE feedback_id = 'f'`: `up`,
	} {
		var got string
		if err := db.QueryRowContext(t.Context(), q).Scan(&got); err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", q, got, err, want)
		}
	}
}

func secs(n int) time.Duration { return time.Duration(n) * time.Second }

// TestCompactionKeepsTheNewest: spans are stored as versions and compacted (on Close
// here; every 100k rows while writing). Before and after compaction, and after a
// redelivery of older and equal snapshots on top of a compacted file, readers see
// one row per span, the newest; compaction leaves exactly that row in
// span_versions.
func TestCompactionKeepsTheNewest(t *testing.T) {
	path := dbPath(t)
	traceID := strings.Repeat("c0", 16)
	ids := []string{"0000000000000001", "0000000000000002", "0000000000000003"}
	writeAll := func(w interface {
		Write(context.Context, *pipeline.Batch) error
	}, versions ...uint64) {
		for _, v := range versions {
			b := &pipeline.Batch{Strategy: pipeline.BatchWithUpdates}
			for _, id := range ids {
				b.Spans = append(b.Spans, span(traceID, id, v))
			}
			if err := w.Write(t.Context(), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(w *duckdb.Writer, stage string, want uint64) {
		t.Helper()
		var rows, distinct, maxVersion int64
		if err := w.DB().QueryRowContext(t.Context(),
			`SELECT count(*), count(DISTINCT (trace_id, span_id)), max(version) FROM spans`).Scan(&rows, &distinct, &maxVersion); err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
		if rows != int64(len(ids)) || distinct != rows {
			t.Errorf("%s: spans has %d rows for %d spans, want %d and %d", stage, rows, distinct, len(ids), len(ids))
		}
		for _, id := range ids {
			got, err := w.Span(t.Context(), traceID, id)
			if err != nil || got.Version != want {
				t.Errorf("%s: span %s: got %v, %v, want version %d", stage, id, got, err, want)
			}
		}
	}
	stored := func(stage string) {
		t.Helper()
		db, err := duckdb.OpenReadOnly(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int64
		if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM span_versions`).Scan(&n); err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
		if n != int64(len(ids)) {
			t.Errorf("%s: span_versions holds %d rows, want %d (one per span)", stage, n, len(ids))
		}
	}

	w := openWriter(t, path)
	writeAll(w, 1, 3, 2, 3)
	check(w, "before compaction", 3)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	stored("after compaction")

	w = openWriter(t, path)
	check(w, "reopened", 3)
	writeAll(w, 2, 1, 3) // redelivered: older, then equal
	check(w, "redelivered onto a compacted file", 3)
	writeAll(w, 4)
	check(w, "a newer version", 4)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	stored("after the second compaction")
}

// TestSpansColumns: the spans view has the columns, in the order, that the spans
// table had before it became a view (0001 and 0002), for readers that select *.
func TestSpansColumns(t *testing.T) {
	w := openWriter(t, dbPath(t))
	rows, err := w.DB().QueryContext(t.Context(), `SELECT * FROM spans LIMIT 0`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rows.Columns()
	rows.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(`trace_id span_id version parent_span_id external_parent_span_id name span_type
		entity_type entity_id entity_name entity_version_id parent_entity_type parent_entity_id parent_entity_name
		parent_entity_version_id root_entity_type root_entity_id root_entity_name root_entity_version_id user_id
		organization_id resource_id run_id session_id thread_id request_id environment source service_name
		experiment_id tags started_at ended_at attributes metadata input output error request_context is_event
		is_root_span is_internal created_at updated_at rank`)
	if !slices.Equal(got, want) {
		t.Errorf("spans columns:\ngot  %v\nwant %v", got, want)
	}
}
