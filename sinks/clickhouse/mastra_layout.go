package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/cespare/xxhash/v2"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
)

// Layouts of [Config.Layout].
const (
	LayoutSpanpipe = "spanpipe"
	LayoutMastra   = "mastra"
)

// The mastra layout writes the five base tables of @mastra/clickhouse's
// ObservabilityStorageClickhouseVNext (1.16.0), row for row as its batchCreate*
// functions do with the records MastraStorageExporter builds (@mastra/core's
// record-builders), so that Mastra's own materialized views fill trace roots,
// branches, delta and discovery tables, and Studio reads the result. Mastra owns the
// DDL: its init() creates the tables (and checks its views' text), so spanpipe only
// checks that the columns it inserts exist with the types it appends, and, on
// non-replicated tables, sets non_replicated_deduplication_window, without which a
// retried insert's deduplication token does nothing.

const (
	tMStr    = "Nullable(String)"
	tMLowStr = "LowCardinality(Nullable(String))"
	tMTime   = "DateTime64(3, 'UTC')"
)

// mastraCorrDefs are the correlation columns every Mastra table has, in the order
// of [mastraCorr].
var mastraCorrDefs = defs(
	"experimentId", tMStr,
	"entityType", tMLowStr, "entityId", tMStr, "entityName", tMStr, "entityVersionId", tMStr,
	"parentEntityVersionId", tMStr, "parentEntityType", tMLowStr, "parentEntityId", tMStr, "parentEntityName", tMStr,
	"rootEntityVersionId", tMStr, "rootEntityType", tMLowStr, "rootEntityId", tMStr, "rootEntityName", tMStr,
	"userId", tMStr, "organizationId", tMStr, "resourceId", tMStr, "runId", tMStr, "sessionId", tMStr,
	"threadId", tMStr, "requestId", tMStr,
	"environment", tMLowStr, "executionSource", tMLowStr, "serviceName", tMLowStr,
)

var (
	mastraSpansTable = &table{name: "mastra_span_events", cols: join(
		defs("dedupeKey", tString, "traceId", tString, "spanId", tString, "parentSpanId", tMStr),
		mastraCorrDefs,
		defs("name", tString, "spanType", tLowCard, "isEvent", tBool, "startedAt", tMTime, "endedAt", tMTime,
			"tags", tTags, "metadataSearch", tStrMap,
			"attributes", tMStr, "scope", tMStr, "links", tMStr, "input", tMStr, "output", tMStr,
			"error", tMStr, "metadataRaw", tMStr, "requestContext", tMStr),
	)}
	mastraLogsTable = &table{name: "mastra_log_events", cols: join(
		defs("timestamp", tMTime, "logId", tString, "traceId", tMStr, "spanId", tMStr),
		mastraCorrDefs,
		defs("level", tLowCard, "message", tString, "tags", tTags, "data", tMStr, "metadata", tMStr, "scope", tMStr),
	)}
	mastraMetricsTable = &table{name: "mastra_metric_events", cols: join(
		defs("timestamp", tMTime, "metricId", tString, "traceId", tMStr, "spanId", tMStr),
		mastraCorrDefs,
		defs("name", tLowCard, "value", tFloat64, "provider", tMLowStr, "model", tMStr, "estimatedCost", tNullF64,
			"costUnit", tMLowStr, "tags", tTags, "labels", tStrMap, "costMetadata", tMStr, "metadata", tMStr, "scope", tMStr),
	)}
	mastraScoresTable = &table{name: "mastra_score_events", cols: join(
		defs("timestamp", tMTime, "scoreId", tString, "traceId", tMStr, "spanId", tMStr, "scoreTraceId", tMStr),
		mastraCorrDefs,
		defs("scorerId", tLowCard, "scorerVersion", tMLowStr, "scoreSource", tMLowStr, "score", tFloat64,
			"reason", tMStr, "tags", tTags, "metadata", tMStr, "scope", tMStr),
	)}
	mastraFeedbackTable = &table{name: "mastra_feedback_events", cols: join(
		defs("timestamp", tMTime, "feedbackId", tString, "traceId", tMStr, "spanId", tMStr),
		mastraCorrDefs,
		defs("feedbackUserId", tMStr, "sourceId", tMStr, "feedbackSource", tLowCard, "feedbackType", tLowCard,
			"valueString", tMStr, "valueNumber", tNullF64, "comment", tMStr, "tags", tTags, "metadata", tMStr, "scope", tMStr),
	)}
	mastraTables = []*table{mastraSpansTable, mastraLogsTable, mastraMetricsTable, mastraScoresTable, mastraFeedbackTable}
)

