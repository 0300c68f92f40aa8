package clickhouse

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/cespare/xxhash/v2"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/schema"
)

// colDef is one inserted column: its name and its type exactly as ClickHouse prints it
// in system.columns (the chdb check compares them).
type colDef struct{ name, typ string }

// table describes the columns the writer inserts into one table, in insert order.
// Columns with a server-side DEFAULT (inserted_at) are not listed.
type table struct {
	name string
	cols []colDef
}

func (t *table) colNames() string {
	names := make([]string, len(t.cols))
	for i, c := range t.cols {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

const (
	tString   = "String"
	tLowCard  = "LowCardinality(String)"
	tTags     = "Array(LowCardinality(String))"
	tStrMap   = "Map(LowCardinality(String), String)"
	tTime     = "DateTime64(9, 'UTC')"
	tNullTime = "Nullable(DateTime64(9, 'UTC'))"
	tUInt64   = "UInt64"
	tUInt8    = "UInt8"
	tFloat64  = "Float64"
	tNullF64  = "Nullable(Float64)"
	tBool     = "Bool"
)

func defs(pairs ...string) []colDef {
	out := make([]colDef, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, colDef{pairs[i], pairs[i+1]})
	}
	return out
}

func join(parts ...[]colDef) []colDef {
	var out []colDef
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// correlationDefs are the columns of [schema.Correlation], in corrCols order.
var correlationDefs = defs(
	"entity_type", tLowCard, "entity_id", tString, "entity_name", tString, "entity_version_id", tString,
	"parent_entity_type", tLowCard, "parent_entity_id", tString, "parent_entity_name", tString, "parent_entity_version_id", tString,
	"root_entity_type", tLowCard, "root_entity_id", tString, "root_entity_name", tString, "root_entity_version_id", tString,
	"user_id", tString, "organization_id", tString, "resource_id", tString, "run_id", tString,
	"session_id", tString, "thread_id", tString, "request_id", tString,
	"environment", tLowCard, "source", tLowCard, "service_name", tLowCard, "experiment_id", tString,
	"tags", tTags,
)

var (
	spansTable = &table{name: "spans", cols: join(
		// rank orders the snapshots of one version (schema.Span.Rank); the table keeps
		// the greatest (version, rank) through its MATERIALIZED ordering column.
		defs("trace_id", tString, "span_id", tString, "version", tUInt64, "rank", tUInt8, "parent_span_id", tString,
			"external_parent_span_id", tString, "name", tString, "span_type", tLowCard),
		correlationDefs,
		// metadata_search is left out: the server derives it from metadata (0004).
		defs("started_at", tTime, "ended_at", tNullTime, "attributes", tString, "metadata", tString,
			"input", tString, "output", tString, "error", tString,
			"request_context", tString, "is_event", tBool, "is_root_span", tBool, "is_internal", tBool),
	)}
	logsTable = &table{name: "logs", cols: join(
		defs("log_id", tString, "timestamp", tTime, "trace_id", tString, "span_id", tString,
			"level", tLowCard, "message", tString, "data", tString),
		correlationDefs,
		defs("metadata", tString),
	)}
	metricsTable = &table{name: "metrics", cols: join(
		defs("metric_id", tString, "timestamp", tTime, "trace_id", tString, "span_id", tString,
			"name", tLowCard, "value", tFloat64, "labels", tStrMap),
		correlationDefs,
		defs("provider", tLowCard, "model", tLowCard, "estimated_cost", tNullF64, "cost_unit", tLowCard,
			"cost_metadata", tString, "metadata", tString),
	)}
	scoresTable = &table{name: "scores", cols: join(
		defs("score_id", tString, "timestamp", tTime, "trace_id", tString, "span_id", tString,
			"score_trace_id", tString, "scorer_id", tLowCard, "scorer_name", tLowCard, "scorer_version", tString,
			"score_source", tLowCard, "score", tFloat64, "reason", tString, "target_entity_type", tLowCard),
		correlationDefs,
		defs("metadata", tString),
	)}
	feedbackTable = &table{name: "feedback", cols: join(
		defs("feedback_id", tString, "timestamp", tTime, "trace_id", tString, "span_id", tString,
			"feedback_source", tLowCard, "feedback_type", tLowCard, "value", tString, "value_string", tString,
			"value_number", tNullF64, "comment", tString, "source_id", tString, "feedback_user_id", tString),
		correlationDefs,
		defs("metadata", tString),
	)}
	allTables = []*table{spansTable, logsTable, metricsTable, scoresTable, feedbackTable}
)

// DateTime64(9) holds 1900-01-01 to 2262-04-11 (int64 nanoseconds since 1970), the
// range schema.Decode accepts; the driver would silently wrap a time outside it, so
// rows that did not come through Decode are checked too.
var (
	minTime = schema.MinTime
	maxTime = schema.MaxTime
)

func checkTime(what string, t time.Time) error {
	if t.Before(minTime) || t.After(maxTime) {
		return fmt.Errorf("%s %s is outside the range of DateTime64(9) (1900-01-01 to 2262-04-11)", what, t.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// day is the partition of a time: days since 1970-01-01 in UTC, clamped to the range
// of ClickHouse's Date as toDate() does.
func day(t time.Time) int32 {
	d := t.Unix() / 86400
	if t.Unix() < 0 && t.Unix()%86400 != 0 {
		d--
	}
	return int32(min(max(d, 0), 65535))
}

// text returns a JSON payload as a string without copying it: the batch owns the
// bytes and nothing writes to them while an insert runs, and the driver copies the
// string into its column buffer. Absent payloads and JSON null become the empty string.
func text(v jsontext.Value) string {
	if len(v) == 0 || string(v) == "null" {
		return ""
	}
	return unsafe.String(unsafe.SliceData(v), len(v))
}

// Column builders. Each holds its table's columns as ch-go native columns, in the
// table's order (newCols builds them from the column types), reused by every insert:
// reset keeps their buffers and drops the batch's strings. add appends one row
// through a cursor over the columns; input returns them for the INSERT. Strings are
// shared with the batch, not copied: they are copied once, when the block is encoded
// into the connection's buffer.

// strCol is a String column of strings that belong to the batch.
type strCol []string

func (c *strCol) Type() proto.ColumnType { return proto.ColumnTypeString }
func (c *strCol) Rows() int              { return len(*c) }
func (c *strCol) Reset()                 { clear(*c); *c = (*c)[:0] }

func (c *strCol) EncodeColumn(b *proto.Buffer) {
	n := 0
	for _, s := range *c {
		n += len(s) + binary.MaxVarintLen32
	}
	b.Buf = slices.Grow(b.Buf, n)
	for _, s := range *c {
		b.PutString(s)
	}
}

// largeString is the length from which WriteColumn hands a string to the connection
// as it is, for one vectored write, instead of copying it into the buffer: payloads
// are most of a span's bytes, and the buffer would otherwise hold a whole insert.
const largeString = 256

// WriteColumn is the encoding of an uncompressed connection (compressed blocks are
// encoded whole with EncodeColumn): small strings are copied into the buffer with
// the length of each, large ones are written from the batch's memory, which stays
// untouched until the insert returns.
func (c *strCol) WriteColumn(w *proto.Writer) {
	r := strRun{col: *c}
	put := r.put
	for r.next < len(r.col) {
		w.ChainBuffer(put)
		if r.next < len(r.col) {
			s := r.col[r.next]
			w.ChainWrite(unsafe.Slice(unsafe.StringData(s), len(s)))
			r.next++
		}
	}
}

// strRun encodes strings from next on up to the next large one, whose length only
// it writes.
type strRun struct {
	col  []string
	next int
}

func (r *strRun) put(b *proto.Buffer) {
	for ; r.next < len(r.col); r.next++ {
		s := r.col[r.next]
		if len(s) >= largeString {
			b.PutLen(len(s))
			return
		}
		b.PutString(s)
	}
}

type lowCard = proto.ColLowCardinality[string]

// newCol returns an empty native column of a type of table.cols.
func newCol(typ string) proto.ColInput {
	switch typ {
	case tString:
		return new(strCol)
	case tLowCard:
		return new(proto.ColStr).LowCardinality()
	case tTags:
		return proto.NewArray[string](new(proto.ColStr).LowCardinality())
	case tStrMap:
		return proto.NewMap[string, string](new(proto.ColStr).LowCardinality(), new(proto.ColStr))
	case tTime:
		return new(proto.ColDateTime64).WithPrecision(proto.PrecisionNano).WithLocation(time.UTC)
	case tNullTime:
		return new(proto.ColDateTime64).WithPrecision(proto.PrecisionNano).WithLocation(time.UTC).Nullable()
	case tUInt64:
		return new(proto.ColUInt64)
	case tUInt8:
		return new(proto.ColUInt8)
	case tFloat64:
		return new(proto.ColFloat64)
	case tNullF64:
		return new(proto.ColFloat64).Nullable()
	case tBool:
		return new(proto.ColBool)
	}
	panic("clickhouse: no native column for type " + typ)
}

// release drops the column's references to the batch's strings, which the
// LowCardinality columns keep in their values until they are overwritten.
func release(c proto.ColInput) {
	switch c := c.(type) {
	case *lowCard:
		clear(c.Values)
	case *proto.ColArr[string]:
		release(c.Data)
	case *proto.ColMap[string, string]:
		release(c.Keys)
	}
}

// nativeCols is the columns of one table and the cursor add writes through.
type nativeCols struct {
	in   proto.Input
	next int // column of the next value
}

func (c *nativeCols) init(t *table) {
	if c.in != nil {
		return
	}
	c.in = make(proto.Input, len(t.cols))
	for i, d := range t.cols {
		c.in[i] = proto.InputColumn{Name: d.name, Data: newCol(d.typ)}
	}
}

func (c *nativeCols) reset() {
	for _, col := range c.in {
		release(col.Data)
		col.Data.(proto.Resettable).Reset()
	}
	c.next = 0
}

func (c *nativeCols) input() proto.Input { return c.in }

// take returns the next column; a row ends when it has taken every column.
func (c *nativeCols) take() proto.ColInput {
	col := c.in[c.next].Data
	if c.next++; c.next == len(c.in) {
		c.next = 0
	}
	return col
}

func (c *nativeCols) str(v string) {
	switch col := c.take().(type) {
	case *strCol:
		*col = append(*col, v)
	case *lowCard:
		col.Append(v)
	default:
		panic(fmt.Sprintf("clickhouse: string into %T", col))
	}
}

func (c *nativeCols) u64(v uint64)  { c.take().(*proto.ColUInt64).Append(v) }
func (c *nativeCols) u8(v uint8)    { c.take().(*proto.ColUInt8).Append(v) }
func (c *nativeCols) f64(v float64) { c.take().(*proto.ColFloat64).Append(v) }
func (c *nativeCols) boolean(v bool) {
	c.take().(*proto.ColBool).Append(v)
}
func (c *nativeCols) time(v time.Time) { c.take().(*proto.ColDateTime64).Append(v) }
func (c *nativeCols) tags(v []string)  { c.take().(*proto.ColArr[string]).Append(v) }
func (c *nativeCols) strMap(v map[string]string) {
	c.take().(*proto.ColMap[string, string]).Append(v)
}

// ntime appends v, or NULL when it is zero.
func (c *nativeCols) ntime(v time.Time) {
	c.take().(*proto.ColNullable[time.Time]).Append(proto.Nullable[time.Time]{Value: v, Set: !v.IsZero()})
}

// nf64 appends *v, or NULL when v is nil.
func (c *nativeCols) nf64(v *float64) {
	var n proto.Nullable[float64]
	if v != nil {
		n = proto.NewNullable(*v)
	}
	c.take().(*proto.ColNullable[float64]).Append(n)
}

// corr appends the columns of correlationDefs.
func (c *nativeCols) corr(x *schema.Correlation) {
	if x == nil {
		x = &schema.Correlation{}
	}
	for _, v := range [...]string{
		x.EntityType, x.EntityID, x.EntityName, x.EntityVersionID,
		x.ParentEntityType, x.ParentEntityID, x.ParentEntityName, x.ParentEntityVersionID,
		x.RootEntityType, x.RootEntityID, x.RootEntityName, x.RootEntityVersionID,
		x.UserID, x.OrganizationID, x.ResourceID, x.RunID, x.SessionID, x.ThreadID,
		x.RequestID, x.Environment, x.Source, x.ServiceName, x.ExperimentID,
	} {
		c.str(v)
	}
	c.tags(x.Tags)
}

// corrSize estimates the bytes of a correlation's values.
func corrSize(x *schema.Correlation) int {
	if x == nil {
		return 0
	}
	n := len(x.EntityType) + len(x.EntityID) + len(x.EntityName) + len(x.EntityVersionID) +
		len(x.ParentEntityType) + len(x.ParentEntityID) + len(x.ParentEntityName) + len(x.ParentEntityVersionID) +
		len(x.RootEntityType) + len(x.RootEntityID) + len(x.RootEntityName) + len(x.RootEntityVersionID) +
		len(x.UserID) + len(x.OrganizationID) + len(x.ResourceID) + len(x.RunID) + len(x.SessionID) +
		len(x.ThreadID) + len(x.RequestID) + len(x.Environment) + len(x.Source) + len(x.ServiceName) +
		len(x.ExperimentID)
	for _, t := range x.Tags {
		n += len(t) + 1
	}
	return n
}

// rowOverhead approximates the fixed-size columns and length prefixes of a row.
const rowOverhead = 128

type spanCols struct{ nativeCols }

func (c *spanCols) reset(int) { c.init(spansTable); c.nativeCols.reset() }

func (c *spanCols) add(s *schema.Span) error {
	if err := checkTime("started_at", s.StartTime); err != nil {
		return fmt.Errorf("span %s/%s: %w", s.TraceID, s.SpanID, err)
	}
	if !s.EndTime.IsZero() {
		if err := checkTime("ended_at", s.EndTime); err != nil {
			return fmt.Errorf("span %s/%s: %w", s.TraceID, s.SpanID, err)
		}
	}
	errJSON := ""
	if s.ErrorInfo != nil {
		b, err := json.Marshal(s.ErrorInfo, json.Deterministic(true))
		if err != nil {
			return fmt.Errorf("span %s/%s: encode errorInfo: %w", s.TraceID, s.SpanID, err)
		}
		errJSON = string(b)
	}
	c.str(s.TraceID)
	c.str(s.SpanID)
	c.u64(s.Version)
	c.u8(s.Rank())
	c.str(s.ParentSpanID)
	c.str(s.ExternalParentSpanID)
	c.str(s.Name)
	c.str(string(s.Type))
	c.corr(&s.Correlation)
	c.time(s.StartTime)
	c.ntime(s.EndTime)
	c.str(text(s.Attributes))
	c.str(text(s.Metadata))
	c.str(text(s.Input))
	c.str(text(s.Output))
	c.str(errJSON)
	c.str(text(s.RequestContext))
	c.boolean(s.IsEvent)
	c.boolean(s.IsRootSpan)
	c.boolean(s.IsInternal)
	return nil
}

func spanMeta(s *schema.Span) (int32, int) {
	n := rowOverhead + len(s.TraceID) + len(s.SpanID) + len(s.ParentSpanID) + len(s.ExternalParentSpanID) +
		len(s.Name) + len(s.Type) + corrSize(&s.Correlation) + len(s.Attributes) + len(s.Metadata) +
		len(s.Input) + len(s.Output) + len(s.RequestContext)
	if s.ErrorInfo != nil {
		n += len(s.ErrorInfo.Message) + len(s.ErrorInfo.Stack) + len(s.ErrorInfo.Details) + 64
	}
	return day(s.StartTime), n
}

func spanKey(h *xxhash.Digest, s *schema.Span) {
	var b [9]byte
	_, _ = h.WriteString(s.TraceID)
	_, _ = h.WriteString("\x00")
	_, _ = h.WriteString(s.SpanID)
	_, _ = h.WriteString("\x00")
	_, _ = h.Write(append(binary.LittleEndian.AppendUint64(b[:0], s.Version), s.Rank()))
}

type logCols struct{ nativeCols }

func (c *logCols) reset(int) { c.init(logsTable); c.nativeCols.reset() }

func (c *logCols) add(l *schema.Log) error {
	if err := checkTime("timestamp", l.Timestamp); err != nil {
		return fmt.Errorf("log %s: %w", l.LogID, err)
	}
	c.str(l.LogID)
	c.time(l.Timestamp)
	c.str(l.TraceID)
	c.str(l.SpanID)
	c.str(l.Level)
	c.str(l.Message)
	c.str(text(l.Data))
	c.corr(l.Correlation)
	c.str(text(l.Metadata))
	return nil
}

func logMeta(l *schema.Log) (int32, int) {
	return day(l.Timestamp), rowOverhead + len(l.LogID) + len(l.TraceID) + len(l.SpanID) + len(l.Level) +
		len(l.Message) + len(l.Data) + corrSize(l.Correlation) + len(l.Metadata)
}

func logKey(h *xxhash.Digest, l *schema.Log) {
	_, _ = h.WriteString(l.LogID)
	_, _ = h.WriteString("\x00")
}

type metricCols struct{ nativeCols }

func (c *metricCols) reset(int) { c.init(metricsTable); c.nativeCols.reset() }

func (c *metricCols) add(m *schema.Metric) error {
	if err := checkTime("timestamp", m.Timestamp); err != nil {
		return fmt.Errorf("metric %s: %w", m.MetricID, err)
	}
	cc := m.CostContext
	if cc == nil {
		cc = &schema.CostContext{}
	}
	c.str(m.MetricID)
	c.time(m.Timestamp)
	c.str(m.TraceID)
	c.str(m.SpanID)
	c.str(m.Name)
	c.f64(m.Value)
	c.strMap(m.Labels)
	c.corr(m.Correlation)
	c.str(cc.Provider)
	c.str(cc.Model)
	c.nf64(cc.EstimatedCost)
	c.str(cc.CostUnit)
	c.str(text(cc.CostMetadata))
	c.str(text(m.Metadata))
	return nil
}

func metricMeta(m *schema.Metric) (int32, int) {
	n := rowOverhead + len(m.MetricID) + len(m.TraceID) + len(m.SpanID) + len(m.Name) +
		corrSize(m.Correlation) + len(m.Metadata)
	for k, v := range m.Labels {
		n += len(k) + len(v) + 2
	}
	if cc := m.CostContext; cc != nil {
		n += len(cc.Provider) + len(cc.Model) + len(cc.CostUnit) + len(cc.CostMetadata)
	}
	return day(m.Timestamp), n
}

func metricKey(h *xxhash.Digest, m *schema.Metric) {
	_, _ = h.WriteString(m.MetricID)
	_, _ = h.WriteString("\x00")
}

type scoreCols struct{ nativeCols }

func (c *scoreCols) reset(int) { c.init(scoresTable); c.nativeCols.reset() }

func (c *scoreCols) add(s *schema.Score) error {
	if err := checkTime("timestamp", s.Timestamp); err != nil {
		return fmt.Errorf("score %s: %w", s.ScoreID, err)
	}
	c.str(s.ScoreID)
	c.time(s.Timestamp)
	c.str(s.TraceID)
	c.str(s.SpanID)
	c.str(s.ScoreTraceID)
	c.str(s.ScorerID)
	c.str(s.ScorerName)
	c.str(s.ScorerVersion)
	c.str(s.ScoreSource)
	c.f64(s.Score)
	c.str(s.Reason)
	c.str(s.TargetEntityType)
	c.corr(s.Correlation)
	c.str(text(s.Metadata))
	return nil
}

func scoreMeta(s *schema.Score) (int32, int) {
	return day(s.Timestamp), rowOverhead + len(s.ScoreID) + len(s.TraceID) + len(s.SpanID) +
		len(s.ScoreTraceID) + len(s.ScorerID) + len(s.ScorerName) + len(s.ScorerVersion) +
		len(s.ScoreSource) + len(s.Reason) + len(s.TargetEntityType) + corrSize(s.Correlation) + len(s.Metadata)
}

func scoreKey(h *xxhash.Digest, s *schema.Score) {
	_, _ = h.WriteString(s.ScoreID)
	_, _ = h.WriteString("\x00")
}

type feedbackCols struct{ nativeCols }

func (c *feedbackCols) reset(int) { c.init(feedbackTable); c.nativeCols.reset() }

func (c *feedbackCols) add(f *schema.Feedback) error {
	if err := checkTime("timestamp", f.Timestamp); err != nil {
		return fmt.Errorf("feedback %s: %w", f.FeedbackID, err)
	}
	var (
		vString string
		vNumber *float64
	)
	switch f.Value.Kind() {
	case '"':
		if err := json.Unmarshal(f.Value, &vString); err != nil {
			return fmt.Errorf("feedback %s: decode value: %w", f.FeedbackID, err)
		}
	case '0':
		n, err := strconv.ParseFloat(strings.TrimSpace(string(f.Value)), 64)
		if err != nil {
			return fmt.Errorf("feedback %s: decode value: %w", f.FeedbackID, err)
		}
		vNumber = &n
	}
	// value is the value as text, as on DuckDB: a string as itself, a number as its
	// JSON text; value_string and value_number tell the kinds apart.
	value := text(f.Value)
	switch {
	case f.Value.Kind() == '"':
		value = vString
	case value == "":
		value = "null"
	}
	c.str(f.FeedbackID)
	c.time(f.Timestamp)
	c.str(f.TraceID)
	c.str(f.SpanID)
	c.str(f.FeedbackSource)
	c.str(f.FeedbackType)
	c.str(value)
	c.str(vString)
	c.nf64(vNumber)
	c.str(f.Comment)
	c.str(f.SourceID)
	c.str(f.FeedbackUserID)
	c.corr(f.Correlation)
	c.str(text(f.Metadata))
	return nil
}

func feedbackMeta(f *schema.Feedback) (int32, int) {
	return day(f.Timestamp), rowOverhead + len(f.FeedbackID) + len(f.TraceID) + len(f.SpanID) +
		len(f.FeedbackSource) + len(f.FeedbackType) + 2*len(f.Value) + len(f.Comment) + len(f.SourceID) +
		len(f.FeedbackUserID) + corrSize(f.Correlation) + len(f.Metadata)
}

func feedbackKey(h *xxhash.Digest, f *schema.Feedback) {
	_, _ = h.WriteString(f.FeedbackID)
	_, _ = h.WriteString("\x00")
}
