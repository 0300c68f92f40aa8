package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/query"
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

// Reader implements query.Reader on ClickHouse. Traces are listed from trace_roots
// (root spans ordered by start); spans are read with FINAL. Every value is a query
// parameter ({name:Type}); the server user may be readonly.
type Reader struct {
	conn driver.Conn
	p    ddlParams
}

// Reader returns the query side of w, on w's connection pool.
func (w *Writer) Reader() *Reader { return &Reader{conn: w.conn, p: w.p} }

// chArgs collects the parameters of one statement.
type chArgs struct{ p ch.Parameters }

func (a *chArgs) add(typ, v string) string {
	if a.p == nil {
		a.p = ch.Parameters{}
	}
	name := "p" + strconv.Itoa(len(a.p))
	a.p[name] = v
	return "{" + name + ":" + typ + "}"
}

func (a *chArgs) micros(t time.Time) string {
	return "fromUnixTimestamp64Micro(" + a.add("Int64", strconv.FormatInt(t.UnixMicro(), 10)) + ", 'UTC')"
}

// spanSkew is how long before its root a span of the trace may start (clocks of
// different services disagree), as in duckdb.Reader.ListTraces.
const spanSkew = time.Hour

// listSQL is ListTraces' first statement: the page of root spans.
func (p ddlParams) listSQL(f query.TraceFilter) (string, ch.Parameters) {
	var a chArgs
	where := []string{"true"} // root events are traces too, as in DuckDB
	if !f.From.IsZero() {
		where = append(where, "started_at >= "+a.micros(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "started_at < "+a.micros(f.To))
	}
	if c := f.Cursor; c != nil {
		t := a.micros(c.Start)
		where = append(where, fmt.Sprintf("(started_at < %s OR (started_at = %s AND trace_id < %s))", t, t, a.add("String", c.TraceID)))
	}
	for _, kv := range []struct{ col, v string }{{"service_name", f.Service}, {"environment", f.Environment},
		{"entity_type", f.EntityType}, {"entity_name", f.EntityName}, {"user_id", f.UserID}, {"session_id", f.SessionID},
		{"thread_id", f.ThreadID}, {"resource_id", f.ResourceID}, {"run_id", f.RunID}} {
		if kv.v != "" {
			where = append(where, kv.col+" = "+a.add("String", kv.v))
		}
	}
	for _, t := range f.Tags {
		where = append(where, "has(tags, "+a.add("String", t)+")")
	}
	for _, kv := range f.Metadata {
		where = append(where, fmt.Sprintf("metadata_search[%s] = %s", a.add("String", kv.Key), a.add("String", kv.Value)))
	}
	anySpan := func(cond string) string {
		q := "trace_id IN (SELECT trace_id FROM " + p.qualified("spans") + " WHERE " + cond
		if !f.From.IsZero() {
			q += " AND started_at >= " + a.micros(f.From.Add(-spanSkew))
		}
		return q + ")"
	}
	if f.SpanType != "" {
		where = append(where, anySpan("span_type = "+a.add("String", f.SpanType)))
	}
	if f.Search != "" {
		where = append(where, anySpan("positionCaseInsensitiveUTF8(name, "+a.add("String", f.Search)+") > 0"))
	}
	switch f.Status {
	case query.StatusError:
		where = append(where, anySpan("error != ''"))
	case query.StatusRunning:
		where = append(where, "ended_at IS NULL", "NOT "+anySpan("error != ''"))
	case query.StatusOK:
		where = append(where, "ended_at IS NOT NULL", "NOT "+anySpan("error != ''"))
	}
	return "SELECT trace_id, span_id, name, span_type, entity_type, entity_name, service_name, environment, user_id, " +
		"started_at, ended_at FROM " + p.qualified("trace_roots") + " FINAL WHERE " + strings.Join(where, " AND ") +
		" ORDER BY started_at DESC, trace_id DESC LIMIT " + a.add("UInt32", strconv.Itoa(f.Limit+1)), a.p
}

// countsSQL is ListTraces' second statement: span and error counts of the page's
// traces, through the primary key.
func (p ddlParams) countsSQL(ids []string) (string, ch.Parameters) {
	var a chArgs
	return "SELECT trace_id, count(), countIf(error != '') FROM " + p.qualified("spans") + " FINAL WHERE trace_id IN " +
		a.add("Array(String)", arrayLiteral(ids)) + " GROUP BY trace_id", a.p
}

// arrayLiteral renders strings as a ClickHouse array literal, the text form of an
// Array(String) parameter.
func arrayLiteral(ss []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('\'')
		b.WriteString(strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s))
		b.WriteByte('\'')
	}
	b.WriteByte(']')
	return b.String()
}

