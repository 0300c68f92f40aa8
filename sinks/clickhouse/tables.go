package clickhouse

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"

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

// Column builders. Each holds one typed slice per column of its table, in the
// table's order; add appends one row, columns returns the slices for
// driver.Batch.Column(i).Append, reset empties them for reuse. Strings are shared with
// the batch, not copied.

type corrCols struct {
	str  [23][]string
	tags [][]string
}

func (c *corrCols) reset() {
	for i := range c.str {
		clear(c.str[i])
		c.str[i] = c.str[i][:0]
	}
	clear(c.tags)
	c.tags = c.tags[:0]
}

func (c *corrCols) add(x *schema.Correlation) {
	if x == nil {
		x = &schema.Correlation{}
	}
	for i, v := range [23]string{
		x.EntityType, x.EntityID, x.EntityName, x.EntityVersionID,
		x.ParentEntityType, x.ParentEntityID, x.ParentEntityName, x.ParentEntityVersionID,
		x.RootEntityType, x.RootEntityID, x.RootEntityName, x.RootEntityVersionID,
		x.UserID, x.OrganizationID, x.ResourceID, x.RunID, x.SessionID, x.ThreadID,
		x.RequestID, x.Environment, x.Source, x.ServiceName, x.ExperimentID,
	} {
		c.str[i] = append(c.str[i], v)
	}
	tags := x.Tags
	if tags == nil {
		tags = []string{}
	}
	c.tags = append(c.tags, tags)
}