// mastraIDs names, per table, the column a row is known by and the time column that
// bounds the lookup of rows already stored (see [Writer.mastraStored]).
var mastraIDs = map[*table][2]string{
	mastraSpansTable:    {"dedupeKey", "endedAt"},
	mastraLogsTable:     {"logId", "timestamp"},
	mastraMetricsTable:  {"metricId", "timestamp"},
	mastraScoresTable:   {"scoreId", "timestamp"},
	mastraFeedbackTable: {"feedbackId", "timestamp"},
}

// mastraEntityTypes are @mastra/core's EntityType values; the record builders keep
// only these from legacy labels and metadata.
var mastraEntityTypes = map[string]bool{
	"agent": true, "scorer": true, "rag_ingestion": true, "trajectory": true, "input_processor": true,
	"input_step_processor": true, "output_processor": true, "output_step_processor": true,
	"tool_result_processor": true, "workflow_step": true, "tool": true, "mcp_server": true,
	"workflow_run": true, "memory": true,
}

// mastraPromoted are the metadata keys with columns of their own, left out of
// metadataSearch (the store's PROMOTED_KEYS).
var mastraPromoted = map[string]bool{
	"experimentId": true, "entityType": true, "entityId": true, "entityName": true, "entityVersionId": true,
	"parentEntityVersionId": true, "rootEntityVersionId": true, "userId": true, "organizationId": true,
	"resourceId": true, "runId": true, "sessionId": true, "threadId": true, "requestId": true,
	"environment": true, "executionSource": true, "serviceName": true,
}

// mastraCapabilities: the tables hold one completed row per span, so only ended spans
// (insert-only) can be written.
func mastraCapabilities() pipeline.Capabilities {
	return pipeline.Capabilities{
		Preferred: pipeline.InsertOnly,
		Supported: []pipeline.Strategy{pipeline.InsertOnly},
		Signals:   slices.Clone(schema.AllSignals),
	}
}

// mastraCols holds the column builders of the mastra layout.
type mastraCols struct {
	spans    mastraSpanCols
	logs     mastraLogCols
	metrics  mastraMetricCols
	scores   mastraScoreCols
	feedback mastraFeedbackCols
}

func (w *Writer) initMastra() {
	w.mastra = &mastraCols{}
	w.mastra.spans.init(mastraSpansTable)
	w.mastra.logs.init(mastraLogsTable)
	w.mastra.metrics.init(mastraMetricsTable)
	w.mastra.scores.init(mastraScoresTable)
	w.mastra.feedback.init(mastraFeedbackTable)
	for _, t := range mastraTables {
		w.insertSQL[t] = "INSERT INTO " + w.p.qualified(t.name) + " (" + t.colNames() + ")"
	}
}

// writeMastra writes a batch in the mastra layout. Rows whose key is already stored
// (a redelivery after a crash, whose batches need not match the first delivery's, so
// that their deduplication tokens differ) are left out: Mastra's reads of logs,
// metrics, scores and feedback do not deduplicate, and its delta tables would list
// a row twice, so a duplicate must not reach the table at all.
func (w *Writer) writeMastra(ctx context.Context, b *pipeline.Batch, src sourceID) error {
	m := w.mastra
	spans := make([]*schema.Span, 0, len(b.Spans))
	for _, s := range b.Spans {
		// Running spans cannot be held (one completed row per span); the insert-only
		// strategy, the only one this layout supports, never hands them over.
		if s != nil && s.Ended() {
			spans = append(spans, s)
		}
	}
	if err := writeFresh(ctx, w, mastraSpansTable, spans, &m.spans, mastraSpanMeta, spanKey, src, mastraSpanKey, mastraSpanEnd); err != nil {
		return err
	}
	if err := writeFresh(ctx, w, mastraLogsTable, b.Logs, &m.logs, logMeta, logKey, src,
		func(x *schema.Log) string { return x.LogID }, func(x *schema.Log) time.Time { return x.Timestamp }); err != nil {
		return err
	}
	if err := writeFresh(ctx, w, mastraMetricsTable, b.Metrics, &m.metrics, metricMeta, metricKey, src,
		func(x *schema.Metric) string { return x.MetricID }, func(x *schema.Metric) time.Time { return x.Timestamp }); err != nil {
		return err
	}
	if err := writeFresh(ctx, w, mastraScoresTable, b.Scores, &m.scores, scoreMeta, scoreKey, src,
		func(x *schema.Score) string { return x.ScoreID }, func(x *schema.Score) time.Time { return x.Timestamp }); err != nil {
		return err
	}
	return writeFresh(ctx, w, mastraFeedbackTable, b.Feedback, &m.feedback, feedbackMeta, feedbackKey, src,
		func(x *schema.Feedback) string { return x.FeedbackID }, func(x *schema.Feedback) time.Time { return x.Timestamp })
}

