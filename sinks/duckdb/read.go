package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/spanpipe/spanpipe/query"
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
	s, err := NewReader(w.db).Span(ctx, traceID, spanID)
	if err == nil && s == nil {
		err = fmt.Errorf("duckdb: span %s/%s: %w", traceID, spanID, ErrNotFound)
	}
	return s, err
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
	configureAllocator()
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

// Reader implements query.Reader on a DuckDB database: the handle of the process's
// [Writer] ([Writer.DB]; DuckDB allows one process to open a file read-write), or a
// file opened with [OpenReadOnly]. Every statement is a parameterised SELECT.
type Reader struct{ db *sql.DB }

// NewReader returns a reader on db; the caller keeps closing db.
func NewReader(db *sql.DB) *Reader { return &Reader{db: db} }

// args collects positional parameters for one statement.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// spansIn is what the spans view shows of the spans started in [from, to) (zero:
// unbounded), for queries bounded by a start time. Rows up to compacted_seq are one
// per span, so only the spans with a version in the tail can show a superseded one:
// the versions of those spans are ranked, and every row of the range but the
// superseded ones is shown. The view correlates every row it reads with a subquery
// over the whole tail, which DuckDB runs as a join that hashes each of those rows
// (0.6 s for the 1M rows of the benchmark); here the tail's keys come from the range
// only, and when none of its spans was rewritten since the last compaction the rest
// is a scan of the range that zone maps narrow. The two agree because every snapshot
// of a span carries the span's start (a span whose versions disagree on it counts
// in the range of each).
func spansIn(a *args, from, to time.Time) string {
	return spansWhere(a, from, to, "")
}

// spansWhere is spansIn narrowed by a condition on trace_id (with a %s for the
// column, "" for none). The condition goes inside the version ranking, so that
// only the versions of the spans it keeps are ranked; since it depends on the
// span's key alone, it matches every version of a span or none.
func spansWhere(a *args, from, to time.Time, traceCond string) string {
	var bounds []string
	if !from.IsZero() {
		bounds = append(bounds, "started_at >= "+a.add(from.UTC()))
	}
	if !to.IsZero() {
		bounds = append(bounds, "started_at < "+a.add(to.UTC()))
	}
	return resolved(func(alias string) string {
		conds := make([]string, 0, len(bounds)+1)
		for _, b := range bounds {
			conds = append(conds, alias+b)
		}
		if traceCond != "" {
			conds = append(conds, fmt.Sprintf(traceCond, alias+"trace_id"))
		}
		if len(conds) == 0 {
			return "true"
		}
		return strings.Join(conds, " AND ")
	})
}

// spansOf is what the spans view shows of one trace's spans: like spansIn, it ranks
// the versions of the trace's spans only, where the view would hash every row of the
// table that shares a key with the tail.
func spansOf(a *args, traceID string) string {
	id := a.add(traceID)
	return resolved(func(alias string) string { return alias + "trace_id = " + id })
}

// resolved shows the rows of span_versions that match where (given a table alias
// with its dot), less those that a newer version of their span supersedes, ranking
// only the spans with a version in the tail. where must match every version of a
// span or none. The rows of the range are matched with the tail by key_hash, one
// 8-byte column, rather than by both key strings; a hash that two spans share only
// ranks both, since the ranking partitions by the keys.
func resolved(where func(alias string) string) string {
	return `(SELECT v.* EXCLUDE (rank, seq, created_at, updated_at, key_hash), v.created_at, v.updated_at, v.rank
		FROM main.span_versions v ANTI JOIN (
			SELECT o.seq FROM main.span_versions o SEMI JOIN (
				SELECT key_hash FROM main.span_versions t
				WHERE ` + where("t.") + ` AND t.seq > (SELECT compacted_seq FROM main.spanpipe_span_compaction)
			) t ON o.key_hash = t.key_hash
			WHERE ` + where("o.") + `
			QUALIFY row_number() OVER (PARTITION BY o.trace_id, o.span_id ORDER BY o.version DESC, o.rank DESC, o.seq DESC) > 1
		) s ON s.seq = v.seq
		WHERE ` + where("v.") + `)`
}