// ListTraces returns a page of traces, newest root span first; see
// duckdb.Reader.ListTraces for what each filter matches.
func (r *Reader) ListTraces(ctx context.Context, f query.TraceFilter) (query.TracePage, error) {
	q, params := r.p.listSQL(f)
	rows, err := r.conn.Query(ch.Context(ctx, ch.WithParameters(params)), q)
	if err != nil {
		return query.TracePage{}, fmt.Errorf("clickhouse: list traces: %w", err)
	}
	page := query.TracePage{Traces: []query.TraceSummary{}}
	for rows.Next() {
		var (
			t     query.TraceSummary
			ended *time.Time
		)
		if err := rows.Scan(&t.TraceID, &t.RootSpanID, &t.Name, &t.SpanType, &t.EntityType, &t.EntityName,
			&t.ServiceName, &t.Environment, &t.UserID, &t.StartedAt, &ended); err != nil {
			rows.Close()
			return query.TracePage{}, fmt.Errorf("clickhouse: list traces: %w", err)
		}
		t.StartedAt = t.StartedAt.UTC()
		if ended != nil {
			e := ended.UTC()
			t.EndedAt = &e
		}
		page.Traces = append(page.Traces, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return query.TracePage{}, fmt.Errorf("clickhouse: list traces: %w", err)
	}
	page.Trim(f.Limit)
	if len(page.Traces) == 0 {
		return page, nil
	}
	ids := make([]string, len(page.Traces))
	for i, t := range page.Traces {
		ids[i] = t.TraceID
	}
	q, params = r.p.countsSQL(ids)
	rows, err = r.conn.Query(ch.Context(ctx, ch.WithParameters(params)), q)
	if err != nil {
		return query.TracePage{}, fmt.Errorf("clickhouse: list traces: counts: %w", err)
	}
	defer rows.Close()
	counts := map[string][2]uint64{}
	for rows.Next() {
		var id string
		var n, e uint64
		if err := rows.Scan(&id, &n, &e); err != nil {
			return query.TracePage{}, fmt.Errorf("clickhouse: list traces: counts: %w", err)
		}
		counts[id] = [2]uint64{n, e}
	}
	if err := rows.Err(); err != nil {
		return query.TracePage{}, fmt.Errorf("clickhouse: list traces: counts: %w", err)
	}
	for i := range page.Traces {
		t := &page.Traces[i]
		c := counts[t.TraceID]
		t.SpanCount, t.ErrorCount = int(c[0]), int(c[1])
		t.Finish()
	}
	return page, nil
}

// traceSpansSQL reads a trace's spans without their payloads.
func (p ddlParams) traceSpansSQL(traceID string) (string, ch.Parameters) {
	var a chArgs
	return "SELECT span_id, parent_span_id, name, span_type, version, entity_type, entity_name, started_at, ended_at, " +
		"error, is_event, is_root_span FROM " + p.qualified("spans") + " FINAL WHERE trace_id = " + a.add("String", traceID) +
		" ORDER BY started_at, span_id", a.p
}

// TraceSpans returns the spans of a trace without their payloads (errors included).
func (r *Reader) TraceSpans(ctx context.Context, traceID string) ([]*schema.Span, error) {
	q, params := r.p.traceSpansSQL(traceID)
	rows, err := r.conn.Query(ch.Context(ctx, ch.WithParameters(params)), q)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: read trace %s: %w", traceID, err)
	}
	defer rows.Close()
	var out []*schema.Span
	for rows.Next() {
		s := &schema.Span{TraceID: traceID}
		var (
			typ, errJS string
			ended      *time.Time
		)
		if err := rows.Scan(&s.SpanID, &s.ParentSpanID, &s.Name, &typ, &s.Version, &s.EntityType, &s.EntityName,
			&s.StartTime, &ended, &errJS, &s.IsEvent, &s.IsRootSpan); err != nil {
			return nil, fmt.Errorf("clickhouse: read trace %s: %w", traceID, err)
		}
		s.Type = schema.SpanType(typ)
		s.StartTime = s.StartTime.UTC()
		if ended != nil {
			s.EndTime = ended.UTC()
		}
		if errJS != "" {
			s.ErrorInfo = new(schema.ErrorInfo)
			if err := json.Unmarshal([]byte(errJS), s.ErrorInfo); err != nil {
				s.ErrorInfo.Message = errJS
			}
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: read trace %s: %w", traceID, err)
	}
	return out, nil
}

func (p ddlParams) spanSQL(traceID, spanID string) (string, ch.Parameters) {
	var a chArgs
	return "SELECT " + strings.Join(traceCols(), ", ") + " FROM " + p.qualified("spans") + " FINAL WHERE trace_id = " +
		a.add("String", traceID) + " AND span_id = " + a.add("String", spanID), a.p
}

// Span returns one span with its payloads, or nil when it is unknown.
func (r *Reader) Span(ctx context.Context, traceID, spanID string) (*schema.Span, error) {
	q, params := r.p.spanSQL(traceID, spanID)
	rows, err := r.conn.Query(ch.Context(ctx, ch.WithParameters(params)), q)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: read span %s/%s: %w", traceID, spanID, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("clickhouse: read span %s/%s: %w", traceID, spanID, err)
		}
		return nil, nil
	}
	s, err := scanSpan(rows.Scan)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: read span %s/%s: %w", traceID, spanID, err)
	}
	return s, nil
}