// writeFresh writes the rows of t whose id (at its time) is not stored yet.
func writeFresh[T any, B builder[T]](ctx context.Context, w *Writer, t *table, rows []*T, cols B,
	meta func(*T) (int32, int), key func(*xxhash.Digest, *T), src sourceID, id func(*T) string, at func(*T) time.Time,
) error {
	fresh, err := mastraFresh(ctx, w, t, rows, id, at)
	if err != nil {
		return err
	}
	return writeTable(ctx, w, t, fresh, cols, meta, key, src)
}

func mastraSpanKey(s *schema.Span) string { return s.TraceID + ":" + s.SpanID }

// mastraSpanEnd is the row's endedAt: the start for event spans, else the end, else
// the start (spanRecordToRow).
func mastraSpanEnd(s *schema.Span) time.Time {
	if s.IsEvent || s.EndTime.IsZero() {
		return s.StartTime
	}
	return s.EndTime
}

func mastraSpanMeta(s *schema.Span) (int32, int) {
	_, n := spanMeta(s)
	return day(mastraSpanEnd(s)), n
}

// mastraFresh returns the rows whose key is neither stored yet nor repeated earlier
// in rows. The lookup sends the keys as external data (no query-size limit) and is
// bounded by the rows' time range, which prunes partitions.
func mastraFresh[T any](ctx context.Context, w *Writer, t *table, rows []*T, key func(*T) string, at func(*T) time.Time) ([]*T, error) {
	out := make([]*T, 0, len(rows))
	seen := make(map[string]bool, len(rows))
	var lo, hi time.Time
	for _, r := range rows {
		if r == nil {
			continue
		}
		k := key(r)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, r)
		ts := at(r)
		if lo.IsZero() || ts.Before(lo) {
			lo = ts
		}
		if ts.After(hi) {
			hi = ts
		}
	}
	if len(out) == 0 {
		return out, nil
	}
	stored, err := w.mastraStored(ctx, t, seen, lo, hi)
	if err != nil || len(stored) == 0 {
		return out, err
	}
	w.log.Debug("clickhouse rows already stored left out", "table", t.name, "rows", len(stored))
	return slices.DeleteFunc(out, func(r *T) bool { return stored[key(r)] }), nil
}

// mastraStored returns which of keys the table holds with a time in [lo, hi]
// (widened by a millisecond each way: the column keeps milliseconds).
func (w *Writer) mastraStored(ctx context.Context, t *table, keys map[string]bool, lo, hi time.Time) (map[string]bool, error) {
	idCol, timeCol := mastraIDs[t][0], mastraIDs[t][1]
	ids, err := ext.NewTable("spanpipe_keys", ext.Column("k", column.Type("String")))
	if err != nil {
		return nil, fmt.Errorf("clickhouse: look up stored rows of %s: %w", t.name, err)
	}
	for k := range keys {
		if err := ids.Append(k); err != nil {
			return nil, fmt.Errorf("clickhouse: look up stored rows of %s: %w", t.name, err)
		}
	}
	q := "SELECT DISTINCT " + idCol + " FROM " + w.p.qualified(t.name) +
		" WHERE " + timeCol + " BETWEEN fromUnixTimestamp64Milli(?, 'UTC') AND fromUnixTimestamp64Milli(?, 'UTC')" +
		" AND " + idCol + " IN (SELECT k FROM spanpipe_keys)"
	rows, err := w.conn.Query(ch.Context(ctx, ch.WithExternalTable(ids)), q, lo.UnixMilli()-1, hi.UnixMilli()+1)
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse: look up stored rows of %s: %w", t.name, err))
	}
	defer rows.Close()
	stored := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, classify(fmt.Errorf("clickhouse: look up stored rows of %s: %w", t.name, err))
		}
		stored[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("clickhouse: look up stored rows of %s: %w", t.name, err))
	}
	return stored, nil
}