// newestOf is the value of expr in the newest version of a span, as an aggregate
// over the span's versions (GROUP BY trace_id, span_id): the order is the spans
// view's, and seq makes it total. Grouping costs a hash table entry per span, so it
// suits the rows of a few traces, where ranking the tail (resolved) would join
// the whole range with the tail's keys.
func newestOf(expr string) string {
	return "arg_max(" + expr + ", (version, rank, seq))"
}

// startedIn is the condition on started_at of a range [from, to) (zero: unbounded)
// for a table with the given alias (with its dot, or "").
func startedIn(a *args, alias string, from, to time.Time) string {
	conds := []string{"true"}
	if !from.IsZero() {
		conds = append(conds, alias+"started_at >= "+a.add(from.UTC()))
	}
	if !to.IsZero() {
		conds = append(conds, alias+"started_at < "+a.add(to.UTC()))
	}
	return strings.Join(conds, " AND ")
}

// failedSince is a CTE, failed, of the traces with a span that started since since
// (zero: any time) and whose newest version carries an error. Only the traces with
// a version of a span with an error are looked at (error is mostly NULL: a cheap
// scan), and their spans resolved by grouping: an error of an older version that a
// newer one cleared does not count, nor does a newer version's error hide behind
// an older one.
func failedSince(a *args, since time.Time) string {
	in := startedIn(a, "", since, time.Time{})
	return `failed AS (SELECT trace_id FROM main.span_versions
		WHERE ` + in + ` AND trace_id IN (SELECT trace_id FROM main.span_versions WHERE error IS NOT NULL AND ` + in + `)
		GROUP BY trace_id, span_id HAVING ` + newestOf("error IS NOT NULL") + `)`
}

// isRoot matches a trace's root span; producers that do not set isRootSpan still
// leave the parent empty.
const isRoot = "(r.is_root_span OR r.parent_span_id IS NULL)"

// skew is how long before its root a span of the trace may start (clocks of
// different services disagree): the lower bound on the start of a trace's spans.
const skew = time.Hour

// ListTraces searches the newest hour of root spans first, then windows that grow
// at least fourfold (more when the matches found so far say a page needs more),
// and everything once a window would exceed maxWindow. Spans are appended roughly
// in start order, so DuckDB skips the row groups outside a window by their min/max
// (zone maps): a page of recent traces reads recent rows only, whatever the size
// of the file. A window that holds a full page answers the query, because every
// trace outside it is older.
const (
	firstWindow = time.Hour
	maxWindow   = 64 * 24 * time.Hour
)

