package clickhouse

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	chgo "github.com/ClickHouse/ch-go"
	chproto "github.com/ClickHouse/ch-go/proto"
	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
)

// fakeBatch stands in for the driver's batch: it holds real clickhouse-go columns
// built from the table's column types, as the driver does after the server sent the
// insert header, so appends convert and fail exactly as they would on a server. For
// an insert of native columns (Writer.do), it holds the block the server would have
// received, decoded by clickhouse-go.
type fakeBatch struct {
	driver.Batch // not implemented: calling other methods panics
	table        *table
	query        string
	settings     ch.Settings
	block        *proto.Block
	decoded      *proto.Block
	sent         bool
	aborted      bool
	sendErr      error
}

func newFakeBatch(t *table, query string, settings ch.Settings) (*fakeBatch, error) {
	block := proto.NewBlock()
	for _, c := range t.cols {
		if err := block.AddColumn(c.name, column.Type(c.typ)); err != nil {
			return nil, fmt.Errorf("column %s %s: %w", c.name, c.typ, err)
		}
	}
	return &fakeBatch{table: t, query: query, settings: settings, block: block}, nil
}

type fakeColumn struct{ c column.Interface }

func (c fakeColumn) Append(v any) error    { _, err := c.c.Append(v); return err }
func (c fakeColumn) AppendRow(v any) error { return c.c.AppendRow(v) }

func (b *fakeBatch) Column(i int) driver.BatchColumn { return fakeColumn{b.block.Columns[i]} }
func (b *fakeBatch) Columns() []column.Interface     { return b.block.Columns }
func (b *fakeBatch) Rows() int                       { return b.block.Rows() }
func (b *fakeBatch) IsSent() bool                    { return b.sent || b.aborted }
func (b *fakeBatch) Abort() error                    { b.aborted = true; return nil }
func (b *fakeBatch) Close() error                    { return nil }

func (b *fakeBatch) Send() error {
	if b.sendErr != nil {
		return b.sendErr
	}
	b.sent = true
	return nil
}

// token is the batch's insert_deduplication_token ("" when none).
func (b *fakeBatch) token() string {
	s, _ := b.settings["insert_deduplication_token"].(string)
	return s
}

// native encodes the block in ClickHouse's Native format, as a file that
// `SELECT * FROM file(path, 'Native')` reads.
func (b *fakeBatch) native() ([]byte, error) {
	var buf chproto.Buffer
	if err := b.block.Encode(&buf, 0); err != nil {
		return nil, err
	}
	return buf.Buf, nil
}

// value returns the value of column name in row i, read back from the block encoded
// in Native format and decoded again.
func (b *fakeBatch) value(t *testing.T, name string, i int) any {
	t.Helper()
	if b.decoded == nil {
		buf, err := b.native()
		if err != nil {
			t.Fatalf("encode %s block: %v", b.table.name, err)
		}
		b.decoded = proto.NewBlock()
		if err := b.decoded.Decode(chproto.NewReader(bytes.NewReader(buf)), 0); err != nil {
			t.Fatalf("decode %s block: %v", b.table.name, err)
		}
	}
	for j, c := range b.table.cols {
		if c.name == name {
			return b.decoded.Columns[j].Row(i, false)
		}
	}
	t.Fatalf("table %s has no column %s", b.table.name, name)
	return nil
}

// nativeBatch records an insert of native columns: their block, encoded in Native
// format as the client sends it and decoded again.
func nativeBatch(t *table, q chgo.Query) (*fakeBatch, error) {
	// As ch-go writes it on an uncompressed connection (the loopback default).
	var out bytes.Buffer
	cw := chproto.NewWriter(&out, new(chproto.Buffer))
	blk := chproto.Block{Columns: len(q.Input)}
	if len(q.Input) > 0 {
		blk.Rows = q.Input[0].Data.Rows()
	}
	if err := blk.WriteBlock(cw, 0, q.Input); err != nil {
		return nil, err
	}
	if _, err := cw.Flush(); err != nil {
		return nil, err
	}
	decoded := proto.NewBlock()
	if err := decoded.Decode(chproto.NewReader(bytes.NewReader(out.Bytes())), 0); err != nil {
		return nil, fmt.Errorf("decode the block sent to %s: %w", t.name, err)
	}
	settings := ch.Settings{}
	for _, s := range q.Settings {
		if n, err := strconv.Atoi(s.Value); err == nil {
			settings[s.Key] = n
		} else {
			settings[s.Key] = s.Value
		}
	}
	return &fakeBatch{table: t, query: strings.TrimSuffix(q.Body, " VALUES"), settings: settings, block: decoded}, nil
}

// recorder replaces Writer.prepare and Writer.do and keeps every insert.
type recorder struct {
	inserts []*fakeBatch
	// fail, when set, is called for every insert before it is sent; its error is
	// returned by Send.
	fail func(n int, b *fakeBatch) error
}

func (r *recorder) prepare(w *Writer) func(ctx context.Context, query string, settings ch.Settings) (driver.Batch, error) {
	return func(ctx context.Context, query string, settings ch.Settings) (driver.Batch, error) {
		for t, q := range w.insertSQL {
			if q == query {
				b, err := newFakeBatch(t, query, settings)
				if err != nil {
					return nil, err
				}
				if r.fail != nil {
					b.sendErr = r.fail(len(r.inserts), b)
				}
				r.inserts = append(r.inserts, b)
				return b, nil
			}
		}
		return nil, fmt.Errorf("unexpected query %q", query)
	}
}

