package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/schema"
)

// The read helpers serve the CLI and tests. They read through FINAL, so that each
// span (and each event id) counts once, with its newest version, whether or not the
// server has merged the parts yet. In cluster mode they read the Distributed tables.

// readableTables are the tables CountRows accepts.
var readableTables = []string{"spans", "trace_roots", "logs", "metrics", "scores", "feedback"}

func (p ddlParams) countQuery(table string) string {
	return "SELECT count() FROM " + p.qualified(table) + " FINAL"
}

// traceCols are the columns Trace reads, in scanTrace order: the span columns
// without metadata_search, which is derived from metadata, and rank, which orders
// snapshots and is no field of a span.
func traceCols() []string {
	var out []string
	for _, c := range spansTable.cols {
		if c.name != "metadata_search" && c.name != "rank" {
			out = append(out, c.name)
		}
	}
	return out
}

func (p ddlParams) traceQuery() string {
	return "SELECT " + strings.Join(traceCols(), ", ") + " FROM " + p.qualified("spans") +
		" FINAL WHERE trace_id = {trace_id:String} ORDER BY started_at, span_id"
}

func (p ddlParams) recentTracesQuery() string {
	return "SELECT trace_id, span_id, version, name, span_type, service_name, environment, entity_type, " +
		"entity_name, user_id, started_at, ended_at, has_error, input_preview FROM " + p.qualified("trace_roots") +
		" FINAL ORDER BY started_at DESC, trace_id LIMIT {limit:UInt32}"
}

// CountSpans returns the number of distinct spans stored.
func (w *Writer) CountSpans(ctx context.Context) (int64, error) {
	return w.CountRows(ctx, "spans")
}

// CountRows returns the number of distinct rows of table, which must be one of spans,
// trace_roots, logs, metrics, scores or feedback.
func (w *Writer) CountRows(ctx context.Context, table string) (int64, error) {
	if !slices.Contains(readableTables, table) {
		return 0, fmt.Errorf("clickhouse: count rows: unknown table %q (want one of %s)", table, strings.Join(readableTables, ", "))
	}
	var n uint64
	if err := w.conn.QueryRow(ctx, w.p.countQuery(table)).Scan(&n); err != nil {
		return 0, fmt.Errorf("clickhouse: count rows of %s: %w", table, err)
	}
	return int64(n), nil
}

// Trace returns the spans of a trace, newest version of each, ordered by start time
// and span id; an unknown trace yields no spans and no error. Empty strings and
// payloads come back as zero values; times are in UTC with nanosecond precision.
func (w *Writer) Trace(ctx context.Context, traceID string) ([]*schema.Span, error) {
	ctx = ch.Context(ctx, ch.WithParameters(ch.Parameters{"trace_id": traceID}))
	rows, err := w.conn.Query(ctx, w.p.traceQuery())
	if err != nil {
		return nil, fmt.Errorf("clickhouse: read trace %s: %w", traceID, err)
	}
	defer rows.Close()
	var out []*schema.Span
	for rows.Next() {
		s, err := scanSpan(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("clickhouse: read trace %s: %w", traceID, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: read trace %s: %w", traceID, err)
	}
	return out, nil
}

func scanSpan(scan func(dest ...any) error) (*schema.Span, error) {
	var (
		s        schema.Span
		spanType string
		corr     [23]string
		tags     []string
		ended    *time.Time
		payloads [6]string // attributes, metadata, input, output, error, request_context
	)
	dest := []any{&s.TraceID, &s.SpanID, &s.Version, &s.ParentSpanID, &s.ExternalParentSpanID, &s.Name, &spanType}
	for i := range corr {
		dest = append(dest, &corr[i])
	}
	dest = append(dest, &tags, &s.StartTime, &ended, &payloads[0], &payloads[1], &payloads[2], &payloads[3],
		&payloads[4], &payloads[5], &s.IsEvent, &s.IsRootSpan, &s.IsInternal)
	if err := scan(dest...); err != nil {
		return nil, err
	}
	s.Type = schema.SpanType(spanType)
	c := &s.Correlation
	for i, p := range []*string{
		&c.EntityType, &c.EntityID, &c.EntityName, &c.EntityVersionID,
		&c.ParentEntityType, &c.ParentEntityID, &c.ParentEntityName, &c.ParentEntityVersionID,
		&c.RootEntityType, &c.RootEntityID, &c.RootEntityName, &c.RootEntityVersionID,
		&c.UserID, &c.OrganizationID, &c.ResourceID, &c.RunID, &c.SessionID, &c.ThreadID,
		&c.RequestID, &c.Environment, &c.Source, &c.ServiceName, &c.ExperimentID,
	} {
		*p = corr[i]
	}
	if len(tags) > 0 {
		c.Tags = tags
	}
	s.StartTime = s.StartTime.UTC()
	if ended != nil {
		s.EndTime = ended.UTC()
	}
	s.Attributes, s.Metadata = value(payloads[0]), value(payloads[1])
	s.Input, s.Output = value(payloads[2]), value(payloads[3])
	if payloads[4] != "" {
		s.ErrorInfo = new(schema.ErrorInfo)
		if err := json.Unmarshal([]byte(payloads[4]), s.ErrorInfo); err != nil {
			return nil, fmt.Errorf("span %s/%s: decode error column: %w", s.TraceID, s.SpanID, err)
		}
	}
	s.RequestContext = value(payloads[5])
	return &s, nil
}

func value(s string) jsontext.Value {
	if s == "" {
		return nil
	}
	return jsontext.Value(s)
}

// TraceSummary is one row of [Writer.RecentTraces]: the newest snapshot of a trace's
// root span, without its payloads.
type TraceSummary struct {
	TraceID     string
	SpanID      string
	Version     uint64
	Name        string
	SpanType    schema.SpanType
	ServiceName string
	Environment string
	EntityType  string
	EntityName  string
	UserID      string
	StartTime   time.Time
	// EndTime is zero while the root span runs.
	EndTime  time.Time
	HasError bool
	// InputPreview is the first 512 characters of the root span's input JSON.
	InputPreview string
}

// RecentTraces returns the limit most recently started traces, newest first, from
// trace_roots.
func (w *Writer) RecentTraces(ctx context.Context, limit int) ([]TraceSummary, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("clickhouse: recent traces: limit must be > 0, got %d", limit)
	}
	ctx = ch.Context(ctx, ch.WithParameters(ch.Parameters{"limit": fmt.Sprint(limit)}))
	rows, err := w.conn.Query(ctx, w.p.recentTracesQuery())
	if err != nil {
		return nil, fmt.Errorf("clickhouse: recent traces: %w", err)
	}
	defer rows.Close()
	var out []TraceSummary
	for rows.Next() {
		var (
			t        TraceSummary
			spanType string
			ended    *time.Time
		)
		if err := rows.Scan(&t.TraceID, &t.SpanID, &t.Version, &t.Name, &spanType, &t.ServiceName, &t.Environment,
			&t.EntityType, &t.EntityName, &t.UserID, &t.StartTime, &ended, &t.HasError, &t.InputPreview); err != nil {
			return nil, fmt.Errorf("clickhouse: recent traces: %w", err)
		}
		t.SpanType = schema.SpanType(spanType)
		t.StartTime = t.StartTime.UTC()
		if ended != nil {
			t.EndTime = ended.UTC()
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: recent traces: %w", err)
	}
	return out, nil
}
