package duckdb

import (
	"database/sql/driver"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/schema"
)

// conflictMode is what a merge does with a row whose key is already stored.
type conflictMode int

const (
	// keepFirst leaves the stored row alone (immutable observations).
	keepFirst conflictMode = iota
	// replaceIfNewer overwrites the stored row only with a row whose newer columns
	// are equal or greater, compared in order.
	replaceIfNewer
)

// table describes how one signal is staged and merged. cols are the data columns in
// the order the row builders produce them, then extra, columns that order rows but
// are no field of the signal (a span's rank); the stage table has them plus seq, the
// row's position in the batch, which breaks ties so that the merge is deterministic.
type table struct {
	name     string
	stage    string
	key      []string
	cols     []string
	extra    []string
	conflict conflictMode
	// newer are the columns that say which of two rows of a key is the newer one
	// (replaceIfNewer), compared in order.
	newer []string
	// updatedAt tells whether the table has an updated_at column (tables that
	// replace rows); every table has created_at.
	updatedAt bool

	createStage string
	merge       string
	clearStage  string
}

// correlationCols are the columns of [schema.Correlation], in the order
// appendCorrelation produces them.
var correlationCols = []string{
	"entity_type", "entity_id", "entity_name", "entity_version_id",
	"parent_entity_type", "parent_entity_id", "parent_entity_name", "parent_entity_version_id",
	"root_entity_type", "root_entity_id", "root_entity_name", "root_entity_version_id",
	"user_id", "organization_id", "resource_id", "run_id", "session_id", "thread_id",
	"request_id", "environment", "source", "service_name", "experiment_id", "tags",
}