// checkMastraSchema makes sure Mastra's base tables exist with every column the
// writer inserts, of the type it appends, on a ReplacingMergeTree engine. With fix,
// it sets non_replicated_deduplication_window on the tables that lack it (the only
// change spanpipe makes to Mastra's tables) and returns the statements it ran;
// without, a missing setting is an error that asks for `spanpipe migrate`.
func checkMastraSchema(ctx context.Context, conn driver.Conn, p ddlParams, fix bool) ([]string, error) {
	names := make([]string, len(mastraTables))
	for i, t := range mastraTables {
		names[i] = t.name
	}
	have := map[string]map[string]string{}
	rows, err := conn.Query(ctx, "SELECT table, name, type FROM system.columns WHERE database = ? AND table IN ?", p.DB, names)
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read the columns of Mastra's tables: %w", err))
	}
	for rows.Next() {
		var tbl, name, typ string
		if err := rows.Scan(&tbl, &name, &typ); err != nil {
			rows.Close()
			return nil, fmt.Errorf("clickhouse: read the columns of Mastra's tables: %w", err)
		}
		if have[tbl] == nil {
			have[tbl] = map[string]string{}
		}
		have[tbl][name] = typ
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: read the columns of Mastra's tables: %w", err)
	}
	engines := map[string]string{}
	rows, err = conn.Query(ctx, "SELECT name, engine_full FROM system.tables WHERE database = ? AND name IN ?", p.DB, names)
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse: read the engines of Mastra's tables: %w", err))
	}
	for rows.Next() {
		var name, full string
		if err := rows.Scan(&name, &full); err != nil {
			rows.Close()
			return nil, fmt.Errorf("clickhouse: read the engines of Mastra's tables: %w", err)
		}
		engines[name] = full
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: read the engines of Mastra's tables: %w", err)
	}
	var problems []error
	var todo []statement
	for _, t := range mastraTables {
		cols, full := have[t.name], engines[t.name]
		if cols == nil || full == "" {
			problems = append(problems, fmt.Errorf("table %s.%s does not exist", p.DB, t.name))
			continue
		}
		for _, c := range t.cols {
			switch got, ok := cols[c.name]; {
			case !ok:
				problems = append(problems, fmt.Errorf("%s has no column %s", t.name, c.name))
			case got != c.typ:
				problems = append(problems, fmt.Errorf("%s.%s is %s, want %s", t.name, c.name, got, c.typ))
			}
		}
		if !strings.Contains(full, "ReplacingMergeTree") {
			problems = append(problems, fmt.Errorf("%s is not on a ReplacingMergeTree engine (%s)", t.name, full))
		} else if !strings.HasPrefix(full, "Replicated") && !strings.Contains(full, "non_replicated_deduplication_window") {
			todo = append(todo, statement{name: "mastra_dedup_window_" + t.name,
				sql: fmt.Sprintf("ALTER TABLE %s MODIFY SETTING non_replicated_deduplication_window = %d", p.qualified(t.name), dedupWindow)})
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("clickhouse: layout mastra needs the tables @mastra/clickhouse's ClickhouseStoreVNext creates (run its init() once on database %s, e.g. by starting the Mastra app that serves Studio): %w", p.DB, errors.Join(problems...))
	}
	var ran []string
	for _, s := range todo {
		if !fix {
			return nil, fmt.Errorf("clickhouse: %s lacks non_replicated_deduplication_window; run `spanpipe migrate` or set auto_migrate", strings.TrimPrefix(s.name, "mastra_dedup_window_"))
		}
		if err := exec(ctx, conn, "layout mastra", s); err != nil {
			return ran, err
		}
		ran = append(ran, s.name)
	}
	return ran, nil
}

// mbuilder appends rows column by column to typed slices; the column kinds follow the
// table's types.
type mbuilder struct {
	t    *table
	cols []mcol
	next int
}