func (r *recorder) do(w *Writer) func(ctx context.Context, q chgo.Query) error {
	return func(ctx context.Context, q chgo.Query) error {
		for t, sql := range w.insertSQL {
			if sql+" VALUES" == q.Body {
				b, err := nativeBatch(t, q)
				if err != nil {
					return err
				}
				if r.fail != nil {
					b.sendErr = r.fail(len(r.inserts), b)
				}
				r.inserts = append(r.inserts, b)
				if b.sendErr != nil {
					return b.sendErr
				}
				b.sent = true
				return nil
			}
		}
		return fmt.Errorf("unexpected query %q", q.Body)
	}
}

// sent returns the inserts that were sent, optionally only those of one table.
func (r *recorder) sent(table string) []*fakeBatch {
	var out []*fakeBatch
	for _, b := range r.inserts {
		if b.sent && (table == "" || b.table.name == table) {
			out = append(out, b)
		}
	}
	return out
}

// fakeConn is the driver connection of unit tests: only Close is used.
type fakeConn struct {
	driver.Conn
	closed bool
}

func (c *fakeConn) Close() error { c.closed = true; return nil }

func testWriter(t testing.TB, cfg Config, opts ...Option) (*Writer, *recorder) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	o := buildOptions(append([]Option{WithLogger(slog.New(slog.DiscardHandler))}, opts...))
	w := newWriter(cfg, &fakeConn{}, o)
	r := &recorder{}
	w.prepare = r.prepare(w)
	w.do = r.do(w)
	return w, r
}

// Sample data.

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535897123, time.UTC)

const (
	traceA = "0af7651916cd43dd8448eb211c80319c"
	traceB = "4bf92f3577b34da6a3ce929d0e0e4736"
)

// span returns a snapshot of version v of a span; from version 3 on it has ended.
func span(traceID, spanID, parent string, v uint64, start time.Time) *schema.Span {
	s := &schema.Span{
		TraceID:      traceID,
		SpanID:       spanID,
		ParentSpanID: parent,
		Name:         fmt.Sprintf("%s v%d", spanID, v),
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
		StartTime:  start,
		Attributes: jsontext.Value(fmt.Sprintf(`{"step":%d}`, v)),
		Metadata:   jsontext.Value(`{"customer":"acme","n":7,"nested":{"a":"b"},"empty":""}`),
		Input:      jsontext.Value(`{"messages":[{"role":"user","content":"hi"}]}`),
		IsRootSpan: parent == "",
		Version:    v,
	}
	if v >= 3 {
		s.EndTime = start.Add(time.Duration(v) * time.Second)
		s.Output = jsontext.Value(`{"text":"sunny"}`)
	}
	return s
}

func sources(topic string, part int32, first, last int64) []pipeline.SourceRange {
	return []pipeline.SourceRange{{Topic: topic, Partition: part, First: first, Last: last}}
}

func logAt(id string, ts time.Time) *schema.Log {
	return &schema.Log{LogID: id, Timestamp: ts, TraceID: traceA, Level: "info", Message: "hello " + id,
		Data: jsontext.Value(`{"k":1}`), Correlation: &schema.Correlation{ServiceName: "svc"}}
}

func strPtr[T any](v T) *T { return &v }

// fullBatch has rows of every signal.
func fullBatch(start time.Time) *pipeline.Batch {
	cost := 0.0123
	return &pipeline.Batch{
		Strategy: pipeline.InsertOnly,
		Spans: []*schema.Span{
			span(traceA, "00000000000000a1", "", 1, start),
			span(traceA, "00000000000000a2", "00000000000000a1", 3, start.Add(time.Second)),
			func() *schema.Span {
				s := span(traceB, "00000000000000b1", "", 3, start.Add(2*time.Second))
				s.ErrorInfo = &schema.ErrorInfo{Message: "boom", Category: "USER", Details: jsontext.Value(`{"code":7}`)}
				s.IsEvent = true
				return s
			}(),
		},
		Logs: []*schema.Log{logAt("log-1", start), logAt("log-2", start.Add(time.Minute))},
		Metrics: []*schema.Metric{
			{MetricID: "m-1", Timestamp: start, TraceID: traceA, Name: "tokens", Value: 412,
				Labels:      map[string]string{"model": "gpt-4o-mini", "kind": "input"},
				CostContext: &schema.CostContext{Provider: "openai", Model: "gpt-4o-mini", EstimatedCost: &cost, CostUnit: "usd"}},
			{MetricID: "m-2", Timestamp: start, Name: "latency_ms", Value: 1250.5},
		},
		Scores: []*schema.Score{
			{ScoreID: "s-1", Timestamp: start, TraceID: traceA, SpanID: "00000000000000a1", ScorerID: "relevance",
				ScorerName: "Relevance", Score: 0.8, Reason: "on topic", ScoreSource: "live"},
		},
		Feedback: []*schema.Feedback{
			{FeedbackID: "f-1", Timestamp: start, TraceID: traceA, FeedbackType: "thumbs", Value: jsontext.Value(`1`), Comment: "good"},
			{FeedbackID: "f-2", Timestamp: start, TraceID: traceB, FeedbackType: "label", Value: jsontext.Value(`"wrong tool"`),
				FeedbackSource: "reviewer", FeedbackUserID: "u-9"},
		},
		Sources: sources("spanpipe.spans", 0, 0, 9),
	}
}

func tokens(bs []*fakeBatch) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.token()
	}
	return out
}

func names(bs []*fakeBatch) string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.table.name
	}
	return strings.Join(out, ",")
}