func cols(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Spans are appended to span_versions (see migration 0005) and read through the
// spans view. A score or feedback is replaced by one with an equal or later
// timestamp: a replayed older record never overwrites a newer one, and a redelivery
// rewrites the same values.
var (
	spansTable = newVersionTable("spans", spanVersions, cols(
		[]string{"trace_id", "span_id", "version", "parent_span_id", "external_parent_span_id", "name", "span_type"},
		correlationCols,
		[]string{
			"started_at", "ended_at", "attributes", "metadata", "input", "output", "error",
			"request_context", "is_event", "is_root_span", "is_internal",
		},
	), "rank", "seq", "created_at", "updated_at")
	logsTable = newTable("logs", []string{"log_id"}, nil, cols(
		[]string{"log_id", "timestamp", "trace_id", "span_id", "level", "message", "data"},
		correlationCols,
		[]string{"metadata"},
	))
	metricsTable = newTable("metrics", []string{"metric_id"}, nil, cols(
		[]string{"metric_id", "timestamp", "trace_id", "span_id", "name", "value", "labels"},
		correlationCols,
		[]string{"provider", "model", "estimated_cost", "cost_unit", "cost_metadata", "metadata"},
	))
	scoresTable = newTable("scores", []string{"score_id"}, []string{"timestamp"}, cols(
		[]string{
			"score_id", "timestamp", "trace_id", "span_id", "score_trace_id", "scorer_id",
			"scorer_name", "scorer_version", "score_source", "score", "reason", "target_entity_type",
		},
		correlationCols,
		[]string{"metadata"},
	))
	feedbackTable = newTable("feedback", []string{"feedback_id"}, []string{"timestamp"}, cols(
		[]string{
			"feedback_id", "timestamp", "trace_id", "span_id", "feedback_source", "feedback_type",
			"value", "value_string", "value_number", "comment", "source_id", "feedback_user_id",
		},
		correlationCols,
		[]string{"metadata"},
	))
	allTables = []*table{spansTable, logsTable, metricsTable, scoresTable, feedbackTable}
)

func quote(ident string) string { return `"` + ident + `"` }

func quoteAll(idents []string) string {
	q := make([]string, len(idents))
	for i, id := range idents {
		q[i] = quote(id)
	}
	return strings.Join(q, ", ")
}

// spanVersions is the table that holds every stored snapshot of a span.
const spanVersions = "span_versions"

// loadNextSeq reads the first seq not handed out: spanpipe_span_state's next_seq
// (migration 0005) is only brought up to date by compactions (see seqCounter), so
// the rows after it count too. A compaction deletes only rows up to compacted_seq,
// so a deleted row's seq is never handed out again.
const loadNextSeq = `SELECT greatest(s.next_seq, c.compacted_seq + 1,
		(SELECT coalesce(max(seq), 0) + 1 FROM main.span_versions))
	FROM main.spanpipe_span_state s, main.spanpipe_span_compaction c`

// newVersionTable describes a signal appended without a key to versions: the
// appender fills its columns in the order of columns then extra. Preparing the
// connection checks that the table has them.
func newVersionTable(name, versions string, columns []string, extra ...string) *table {
	return &table{
		name:        name,
		cols:        columns,
		extra:       extra,
		createStage: fmt.Sprintf("SELECT %s FROM main.%s LIMIT 0", quoteAll(append(slices.Clone(columns), extra...)), quote(versions)),
	}
}

// newTable builds the table's statements once, so that Write only executes them.
// With newer columns the table replaces older rows of a key (replaceIfNewer);
// without, it keeps the first row written (keepFirst).
func newTable(name string, key, newer, columns []string, extra ...string) *table {
	mode := keepFirst
	if len(newer) > 0 {
		mode = replaceIfNewer
	}
	t := &table{
		name:      name,
		stage:     "spanpipe_stage_" + name,
		key:       key,
		cols:      columns,
		extra:     extra,
		conflict:  mode,
		newer:     newer,
		updatedAt: mode != keepFirst,
	}
	all := append(slices.Clone(columns), extra...)
	// The stage table copies the column types of the real table and none of its
	// constraints, so that a batch with a key twice can be staged.
	t.createStage = fmt.Sprintf("CREATE TEMP TABLE IF NOT EXISTS %s AS SELECT %s, 0::BIGINT AS seq FROM main.%s LIMIT 0",
		t.stage, quoteAll(all), quote(name))
	t.clearStage = "DELETE FROM temp.main." + t.stage

	// One row per key: the newest (the last in the batch on a tie) for replaced
	// tables, the first for kept ones.
	order := "seq ASC"
	if mode == replaceIfNewer {
		var o []string
		for _, c := range newer {
			o = append(o, quote(c)+" DESC")
		}
		order = strings.Join(append(o, "seq DESC"), ", ")
	}
	insertCols, selectCols := quoteAll(all)+", created_at", quoteAll(all)+", $1::TIMESTAMP"
	if t.updatedAt {
		insertCols += ", updated_at"
		selectCols += ", $1::TIMESTAMP"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO main.%s (%s) SELECT %s FROM temp.main.%s QUALIFY row_number() OVER (PARTITION BY %s ORDER BY %s) = 1 ",
		quote(name), insertCols, selectCols, t.stage, quoteAll(key), order)
	if mode == keepFirst {
		fmt.Fprintf(&b, "ON CONFLICT (%s) DO NOTHING", quoteAll(key))
	} else {
		var set []string
		for _, c := range all {
			if !isKey(key, c) {
				set = append(set, fmt.Sprintf("%s = excluded.%s", quote(c), quote(c)))
			}
		}
		set = append(set, "updated_at = excluded.updated_at")
		// An older row never overwrites a newer one; an equal one (a redelivery)
		// rewrites identical values. Row values compare column by column.
		stored := make([]string, len(newer))
		incoming := make([]string, len(newer))
		for i, c := range newer {
			stored[i] = quote(name) + "." + quote(c)
			incoming[i] = "excluded." + quote(c)
		}
		fmt.Fprintf(&b, "ON CONFLICT (%s) DO UPDATE SET %s WHERE (%s) >= (%s)", quoteAll(key), strings.Join(set, ", "),
			strings.Join(incoming, ", "), strings.Join(stored, ", "))
	}
	t.merge = b.String()
	return t
}

func isKey(key []string, c string) bool {
	for _, k := range key {
		if k == c {
			return true
		}
	}
	return false
}

// Row builders. Each appends one row's values, in the order of the table's cols, to
// row (which the caller reuses) and returns it. Empty optional strings and payloads
// become NULL.

func str(s string) driver.Value {
	if s == "" {
		return nil
	}
	return s
}

// jsonText returns the payload as JSON text, or NULL when it is absent or JSON null.
// jsontext.Value is a named []byte, which the appender does not accept as is.
func jsonText(v jsontext.Value) driver.Value {
	if len(v) == 0 || string(v) == "null" {
		return nil
	}
	return []byte(v)
}

func ts(t time.Time) driver.Value {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

func strList(s []string) driver.Value {
	if len(s) == 0 {
		return nil
	}
	return s
}

func appendCorrelation(row []driver.Value, c *schema.Correlation) []driver.Value {
	if c == nil {
		for range correlationCols {
			row = append(row, nil)
		}
		return row
	}
	return append(row,
		str(c.EntityType), str(c.EntityID), str(c.EntityName), str(c.EntityVersionID),
		str(c.ParentEntityType), str(c.ParentEntityID), str(c.ParentEntityName), str(c.ParentEntityVersionID),
		str(c.RootEntityType), str(c.RootEntityID), str(c.RootEntityName), str(c.RootEntityVersionID),
		str(c.UserID), str(c.OrganizationID), str(c.ResourceID), str(c.RunID), str(c.SessionID), str(c.ThreadID),
		str(c.RequestID), str(c.Environment), str(c.Source), str(c.ServiceName), str(c.ExperimentID),
		strList(c.Tags),
	)
}

func spanRow(row []driver.Value, s *schema.Span) ([]driver.Value, error) {
	var errInfo driver.Value
	if s.ErrorInfo != nil {
		b, err := json.Marshal(s.ErrorInfo)
		if err != nil {
			return row, fmt.Errorf("encode errorInfo of span %s/%s: %w", s.TraceID, s.SpanID, err)
		}
		errInfo = b
	}
	row = append(row, s.TraceID, s.SpanID, s.Version, str(s.ParentSpanID), str(s.ExternalParentSpanID),
		s.Name, string(s.Type))
	row = appendCorrelation(row, &s.Correlation)
	return append(row,
		s.StartTime.UTC(), ts(s.EndTime), jsonText(s.Attributes), jsonText(s.Metadata),
		jsonText(s.Input), jsonText(s.Output), errInfo, jsonText(s.RequestContext),
		s.IsEvent, s.IsRootSpan, s.IsInternal,
		s.Rank(),
	), nil
}

func logRow(row []driver.Value, l *schema.Log) ([]driver.Value, error) {
	row = append(row, l.LogID, l.Timestamp.UTC(), str(l.TraceID), str(l.SpanID), l.Level, l.Message, jsonText(l.Data))
	row = appendCorrelation(row, l.Correlation)
	return append(row, jsonText(l.Metadata)), nil
}

func metricRow(row []driver.Value, m *schema.Metric) ([]driver.Value, error) {
	// No labels are stored as {}, as Mastra does, so that label lookups need no
	// NULL case.
	var labels driver.Value = []byte("{}")
	if len(m.Labels) > 0 {
		// Deterministic, so that a redelivered metric has byte-identical labels.
		b, err := json.Marshal(m.Labels, json.Deterministic(true))
		if err != nil {
			return row, fmt.Errorf("encode labels of metric %s: %w", m.MetricID, err)
		}
		labels = b
	}
	row = append(row, m.MetricID, m.Timestamp.UTC(), str(m.TraceID), str(m.SpanID), m.Name, m.Value, labels)
	row = appendCorrelation(row, m.Correlation)
	if c := m.CostContext; c != nil {
		var cost driver.Value
		if c.EstimatedCost != nil {
			cost = *c.EstimatedCost
		}
		row = append(row, str(c.Provider), str(c.Model), cost, str(c.CostUnit), jsonText(c.CostMetadata))
	} else {
		row = append(row, nil, nil, nil, nil, nil)
	}
	return append(row, jsonText(m.Metadata)), nil
}

func scoreRow(row []driver.Value, s *schema.Score) ([]driver.Value, error) {
	row = append(row, s.ScoreID, s.Timestamp.UTC(), str(s.TraceID), str(s.SpanID), str(s.ScoreTraceID),
		s.ScorerID, str(s.ScorerName), str(s.ScorerVersion), str(s.ScoreSource), s.Score, str(s.Reason),
		str(s.TargetEntityType))
	row = appendCorrelation(row, s.Correlation)
	return append(row, jsonText(s.Metadata)), nil
}

func feedbackRow(row []driver.Value, f *schema.Feedback) ([]driver.Value, error) {
	// value is the value as text (a string as itself, a number as its JSON text);
	// value_string and value_number tell the kinds apart. value is NOT NULL: an
	// absent value (validation rejects it) is stored as null rather than failing the
	// whole batch on the constraint.
	var vString, vNumber driver.Value
	value := []byte(f.Value)
	switch f.Value.Kind() {
	case '"':
		var s string
		if err := json.Unmarshal(f.Value, &s); err != nil {
			return row, fmt.Errorf("decode value of feedback %s: %w", f.FeedbackID, err)
		}
		vString, value = s, []byte(s)
	case '0':
		n, err := strconv.ParseFloat(strings.TrimSpace(string(f.Value)), 64)
		if err != nil {
			return row, fmt.Errorf("decode value of feedback %s: %w", f.FeedbackID, err)
		}
		vNumber = n
	}
	if len(value) == 0 && f.Value.Kind() != '"' {
		value = []byte("null")
	}
	row = append(row, f.FeedbackID, f.Timestamp.UTC(), str(f.TraceID), str(f.SpanID), str(f.FeedbackSource),
		f.FeedbackType, value, vString, vNumber, str(f.Comment), str(f.SourceID), str(f.FeedbackUserID))
	row = appendCorrelation(row, f.Correlation)
	return append(row, jsonText(f.Metadata)), nil
}