type mcol struct {
	kind byte // 's' String, 'n' Nullable(String), 't' DateTime64, 'b' Bool, 'f' Float64, 'F' Nullable(Float64), 'a' tags, 'm' map
	s    []string
	n    []*string // the driver ignores sql.NullString's Valid: pointers, into nv
	nv   []string
	tm   []time.Time
	b    []bool
	f    []float64
	nf   []*float64
	a    [][]string
	m    []map[string]string
}

func (b *mbuilder) init(t *table) {
	b.t = t
	b.cols = make([]mcol, len(t.cols))
	for i, c := range t.cols {
		var k byte
		switch c.typ {
		case tString, tLowCard:
			k = 's'
		case tMStr, tMLowStr:
			k = 'n'
		case tMTime:
			k = 't'
		case tBool:
			k = 'b'
		case tFloat64:
			k = 'f'
		case tNullF64:
			k = 'F'
		case tTags:
			k = 'a'
		case tStrMap:
			k = 'm'
		default:
			panic("clickhouse: mastra layout: no builder for type " + c.typ)
		}
		b.cols[i].kind = k
	}
}

func (b *mbuilder) reset(int) {
	for i := range b.cols {
		c := &b.cols[i]
		clear(c.s)
		clear(c.n)
		clear(c.nv)
		clear(c.a)
		clear(c.m)
		c.s, c.n, c.nv, c.tm, c.b, c.f, c.nf, c.a, c.m = c.s[:0], c.n[:0], c.nv[:0], c.tm[:0], c.b[:0], c.f[:0], c.nf[:0], c.a[:0], c.m[:0]
	}
	b.next = 0
}

func (b *mbuilder) columns() []any {
	out := make([]any, len(b.cols))
	for i := range b.cols {
		c := &b.cols[i]
		switch c.kind {
		case 's':
			out[i] = c.s
		case 'n':
			out[i] = c.n
		case 't':
			out[i] = c.tm
		case 'b':
			out[i] = c.b
		case 'f':
			out[i] = c.f
		case 'F':
			out[i] = c.nf
		case 'a':
			out[i] = c.a
		case 'm':
			out[i] = c.m
		}
	}
	return out
}

// col returns the next column of the row being added; a mismatch between a table's
// column list and its add function is a programming error, caught by the unit tests.
func (b *mbuilder) col(kind byte) *mcol {
	c := &b.cols[b.next]
	if c.kind != kind {
		panic(fmt.Sprintf("clickhouse: mastra layout: %s.%s is %c, add wrote %c", b.t.name, b.t.cols[b.next].name, c.kind, kind))
	}
	b.next++
	return c
}

// end finishes a row; every column must have been written once.
func (b *mbuilder) end() {
	if b.next != len(b.cols) {
		panic(fmt.Sprintf("clickhouse: mastra layout: %s: add wrote %d of %d columns", b.t.name, b.next, len(b.cols)))
	}
	b.next = 0
}

func (b *mbuilder) str(v string)    { c := b.col('s'); c.s = append(c.s, v) }
func (b *mbuilder) bool(v bool)     { c := b.col('b'); c.b = append(c.b, v) }
func (b *mbuilder) float(v float64) { c := b.col('f'); c.f = append(c.f, v) }
func (b *mbuilder) tags(v []string) { c := b.col('a'); c.a = append(c.a, mastraTags(v)) }

// noEntries is the metadataSearch of a row without string metadata. It is shared,
// and never written to.
var noEntries = map[string]string{}

func (b *mbuilder) strMap(v map[string]string) {
	if v == nil {
		v = noEntries
	}
	c := b.col('m')
	c.m = append(c.m, v)
}

// nstr appends v, NULL when empty: Mastra writes `?? null`, and reads an empty
// string back as null anyway.
func (b *mbuilder) nstr(v string) { b.col('n').null(v, v != "") }

// null appends v, or NULL. A pointer into nv stays valid when nv grows: the old
// array it points into is kept, and nothing writes to it before reset.
func (c *mcol) null(v string, valid bool) {
	if !valid {
		c.n = append(c.n, nil)
		return
	}
	c.nv = append(c.nv, v)
	c.n = append(c.n, &c.nv[len(c.nv)-1])
}

// json appends a JSON payload, NULL when absent or null (jsonEncode(v ?? null)).
func (b *mbuilder) json(v jsontext.Value) { b.nstr(text(v)) }

