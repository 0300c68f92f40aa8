package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/spanpipe/spanpipe/schema"
)

// ErrNotFound is returned (wrapped) by [Writer.Span] when no row has the key.
var ErrNotFound = errors.New("duckdb: not found")

// The read helpers serve the CLI and tests. They run on the database's connection
// pool, not on the write connection, so they may run while a Write is in progress
// and see the last committed batch.

// CountSpans returns the number of rows in spans: the number of distinct spans.
func (w *Writer) CountSpans(ctx context.Context) (int64, error) {
	return w.CountRows(ctx, "spans")
}

// CountRows returns the number of rows in table, which must be one of spans, logs,
// metrics, scores or feedback.
func (w *Writer) CountRows(ctx context.Context, table string) (int64, error) {
	known := false
	for _, t := range allTables {
		known = known || t.name == table
	}
	if !known {
		return 0, fmt.Errorf("duckdb: count rows: unknown table %q (want spans, logs, metrics, scores or feedback)", table)
	}
	var n int64
	if err := w.db.QueryRowContext(ctx, "SELECT count(*) FROM main."+quote(table)).Scan(&n); err != nil {
		return 0, fmt.Errorf("duckdb: count rows of %s: %w", table, err)
	}
	return n, nil
}

// Span returns the stored row of a span mapped back to a [schema.Span], version
// included, or an error matching [ErrNotFound]. NULL columns come back as zero
// values; times are in UTC with microsecond precision.
func (w *Writer) Span(ctx context.Context, traceID, spanID string) (*schema.Span, error) {
	q := "SELECT " + quoteAll(spansTable.cols) + " FROM main.spans WHERE trace_id = $1 AND span_id = $2"
	var (
		s        schema.Span
		spanType string
		parent   sql.NullString
		extPar   sql.NullString
		corr     [23]sql.NullString
		tags     duckdbdriver.Composite[[]string]
		ended    sql.NullTime
		payloads [6][]byte // attributes, metadata, input, output, error, request_context
	)
	dest := []any{&s.TraceID, &s.SpanID, &s.Version, &parent, &extPar, &s.Name, &spanType}
	for i := range corr {
		dest = append(dest, &corr[i])
	}
	dest = append(dest, &tags, &s.StartTime, &ended)
	for i := range payloads {
		dest = append(dest, &payloads[i])
	}
	dest = append(dest, &s.IsEvent, &s.IsRootSpan, &s.IsInternal)

	err := w.db.QueryRowContext(ctx, q, traceID, spanID).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("duckdb: span %s/%s: %w", traceID, spanID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("duckdb: read span %s/%s: %w", traceID, spanID, err)
	}

	s.Type = schema.SpanType(spanType)
	s.ParentSpanID, s.ExternalParentSpanID = parent.String, extPar.String
	c := &s.Correlation
	for i, p := range []*string{
		&c.EntityType, &c.EntityID, &c.EntityName, &c.EntityVersionID,
		&c.ParentEntityType, &c.ParentEntityID, &c.ParentEntityName, &c.ParentEntityVersionID,
		&c.RootEntityType, &c.RootEntityID, &c.RootEntityName, &c.RootEntityVersionID,
		&c.UserID, &c.OrganizationID, &c.ResourceID, &c.RunID, &c.SessionID, &c.ThreadID,
		&c.RequestID, &c.Environment, &c.Source, &c.ServiceName, &c.ExperimentID,
	} {
		*p = corr[i].String
	}
	c.Tags = tags.Get()
	s.StartTime = s.StartTime.UTC()
	if ended.Valid {
		s.EndTime = ended.Time.UTC()
	}
	s.Attributes, s.Metadata = jsontext.Value(payloads[0]), jsontext.Value(payloads[1])
	s.Input, s.Output = jsontext.Value(payloads[2]), jsontext.Value(payloads[3])
	if payloads[4] != nil {
		s.ErrorInfo = new(schema.ErrorInfo)
		if err := json.Unmarshal(payloads[4], s.ErrorInfo); err != nil {
			return nil, fmt.Errorf("duckdb: read span %s/%s: decode error column: %w", traceID, spanID, err)
		}
	}
	s.RequestContext = jsontext.Value(payloads[5])
	return &s, nil
}

// OpenReadOnly opens the database file at path read-only (DuckDB's
// access_mode=READ_ONLY), for tests and tools that inspect a file another process
// writes. DuckDB locks the file: this fails while another process has it open
// read-write, and the other process cannot open it read-write until the returned
// database is closed. Within one process, open the file either read-only or through
// a [Writer], not both. The caller must close the returned database.
func OpenReadOnly(ctx context.Context, path string) (*sql.DB, error) {
	if path == "" || path == ":memory:" || strings.Contains(path, "?") {
		return nil, fmt.Errorf("duckdb: open read-only: invalid path %q", path)
	}
	connector, err := duckdbdriver.NewConnector(path+"?"+url.Values{"access_mode": {"READ_ONLY"}}.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("duckdb: open read-only %s: %w", path, err)
	}
	db := sql.OpenDB(connector)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("duckdb: open read-only %s: %w", path, err)
	}
	return db, nil
}