// ListTraces returns a page of traces, newest root span first. Filters on the trace
// as a whole match its root span; span type, name search and the error status look
// for a matching span of the trace (among the spans that started at most [skew]
// before the oldest root searched).
func (r *Reader) ListTraces(ctx context.Context, f query.TraceFilter) (query.TracePage, error) {
	// The newest bound of the search: To, the cursor, or the newest span stored.
	upper := f.To
	if c := f.Cursor; c != nil {
		if after := c.Start.Add(time.Microsecond); upper.IsZero() || after.Before(upper) {
			upper = after
		}
	}
	if upper.IsZero() {
		var newest sql.NullTime
		// Every version of a span carries its start: the newest version of any span
		// is as new as the newest span, without resolving versions.
		if err := r.db.QueryRowContext(ctx, "SELECT max(started_at) FROM main.span_versions").Scan(&newest); err != nil {
			return query.TracePage{}, fmt.Errorf("duckdb: list traces: newest span: %w", err)
		}
		if !newest.Valid {
			return query.TracePage{Traces: []query.TraceSummary{}}, nil
		}
		upper = newest.Time.Add(time.Microsecond)
	}
	var page query.TracePage
	for window := firstWindow; ; {
		from, last := f.From, window > maxWindow
		if w := upper.Add(-window); !last && (from.IsZero() || w.After(from)) {
			from = w
		} else {
			last = true
		}
		var err error
		if page, err = r.listRoots(ctx, f, from, upper); err != nil {
			return query.TracePage{}, err
		}
		found := len(page.Traces)
		if last || found > f.Limit {
			break
		}
		next := 4 * window
		if found > 0 {
			next = max(next, window*time.Duration(2*(f.Limit+1)/found))
		}
		window = next
	}
	page.Trim(f.Limit)
	if len(page.Traces) == 0 {
		return page, nil
	}
	// Only the page's traces are counted, among the spans started since the oldest
	// root: a constant bound lets the scan skip older row groups. The page's few
	// traces are resolved by grouping their rows per span, which costs less than
	// ranking the tail (a join of the range with the tail's keys); their ids are one
	// list, which each row is looked up in, where an IN list of parameters is
	// planned as a join of its own.
	ids := make([]string, len(page.Traces))
	for i, t := range page.Traces {
		ids[i] = t.TraceID
	}
	var ca args
	oldest := page.Traces[len(page.Traces)-1].StartedAt.Add(-skew)
	cq := `SELECT trace_id, count(*), count(*) FILTER (failed) FROM (
		SELECT trace_id, ` + newestOf("error IS NOT NULL") + ` AS failed FROM main.span_versions
		WHERE started_at >= ` + ca.add(oldest.UTC()) + ` AND list_contains(` + ca.add(ids) + `::VARCHAR[], trace_id)
		GROUP BY trace_id, span_id) GROUP BY trace_id`
	rows, err := r.db.QueryContext(ctx, cq, ca...)
	if err != nil {
		return query.TracePage{}, fmt.Errorf("duckdb: list traces: counts: %w", err)
	}
	counts := map[string][2]int{}
	err = scanAll(rows, func() error {
		var id string
		var c [2]int
		if err := rows.Scan(&id, &c[0], &c[1]); err != nil {
			return err
		}
		counts[id] = c
		return nil
	})
	if err != nil {
		return query.TracePage{}, fmt.Errorf("duckdb: list traces: counts: %w", err)
	}
	for i := range page.Traces {
		t := &page.Traces[i]
		t.SpanCount, t.ErrorCount = counts[t.TraceID][0], counts[t.TraceID][1]
		t.Finish()
	}
	return page, nil
}