func (b *mbuilder) nfloat(v *float64) {
	c := b.col('F')
	c.nf = append(c.nf, v)
}

// time appends a timestamp; DateTime64(3) holds 1900-01-01 to 2299-12-31, which
// includes every time schema.Decode accepts but one before 2262 only is checked.
func (b *mbuilder) time(what string, v time.Time) error {
	if err := checkTime(what, v); err != nil {
		return err
	}
	c := b.col('t')
	c.tm = append(c.tm, v)
	return nil
}

// mastraCorr are the correlation values of a row, in mastraCorrDefs order.
type mastraCorr [23]string

func (b *mbuilder) corr(c *mastraCorr) {
	for _, v := range c {
		b.nstr(v)
	}
}

// fromContext is buildCorrelationRecordFields: a signal's correlationContext.
func fromContext(x *schema.Correlation) mastraCorr {
	if x == nil {
		return mastraCorr{}
	}
	return mastraCorr{
		x.ExperimentID,
		x.EntityType, x.EntityID, x.EntityName, x.EntityVersionID,
		x.ParentEntityVersionID, x.ParentEntityType, x.ParentEntityID, x.ParentEntityName,
		x.RootEntityVersionID, x.RootEntityType, x.RootEntityID, x.RootEntityName,
		x.UserID, x.OrganizationID, x.ResourceID, x.RunID, x.SessionID, x.ThreadID, x.RequestID,
		x.Environment, x.Source, x.ServiceName,
	}
}

// Indexes into mastraCorr.
const (
	cExperiment = iota
	cEntityType
	cEntityID
	cEntityName
	cEntityVersion
	cParentVersion
	cParentType
	cParentID
	cParentName
	cRootVersion
	cRootType
	cRootID
	cRootName
	cUser
	cOrg
	cResource
	cRun
	cSession
	cThread
	cRequest
	cEnvironment
	cSource
	cService
)

// fill sets c[i] to v when it is empty (the builders' `a ?? b`).
func (c *mastraCorr) fill(i int, v string) {
	if c[i] == "" {
		c[i] = v
	}
}

// jsTrim trims as JavaScript's String.prototype.trim does (White_Space and BOM).
func jsTrim(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '\uFEFF' })
}