// statsSQL returns Stats' three statements: counts per bucket, durations per entity,
// usage and cost per model.
func (p ddlParams) statsSQL(q query.StatsQuery) (series, durations, models string, params ch.Parameters) {
	var a chArgs
	where := func(col string) string {
		w := col + " >= " + a.micros(q.From) + " AND " + col + " < " + a.micros(q.To)
		if q.Service != "" {
			w += " AND service_name = " + a.add("String", q.Service)
		}
		if q.Environment != "" {
			w += " AND environment = " + a.add("String", q.Environment)
		}
		return w
	}
	spans := p.qualified("spans") + " FINAL WHERE " + where("started_at")
	step := a.add("Int64", strconv.FormatInt(q.Bucket.Microseconds(), 10))
	series = "SELECT intDiv(toUnixTimestamp64Micro(started_at), " + step + ") * " + step + " AS b, " +
		"countIf(parent_span_id = ''), count(), countIf(error != ''), uniqExactIf(trace_id, error != '') FROM " + spans +
		" GROUP BY b"
	durations = "SELECT span_type, if(entity_name != '', entity_name, name) AS entity, count() AS n, " +
		"quantileExactInclusive(0.5)(d), quantileExactInclusive(0.95)(d), quantileExactInclusive(0.99)(d) FROM (" +
		"SELECT span_type, entity_name, name, (toUnixTimestamp64Micro(assumeNotNull(ended_at)) - toUnixTimestamp64Micro(started_at)) / 1000 AS d FROM " +
		spans + " AND ended_at IS NOT NULL AND NOT is_event) GROUP BY span_type, entity ORDER BY n DESC, span_type, entity LIMIT " +
		strconv.Itoa(query.MaxStatsRows)
	models = "SELECT coalesce(nullIf(u.model, ''), c.model, '') AS m, u.calls, u.input_tokens, u.output_tokens, c.cost FROM (" +
		"SELECT JSONExtractString(attributes, 'model') AS model, count() AS calls, " +
		"sum(JSONExtractInt(attributes, 'usage', 'inputTokens')) AS input_tokens, " +
		"sum(JSONExtractInt(attributes, 'usage', 'outputTokens')) AS output_tokens FROM " + spans +
		" AND span_type = 'model_generation' GROUP BY model) AS u FULL OUTER JOIN (" +
		"SELECT model, sum(estimated_cost) AS cost FROM " + p.qualified("metrics") + " FINAL WHERE " + where("timestamp") +
		" AND model != '' GROUP BY model) AS c ON u.model = c.model ORDER BY u.calls DESC, m LIMIT " + strconv.Itoa(query.MaxStatsRows) +
		" SETTINGS join_use_nulls = 1"
	return series, durations, models, a.p
}

// Stats aggregates the spans started in [q.From, q.To).
func (r *Reader) Stats(ctx context.Context, q query.StatsQuery) (*query.Stats, error) {
	seriesSQL, durSQL, modelSQL, params := r.p.statsSQL(q)
	ctx = ch.Context(ctx, ch.WithParameters(params))
	st := &query.Stats{From: q.From.UTC(), To: q.To.UTC(), BucketSeconds: int64(q.Bucket / time.Second),
		Durations: []query.EntityDuration{}, Models: []query.ModelUsage{}}
	got := map[int64]query.Bucket{}
	err := r.each(ctx, seriesSQL, func(scan func(...any) error) error {
		var b query.Bucket
		var us int64
		var traces, spans, errSpans, errTraces uint64
		if err := scan(&us, &traces, &spans, &errSpans, &errTraces); err != nil {
			return err
		}
		b.Traces, b.Spans, b.ErrorSpans, b.ErrorTraces = int64(traces), int64(spans), int64(errSpans), int64(errTraces)
		got[us] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: stats: series: %w", err)
	}
	st.Series = query.FillSeries(q, got)
	err = r.each(ctx, durSQL, func(scan func(...any) error) error {
		var d query.EntityDuration
		var n uint64
		if err := scan(&d.SpanType, &d.Entity, &n, &d.P50MS, &d.P95MS, &d.P99MS); err != nil {
			return err
		}
		d.Count = int64(n)
		st.Durations = append(st.Durations, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: stats: durations: %w", err)
	}
	err = r.each(ctx, modelSQL, func(scan func(...any) error) error {
		var (
			m       query.ModelUsage
			calls   *uint64
			in, out *int64
			cost    *float64
		)
		if err := scan(&m.Model, &calls, &in, &out, &cost); err != nil {
			return err
		}
		if calls != nil {
			m.Calls = int64(*calls)
		}
		if in != nil {
			m.InputTokens = *in
		}
		if out != nil {
			m.OutputTokens = *out
		}
		m.Cost = cost
		st.Models = append(st.Models, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: stats: models: %w", err)
	}
	return st, nil
}

func (r *Reader) each(ctx context.Context, q string, row func(scan func(...any) error) error) error {
	rows, err := r.conn.Query(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}