func (c *corrCols) appendTo(cols []any) []any {
	for i := range c.str {
		cols = append(cols, c.str[i])
	}
	return append(cols, c.tags)
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

type spanCols struct {
	traceID, spanID                 []string
	version                         []uint64
	rank                            []uint8
	parent, extParent, name, typ    []string
	corr                            corrCols
	startedAt                       []time.Time
	endedAt                         []*time.Time
	ends                            []time.Time // backing array of endedAt
	attributes, metadata            []string
	input, output, errJSON, request []string
	isEvent, isRoot, isInternal     []bool
}

func (c *spanCols) reset(n int) {
	for _, s := range []*[]string{&c.traceID, &c.spanID, &c.parent, &c.extParent, &c.name, &c.typ,
		&c.attributes, &c.metadata, &c.input, &c.output, &c.errJSON, &c.request} {
		clear(*s)
		*s = (*s)[:0]
	}
	c.version, c.rank = c.version[:0], c.rank[:0]
	c.corr.reset()
	c.startedAt = c.startedAt[:0]
	clear(c.endedAt)
	c.endedAt = c.endedAt[:0]
	// endedAt points into ends, so ends must not grow while rows are added.
	if cap(c.ends) < n {
		c.ends = make([]time.Time, 0, n)
	}
	c.ends = c.ends[:0]
	c.isEvent, c.isRoot, c.isInternal = c.isEvent[:0], c.isRoot[:0], c.isInternal[:0]
}

func (c *spanCols) add(s *schema.Span) error {
	if err := checkTime("started_at", s.StartTime); err != nil {
		return fmt.Errorf("span %s/%s: %w", s.TraceID, s.SpanID, err)
	}
	var ended *time.Time
	if !s.EndTime.IsZero() {
		if err := checkTime("ended_at", s.EndTime); err != nil {
			return fmt.Errorf("span %s/%s: %w", s.TraceID, s.SpanID, err)
		}
		if len(c.ends) == cap(c.ends) {
			return fmt.Errorf("span columns: more rows than reserved (%d)", cap(c.ends))
		}
		c.ends = append(c.ends, s.EndTime)
		ended = &c.ends[len(c.ends)-1]
	}
	errJSON := ""
	if s.ErrorInfo != nil {
		b, err := json.Marshal(s.ErrorInfo, json.Deterministic(true))
		if err != nil {
			return fmt.Errorf("span %s/%s: encode errorInfo: %w", s.TraceID, s.SpanID, err)
		}
		errJSON = string(b)
	}
	c.traceID = append(c.traceID, s.TraceID)
	c.spanID = append(c.spanID, s.SpanID)
	c.version = append(c.version, s.Version)
	c.rank = append(c.rank, s.Rank())
	c.parent = append(c.parent, s.ParentSpanID)
	c.extParent = append(c.extParent, s.ExternalParentSpanID)
	c.name = append(c.name, s.Name)
	c.typ = append(c.typ, string(s.Type))
	c.corr.add(&s.Correlation)
	c.startedAt = append(c.startedAt, s.StartTime)
	c.endedAt = append(c.endedAt, ended)
	c.attributes = append(c.attributes, text(s.Attributes))
	c.metadata = append(c.metadata, text(s.Metadata))
	c.input = append(c.input, text(s.Input))
	c.output = append(c.output, text(s.Output))
	c.errJSON = append(c.errJSON, errJSON)
	c.request = append(c.request, text(s.RequestContext))
	c.isEvent = append(c.isEvent, s.IsEvent)
	c.isRoot = append(c.isRoot, s.IsRootSpan)
	c.isInternal = append(c.isInternal, s.IsInternal)
	return nil
}

func (c *spanCols) columns() []any {
	cols := make([]any, 0, len(spansTable.cols))
	cols = append(cols, c.traceID, c.spanID, c.version, c.rank, c.parent, c.extParent, c.name, c.typ)
	cols = c.corr.appendTo(cols)
	return append(cols, c.startedAt, c.endedAt, c.attributes, c.metadata,
		c.input, c.output, c.errJSON, c.request, c.isEvent, c.isRoot, c.isInternal)
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

type logCols struct {
	id                          []string
	ts                          []time.Time
	traceID, spanID, level, msg []string
	data                        []string
	corr                        corrCols
	metadata                    []string
}

func (c *logCols) reset(int) {
	for _, s := range []*[]string{&c.id, &c.traceID, &c.spanID, &c.level, &c.msg, &c.data, &c.metadata} {
		clear(*s)
		*s = (*s)[:0]
	}
	c.ts = c.ts[:0]
	c.corr.reset()
}

func (c *logCols) add(l *schema.Log) error {
	if err := checkTime("timestamp", l.Timestamp); err != nil {
		return fmt.Errorf("log %s: %w", l.LogID, err)
	}
	c.id = append(c.id, l.LogID)
	c.ts = append(c.ts, l.Timestamp)
	c.traceID = append(c.traceID, l.TraceID)
	c.spanID = append(c.spanID, l.SpanID)
	c.level = append(c.level, l.Level)
	c.msg = append(c.msg, l.Message)
	c.data = append(c.data, text(l.Data))
	c.corr.add(l.Correlation)
	c.metadata = append(c.metadata, text(l.Metadata))
	return nil
}

func (c *logCols) columns() []any {
	cols := make([]any, 0, len(logsTable.cols))
	cols = append(cols, c.id, c.ts, c.traceID, c.spanID, c.level, c.msg, c.data)
	cols = c.corr.appendTo(cols)
	return append(cols, c.metadata)
}

func logMeta(l *schema.Log) (int32, int) {
	return day(l.Timestamp), rowOverhead + len(l.LogID) + len(l.TraceID) + len(l.SpanID) + len(l.Level) +
		len(l.Message) + len(l.Data) + corrSize(l.Correlation) + len(l.Metadata)
}

func logKey(h *xxhash.Digest, l *schema.Log) {
	_, _ = h.WriteString(l.LogID)
	_, _ = h.WriteString("\x00")
}

type metricCols struct {
	id                     []string
	ts                     []time.Time
	traceID, spanID, name  []string
	value                  []float64
	labels                 []map[string]string
	corr                   corrCols
	provider, model        []string
	cost                   []*float64
	costs                  []float64 // backing array of cost
	costUnit, costMeta, md []string
}

func (c *metricCols) reset(n int) {
	for _, s := range []*[]string{&c.id, &c.traceID, &c.spanID, &c.name, &c.provider, &c.model,
		&c.costUnit, &c.costMeta, &c.md} {
		clear(*s)
		*s = (*s)[:0]
	}
	c.ts, c.value = c.ts[:0], c.value[:0]
	clear(c.labels)
	c.labels = c.labels[:0]
	c.corr.reset()
	clear(c.cost)
	c.cost = c.cost[:0]
	if cap(c.costs) < n {
		c.costs = make([]float64, 0, n)
	}
	c.costs = c.costs[:0]
}

func (c *metricCols) add(m *schema.Metric) error {
	if err := checkTime("timestamp", m.Timestamp); err != nil {
		return fmt.Errorf("metric %s: %w", m.MetricID, err)
	}
	labels := m.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	cc := m.CostContext
	if cc == nil {
		cc = &schema.CostContext{}
	}
	var cost *float64
	if cc.EstimatedCost != nil {
		if len(c.costs) == cap(c.costs) {
			return fmt.Errorf("metric columns: more rows than reserved (%d)", cap(c.costs))
		}
		c.costs = append(c.costs, *cc.EstimatedCost)
		cost = &c.costs[len(c.costs)-1]
	}
	c.id = append(c.id, m.MetricID)
	c.ts = append(c.ts, m.Timestamp)
	c.traceID = append(c.traceID, m.TraceID)
	c.spanID = append(c.spanID, m.SpanID)
	c.name = append(c.name, m.Name)
	c.value = append(c.value, m.Value)
	c.labels = append(c.labels, labels)
	c.corr.add(m.Correlation)
	c.provider = append(c.provider, cc.Provider)
	c.model = append(c.model, cc.Model)
	c.cost = append(c.cost, cost)
	c.costUnit = append(c.costUnit, cc.CostUnit)
	c.costMeta = append(c.costMeta, text(cc.CostMetadata))
	c.md = append(c.md, text(m.Metadata))
	return nil
}

func (c *metricCols) columns() []any {
	cols := make([]any, 0, len(metricsTable.cols))
	cols = append(cols, c.id, c.ts, c.traceID, c.spanID, c.name, c.value, c.labels)
	cols = c.corr.appendTo(cols)
	return append(cols, c.provider, c.model, c.cost, c.costUnit, c.costMeta, c.md)
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

type scoreCols struct {
	id                                          []string
	ts                                          []time.Time
	traceID, spanID, scoreTrace                 []string
	scorerID, scorerName, scorerVersion, source []string
	score                                       []float64
	reason, target                              []string
	corr                                        corrCols
	md                                          []string
}

func (c *scoreCols) reset(int) {
	for _, s := range []*[]string{&c.id, &c.traceID, &c.spanID, &c.scoreTrace, &c.scorerID, &c.scorerName,
		&c.scorerVersion, &c.source, &c.reason, &c.target, &c.md} {
		clear(*s)
		*s = (*s)[:0]
	}
	c.ts, c.score = c.ts[:0], c.score[:0]
	c.corr.reset()
}

func (c *scoreCols) add(s *schema.Score) error {
	if err := checkTime("timestamp", s.Timestamp); err != nil {
		return fmt.Errorf("score %s: %w", s.ScoreID, err)
	}
	c.id = append(c.id, s.ScoreID)
	c.ts = append(c.ts, s.Timestamp)
	c.traceID = append(c.traceID, s.TraceID)
	c.spanID = append(c.spanID, s.SpanID)
	c.scoreTrace = append(c.scoreTrace, s.ScoreTraceID)
	c.scorerID = append(c.scorerID, s.ScorerID)
	c.scorerName = append(c.scorerName, s.ScorerName)
	c.scorerVersion = append(c.scorerVersion, s.ScorerVersion)
	c.source = append(c.source, s.ScoreSource)
	c.score = append(c.score, s.Score)
	c.reason = append(c.reason, s.Reason)
	c.target = append(c.target, s.TargetEntityType)
	c.corr.add(s.Correlation)
	c.md = append(c.md, text(s.Metadata))
	return nil
}

func (c *scoreCols) columns() []any {
	cols := make([]any, 0, len(scoresTable.cols))
	cols = append(cols, c.id, c.ts, c.traceID, c.spanID, c.scoreTrace, c.scorerID, c.scorerName,
		c.scorerVersion, c.source, c.score, c.reason, c.target)
	cols = c.corr.appendTo(cols)
	return append(cols, c.md)
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

type feedbackCols struct {
	id                           []string
	ts                           []time.Time
	traceID, spanID, source, typ []string
	value, valueString           []string
	valueNumber                  []*float64
	numbers                      []float64 // backing array of valueNumber
	comment, sourceID, userID    []string
	corr                         corrCols
	md                           []string
}

func (c *feedbackCols) reset(n int) {
	for _, s := range []*[]string{&c.id, &c.traceID, &c.spanID, &c.source, &c.typ, &c.value, &c.valueString,
		&c.comment, &c.sourceID, &c.userID, &c.md} {
		clear(*s)
		*s = (*s)[:0]
	}
	c.ts = c.ts[:0]
	clear(c.valueNumber)
	c.valueNumber = c.valueNumber[:0]
	if cap(c.numbers) < n {
		c.numbers = make([]float64, 0, n)
	}
	c.numbers = c.numbers[:0]
	c.corr.reset()
}

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
		if len(c.numbers) == cap(c.numbers) {
			return fmt.Errorf("feedback columns: more rows than reserved (%d)", cap(c.numbers))
		}
		c.numbers = append(c.numbers, n)
		vNumber = &c.numbers[len(c.numbers)-1]
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
	c.id = append(c.id, f.FeedbackID)
	c.ts = append(c.ts, f.Timestamp)
	c.traceID = append(c.traceID, f.TraceID)
	c.spanID = append(c.spanID, f.SpanID)
	c.source = append(c.source, f.FeedbackSource)
	c.typ = append(c.typ, f.FeedbackType)
	c.value = append(c.value, value)
	c.valueString = append(c.valueString, vString)
	c.valueNumber = append(c.valueNumber, vNumber)
	c.comment = append(c.comment, f.Comment)
	c.sourceID = append(c.sourceID, f.SourceID)
	c.userID = append(c.userID, f.FeedbackUserID)
	c.corr.add(f.Correlation)
	c.md = append(c.md, text(f.Metadata))
	return nil
}

func (c *feedbackCols) columns() []any {
	cols := make([]any, 0, len(feedbackTable.cols))
	cols = append(cols, c.id, c.ts, c.traceID, c.spanID, c.source, c.typ, c.value, c.valueString,
		c.valueNumber, c.comment, c.sourceID, c.userID)
	cols = c.corr.appendTo(cols)
	return append(cols, c.md)
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