// mastraTags is normalizeTags: trimmed, without empty values and repeats, never nil.
func mastraTags(tags []string) []string {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if t = jsTrim(t); t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// metaObject holds the top-level members of a JSON object that the builders read.
type metaObject map[string]jsontext.Value

// parseObject returns the members of a JSON object; nil when v is not one.
func parseObject(v jsontext.Value) metaObject {
	if len(v) == 0 || v[0] != '{' {
		return nil
	}
	var out metaObject
	if json.Unmarshal(v, &out) != nil {
		return nil
	}
	return out
}

// str returns the member as a string, "" when absent or not a string
// (getStringOrNull).
func (m metaObject) str(k string) string {
	v, ok := m[k]
	if !ok || v.Kind() != '"' {
		return ""
	}
	var s string
	if err := jsonUnquote(v, &s); err != nil {
		return ""
	}
	return s
}

func jsonUnquote(v jsontext.Value, s *string) error {
	tok, err := jsontext.NewDecoder(strings.NewReader(text(v))).ReadToken()
	if err != nil {
		return err
	}
	*s = tok.String()
	return nil
}

// entityType returns the member when it is a string and one of Mastra's entity types
// (toEntityType).
func (m metaObject) entityType(k string) string {
	if s := m.str(k); mastraEntityTypes[s] {
		return s
	}
	return ""
}

// search is buildMetadataSearch: the string members, trimmed and non-empty, that
// have no column of their own.
func (m metaObject) search() map[string]string {
	out := map[string]string{}
	for k := range m {
		if mastraPromoted[k] {
			continue
		}
		if v := jsTrim(m.str(k)); v != "" {
			out[k] = v
		}
	}
	return out
}

// Span rows: buildCreateSpanRecord, then spanRecordToRow.
type mastraSpanCols struct{ mbuilder }

func (b *mastraSpanCols) add(s *schema.Span) error {
	md := parseObject(s.Metadata)
	c := mastraCorr{
		cExperiment: md.str("experimentId"), cEntityType: s.EntityType, cEntityID: s.EntityID,
		cEntityName: s.EntityName, cEntityVersion: md.str("entityVersionId"),
		cUser: md.str("userId"), cOrg: md.str("organizationId"), cResource: md.str("resourceId"),
		cRun: md.str("runId"), cSession: md.str("sessionId"), cThread: md.str("threadId"),
		cRequest: md.str("requestId"), cEnvironment: md.str("environment"), cSource: md.str("source"),
		cService: md.str("serviceName"),
	}
	b.str(s.TraceID + ":" + s.SpanID)
	b.str(s.TraceID)
	b.str(s.SpanID)
	b.nstr(s.ParentSpanID)
	b.corr(&c)
	b.str(s.Name)
	b.str(string(s.Type))
	b.bool(s.IsEvent)
	if err := b.time("startTime", s.StartTime); err != nil {
		return err
	}
	if err := b.time("endTime", mastraSpanEnd(s)); err != nil {
		return err
	}
	b.tags(s.Tags)
	b.strMap(md.search())
	b.json(s.Attributes)
	var scope jsontext.Value
	if v := md["scope"]; v.Kind() == '{' {
		scope = v
	}
	b.json(scope)
	b.nstr("") // links: the exporter records none
	b.json(s.Input)
	b.json(s.Output)
	var errJSON []byte
	if s.ErrorInfo != nil {
		var err error
		if errJSON, err = errorJSON(s.ErrorInfo); err != nil {
			return fmt.Errorf("span %s errorInfo: %w", s.SpanID, err)
		}
	}
	b.json(errJSON)
	b.json(s.Metadata)
	b.json(s.RequestContext)
	b.end()
	return nil
}

// Log rows: buildLogRecord, then logRecordToRow.
type mastraLogCols struct{ mbuilder }

// legacyLog fills correlation gaps from the log metadata's legacy snake_case keys
// (buildLegacyLogMetadataCorrelationFields).
func legacyLog(c *mastraCorr, md metaObject) {
	if md == nil {
		return
	}
	c.fill(cEntityType, md.entityType("entity_type"))
	c.fill(cEntityName, md.str("entity_name"))
	c.fill(cParentType, md.entityType("parent_type"))
	c.fill(cParentName, md.str("parent_name"))
	c.fill(cRootType, md.entityType("root_type"))
	c.fill(cRootName, md.str("root_name"))
	c.fill(cEnvironment, md.str("environment"))
	c.fill(cSource, md.str("source"))
	c.fill(cService, md.str("service_name"))
}

func (b *mastraLogCols) add(l *schema.Log) error {
	c := fromContext(l.Correlation)
	legacyLog(&c, parseObject(l.Metadata))
	if err := b.time("timestamp", l.Timestamp); err != nil {
		return err
	}
	b.str(l.LogID)
	b.nstr(l.TraceID)
	b.nstr(l.SpanID)
	b.corr(&c)
	b.str(l.Level)
	b.str(l.Message)
	tags := l.Tags
	if l.Correlation != nil && l.Correlation.Tags != nil {
		tags = l.Correlation.Tags
	}
	b.tags(tags)
	b.json(l.Data)
	b.json(l.Metadata)
	b.nstr("") // scope: the builders set none
	b.end()
	return nil
}

// Metric rows: buildMetricRecord, then metricRecordToRow.
type mastraMetricCols struct{ mbuilder }

// legacyMetricLabels are the labels buildMetricRecord moves into correlation fields.
var legacyMetricLabels = []string{"entity_type", "entity_name", "parent_type", "parent_name", "service_name"}

func (b *mastraMetricCols) add(m *schema.Metric) error {
	c := fromContext(m.Correlation)
	labels := make(map[string]string, len(m.Labels))
	for k, v := range m.Labels {
		if slices.Contains(legacyMetricLabels, k) {
			continue
		}
		// normalizeLabels
		if k, v = jsTrim(k), jsTrim(v); k != "" && v != "" {
			labels[k] = v
		}
	}
	if et := m.Labels["entity_type"]; mastraEntityTypes[et] {
		c.fill(cEntityType, et)
	}
	c.fill(cEntityName, m.Labels["entity_name"])
	if pt := m.Labels["parent_type"]; mastraEntityTypes[pt] {
		c.fill(cParentType, pt)
	}
	c.fill(cParentName, m.Labels["parent_name"])
	c.fill(cService, m.Labels["service_name"])
	if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
		return fmt.Errorf("metric %s value %v is not a finite number", m.MetricID, m.Value)
	}
	if err := b.time("timestamp", m.Timestamp); err != nil {
		return err
	}
	b.str(m.MetricID)
	b.nstr(m.TraceID)
	b.nstr(m.SpanID)
	b.corr(&c)
	b.str(m.Name)
	b.float(m.Value)
	cost := m.CostContext
	if cost == nil {
		cost = &schema.CostContext{}
	}
	b.nstr(cost.Provider)
	b.nstr(cost.Model)
	b.nfloat(cost.EstimatedCost)
	b.nstr(cost.CostUnit)
	var tags []string
	if m.Correlation != nil {
		tags = m.Correlation.Tags
	}
	b.tags(tags)
	b.strMap(labels)
	b.json(cost.CostMetadata)
	b.json(m.Metadata)
	b.nstr("")
	b.end()
	return nil
}