// listRoots returns up to f.Limit+1 root spans matching f that started in [from,
// upper) (from zero: any time), newest first.
func (r *Reader) listRoots(ctx context.Context, f query.TraceFilter, from, upper time.Time) (query.TracePage, error) {
	var a args
	where := []string{isRoot}
	if !f.To.IsZero() {
		where = append(where, "r.started_at < "+a.add(f.To.UTC()))
	}
	if c := f.Cursor; c != nil {
		t := a.add(c.Start.UTC())
		where = append(where, fmt.Sprintf("(r.started_at < %s OR (r.started_at = %s AND r.trace_id < %s))", t, t, a.add(c.TraceID)))
	}
	for col, v := range map[string]string{"service_name": f.Service, "environment": f.Environment,
		"entity_type": f.EntityType, "entity_name": f.EntityName, "user_id": f.UserID, "session_id": f.SessionID,
		"thread_id": f.ThreadID, "resource_id": f.ResourceID, "run_id": f.RunID} {
		if v != "" {
			where = append(where, "r."+col+" = "+a.add(v))
		}
	}
	for _, t := range f.Tags {
		where = append(where, "list_contains(r.tags, "+a.add(t)+")")
	}
	for _, kv := range f.Metadata {
		where = append(where, fmt.Sprintf("json_extract_string(r.metadata, %s) = %s", a.add(`$."`+kv.Key+`"`), a.add(kv.Value)))
	}
	// The conditions on any span of the trace are answered by one pass over the
	// spans that started since the oldest root searched, less the skew.
	var anyOf []string
	if f.SpanType != "" {
		anyOf = append(anyOf, "s.span_type = "+a.add(f.SpanType))
	}
	if f.Search != "" {
		anyOf = append(anyOf, "contains(lower(s.name), "+a.add(strings.ToLower(f.Search))+")")
	}
	since := time.Time{}
	if !from.IsZero() {
		since = from.Add(-skew)
	}
	// The status depends on whether a span's newest version failed, among the spans
	// searched: failed (see failedSince) answers it for the status filters.
	with, roots := "", ""
	switch f.Status {
	case query.StatusError:
		// The roots are those of failed traces only: few, so that their versions
		// are resolved by grouping, not by ranking the tail.
		with = "WITH " + failedSince(&a, since) + " "
		in := startedIn(&a, "", from, upper)
		roots = "main.span_versions r"
		where = append(where, startedIn(&a, "r.", from, upper), "r.seq IN (SELECT "+newestOf("seq")+
			" FROM main.span_versions WHERE "+in+" AND trace_id IN (SELECT trace_id FROM failed) GROUP BY trace_id, span_id)")
	case query.StatusRunning, query.StatusOK:
		with = "WITH " + failedSince(&a, since) + " "
		where = append(where, "r.trace_id NOT IN (SELECT trace_id FROM failed)")
		if f.Status == query.StatusRunning {
			where = append(where, "r.ended_at IS NULL")
		} else {
			where = append(where, "r.ended_at IS NOT NULL")
		}
	}
	if roots == "" {
		roots = spansIn(&a, from, upper) + " r"
	}
	if len(anyOf) > 0 {
		// Under the error filter only the failed traces are searched.
		scope := ""
		if f.Status == query.StatusError {
			scope = "%s IN (SELECT trace_id FROM failed)"
		}
		having := make([]string, len(anyOf))
		for i, c := range anyOf {
			having[i] = "bool_or(" + c + ")"
		}
		where = append(where, "r.trace_id IN (SELECT s.trace_id FROM "+spansWhere(&a, since, time.Time{}, scope)+" s WHERE "+
			strings.Join(anyOf, " OR ")+" GROUP BY s.trace_id HAVING "+strings.Join(having, " AND ")+")")
	}
	q := with + `SELECT trace_id, span_id, name, span_type, coalesce(entity_type, ''), coalesce(entity_name, ''),
		coalesce(service_name, ''), coalesce(environment, ''), coalesce(user_id, ''), started_at, ended_at
		FROM ` + roots + ` WHERE ` + strings.Join(where, " AND ") + `
		ORDER BY started_at DESC, trace_id DESC LIMIT ` + a.add(f.Limit+1)
	rows, err := r.db.QueryContext(ctx, q, a...)
	if err != nil {
		return query.TracePage{}, fmt.Errorf("duckdb: list traces: %w", err)
	}
	page := query.TracePage{Traces: []query.TraceSummary{}}
	err = scanAll(rows, func() error {
		var (
			t     query.TraceSummary
			ended sql.NullTime
		)
		if err := rows.Scan(&t.TraceID, &t.RootSpanID, &t.Name, &t.SpanType, &t.EntityType, &t.EntityName,
			&t.ServiceName, &t.Environment, &t.UserID, &t.StartedAt, &ended); err != nil {
			return err
		}
		t.StartedAt = t.StartedAt.UTC()
		if ended.Valid {
			e := ended.Time.UTC()
			t.EndedAt = &e
		}
		page.Traces = append(page.Traces, t)
		return nil
	})
	if err != nil {
		return query.TracePage{}, fmt.Errorf("duckdb: list traces: %w", err)
	}
	return page, nil
}