// Score rows: buildScoreRecord, then scoreRecordToRow (which has no scorerName).
type mastraScoreCols struct{ mbuilder }

func (b *mastraScoreCols) add(s *schema.Score) error {
	c := fromContext(s.Correlation)
	c.fill(cEntityType, s.TargetEntityType)
	c.fill(cExperiment, s.ExperimentID)
	if err := b.time("timestamp", s.Timestamp); err != nil {
		return err
	}
	b.str(s.ScoreID)
	b.nstr(s.TraceID)
	b.nstr(s.SpanID)
	b.nstr(s.ScoreTraceID)
	b.corr(&c)
	b.str(s.ScorerID)
	b.nstr(s.ScorerVersion)
	src := s.ScoreSource
	if src == "" {
		src = s.Source
	}
	b.nstr(src)
	b.float(s.Score)
	b.nstr(s.Reason)
	var tags []string
	if s.Correlation != nil {
		tags = s.Correlation.Tags
	}
	b.tags(tags)
	b.json(s.Metadata)
	b.nstr("")
	b.end()
	return nil
}

// Feedback rows: buildFeedbackRecord, then feedbackRecordToRow, which writes the
// feedback's user into userId too.
type mastraFeedbackCols struct{ mbuilder }

func (b *mastraFeedbackCols) add(f *schema.Feedback) error {
	c := fromContext(f.Correlation)
	c.fill(cExperiment, f.ExperimentID)
	user := f.FeedbackUserID
	if user == "" {
		user = f.UserID
	}
	if user == "" {
		user = parseObject(f.Metadata).str("userId")
	}
	c[cUser] = user
	var valueString string
	var valueNumber *float64
	switch f.Value.Kind() {
	case '"':
		if err := jsonUnquote(f.Value, &valueString); err != nil {
			return fmt.Errorf("feedback %s value: %w", f.FeedbackID, err)
		}
	case '0':
		var n float64
		if _, err := fmt.Sscan(string(f.Value), &n); err != nil {
			return fmt.Errorf("feedback %s value: %w", f.FeedbackID, err)
		}
		valueNumber = &n
	}
	if err := b.time("timestamp", f.Timestamp); err != nil {
		return err
	}
	b.str(f.FeedbackID)
	b.nstr(f.TraceID)
	b.nstr(f.SpanID)
	b.corr(&c)
	b.nstr(user)
	b.nstr(f.SourceID)
	source := f.FeedbackSource
	if source == "" {
		source = f.Source
	}
	b.str(source)
	b.str(f.FeedbackType)
	// An empty string value is kept (typeof "" === "string"): only nstr's
	// empty-means-NULL rule is not wanted here.
	b.col('n').null(valueString, f.Value.Kind() == '"')
	b.nfloat(valueNumber)
	b.nstr(f.Comment)
	var tags []string
	if f.Correlation != nil {
		tags = f.Correlation.Tags
	}
	b.tags(tags)
	b.json(f.Metadata)
	b.nstr("")
	b.end()
	return nil
}

// errorJSON is the span's errorInfo as Mastra writes it (JSON.stringify of the
// object); the member order may differ from the producer's, which readers, who parse
// it, never see. Deterministic, so that a row written twice is byte-identical.
func errorJSON(e *schema.ErrorInfo) ([]byte, error) {
	return json.Marshal(e, json.Deterministic(true))
}