// TraceSpans returns the spans of a trace without their payloads (errors included).
func (r *Reader) TraceSpans(ctx context.Context, traceID string) ([]*schema.Span, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT span_id, coalesce(parent_span_id, ''), name, span_type, version,
		coalesce(entity_type, ''), coalesce(entity_name, ''), started_at, ended_at, error, is_event, is_root_span
		FROM `+spansOf(&args{}, traceID)+` ORDER BY started_at, span_id`, traceID)
	if err != nil {
		return nil, fmt.Errorf("duckdb: read trace %s: %w", traceID, err)
	}
	defer rows.Close()
	var out []*schema.Span
	for rows.Next() {
		s := &schema.Span{TraceID: traceID}
		var (
			typ   string
			ended sql.NullTime
			errJS sql.NullString
		)
		if err := rows.Scan(&s.SpanID, &s.ParentSpanID, &s.Name, &typ, &s.Version, &s.EntityType, &s.EntityName,
			&s.StartTime, &ended, &errJS, &s.IsEvent, &s.IsRootSpan); err != nil {
			return nil, fmt.Errorf("duckdb: read trace %s: %w", traceID, err)
		}
		s.Type = schema.SpanType(typ)
		s.StartTime = s.StartTime.UTC()
		if ended.Valid {
			s.EndTime = ended.Time.UTC()
		}
		if errJS.Valid && errJS.String != "" {
			s.ErrorInfo = new(schema.ErrorInfo)
			if err := json.Unmarshal([]byte(errJS.String), s.ErrorInfo); err != nil {
				s.ErrorInfo.Message = errJS.String // show what is stored rather than fail
			}
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("duckdb: read trace %s: %w", traceID, err)
	}
	return out, nil
}

// spanReadCols are the columns Span reads, in its scan order; named here rather than
// taken from the writer's list so that a column added to the table leaves reads alone.
var spanReadCols = cols(
	[]string{"trace_id", "span_id", "version", "parent_span_id", "external_parent_span_id", "name", "span_type"},
	[]string{"entity_type", "entity_id", "entity_name", "entity_version_id",
		"parent_entity_type", "parent_entity_id", "parent_entity_name", "parent_entity_version_id",
		"root_entity_type", "root_entity_id", "root_entity_name", "root_entity_version_id",
		"user_id", "organization_id", "resource_id", "run_id", "session_id", "thread_id",
		"request_id", "environment", "source", "service_name", "experiment_id", "tags"},
	[]string{"started_at", "ended_at", "attributes", "metadata", "input", "output", "error", "request_context",
		"is_event", "is_root_span", "is_internal"},
)

// Span returns one span with its payloads, or nil when no row has the key.
func (r *Reader) Span(ctx context.Context, traceID, spanID string) (*schema.Span, error) {
	q := "SELECT " + quoteAll(spanReadCols) + " FROM " + spansOf(&args{}, traceID) + " WHERE span_id = $2"
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

	err := r.db.QueryRowContext(ctx, q, traceID, spanID).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
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

// Stats aggregates the spans started in [q.From, q.To): counts per bucket, duration
// percentiles per entity, and token usage and cost per model. The three statements
// run at once: a day of spans is about one row group, which DuckDB scans on one
// thread, so one after the other they would leave the other cores idle.
func (r *Reader) Stats(ctx context.Context, q query.StatsQuery) (*query.Stats, error) {
	var a args
	spans := spansIn(&a, q.From, q.To)
	where := "true"
	if q.Service != "" {
		where += " AND service_name = " + a.add(q.Service)
	}
	if q.Environment != "" {
		where += " AND environment = " + a.add(q.Environment)
	}
	st := &query.Stats{From: q.From.UTC(), To: q.To.UTC(), BucketSeconds: int64(q.Bucket / time.Second),
		Durations: []query.EntityDuration{}, Models: []query.ModelUsage{}}
	var (
		wg     sync.WaitGroup
		errs   [3]error
		series = map[int64]query.Bucket{}
	)
	wg.Go(func() {
		ba := append(args{}, a...)
		step := ba.add(q.Bucket.Microseconds())
		errs[0] = r.scan(ctx, "series", `SELECT epoch_us(started_at) // `+step+` * `+step+` AS b,
			count(*) FILTER (is_root_span OR parent_span_id IS NULL), count(*), count(error),
			count(DISTINCT trace_id) FILTER (error IS NOT NULL)
			FROM `+spans+` WHERE `+where+` GROUP BY b`, ba, func(rows *sql.Rows) error {
			var us int64
			var b query.Bucket
			if err := rows.Scan(&us, &b.Traces, &b.Spans, &b.ErrorSpans, &b.ErrorTraces); err != nil {
				return err
			}
			series[us] = b
			return nil
		})
	})
	wg.Go(func() {
		// One quantile with a list of fractions sorts each group once, not thrice.
		errs[1] = r.scan(ctx, "durations", `SELECT span_type, entity, n, p[1], p[2], p[3] FROM (
			SELECT span_type, coalesce(entity_name, name) AS entity, count(*) AS n, quantile_cont(d, [0.5, 0.95, 0.99]) AS p
			FROM (SELECT span_type, entity_name, name, (epoch_us(ended_at) - epoch_us(started_at)) / 1000.0 AS d
				FROM `+spans+` WHERE `+where+` AND ended_at IS NOT NULL AND NOT is_event)
			GROUP BY ALL ORDER BY n DESC, span_type, entity LIMIT `+fmt.Sprint(query.MaxStatsRows)+`)
			ORDER BY n DESC, span_type, entity`, a,
			func(rows *sql.Rows) error {
				var d query.EntityDuration
				if err := rows.Scan(&d.SpanType, &d.Entity, &d.Count, &d.P50MS, &d.P95MS, &d.P99MS); err != nil {
					return err
				}
				st.Durations = append(st.Durations, d)
				return nil
			})
	})
	wg.Go(func() {
		ma := append(args{}, a...)
		costWhere := `"timestamp" >= ` + ma.add(q.From.UTC()) + ` AND "timestamp" < ` + ma.add(q.To.UTC()) +
			strings.TrimPrefix(where, "true")
		errs[2] = r.scan(ctx, "models", `WITH u AS (
				SELECT j.model, count(*) AS calls, sum(j.usage.inputTokens) AS input_tokens,
					sum(j.usage.outputTokens) AS output_tokens
				FROM (SELECT json_transform(attributes, '{"model": "VARCHAR", "usage": {"inputTokens": "BIGINT", "outputTokens": "BIGINT"}}') AS j
					FROM `+spans+` WHERE `+where+` AND span_type = 'model_generation') GROUP BY 1),
			c AS (SELECT model, sum(estimated_cost) AS cost FROM main.metrics WHERE `+costWhere+` AND model IS NOT NULL GROUP BY 1)
			SELECT coalesce(u.model, c.model, ''), coalesce(u.calls, 0), coalesce(u.input_tokens, 0),
				coalesce(u.output_tokens, 0), c.cost
			FROM u FULL JOIN c ON u.model = c.model ORDER BY 2 DESC, 1 LIMIT `+fmt.Sprint(query.MaxStatsRows), ma,
			func(rows *sql.Rows) error {
				var m query.ModelUsage
				var cost sql.NullFloat64
				if err := rows.Scan(&m.Model, &m.Calls, &m.InputTokens, &m.OutputTokens, &cost); err != nil {
					return err
				}
				if cost.Valid {
					m.Cost = &cost.Float64
				}
				st.Models = append(st.Models, m)
				return nil
			})
	})
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	st.Series = query.FillSeries(q, series)
	return st, nil
}

// scan runs one statement of Stats and calls row for each of its rows.
func (r *Reader) scan(ctx context.Context, what, q string, a args, row func(*sql.Rows) error) error {
	rows, err := r.db.QueryContext(ctx, q, a...)
	if err == nil {
		err = scanAll(rows, func() error { return row(rows) })
	}
	if err != nil {
		return fmt.Errorf("duckdb: stats: %s: %w", what, err)
	}
	return nil
}

func scanAll(rows *sql.Rows, scan func() error) error {
	defer rows.Close()
	for rows.Next() {
		if err := scan(); err != nil {
			return err
		}
	}
	return rows.Err()
}
