package clickhouse

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
)

var _ pipeline.Sink = (*Writer)(nil)

func TestBuildersMatchTables(t *testing.T) {
	b := fullBatch(t0)
	check := func(name string, tab *table, in proto.Input, rows int) {
		t.Helper()
		if len(in) != len(tab.cols) {
			t.Fatalf("%s: builder has %d columns, table %d", name, len(in), len(tab.cols))
		}
		for i, c := range in {
			if c.Name != tab.cols[i].name || string(c.Data.Type()) != tab.cols[i].typ {
				t.Errorf("%s column %d: builder has %s %s, table %s %s", name, i, c.Name, c.Data.Type(), tab.cols[i].name, tab.cols[i].typ)
			}
			if n := c.Data.Rows(); n != rows {
				t.Errorf("%s.%s: %d values, want %d", name, c.Name, n, rows)
			}
		}
	}
	fill := func(name string, tab *table, cols interface {
		reset(int)
		input() proto.Input
	}, n int, add func(i int) error) {
		t.Helper()
		for range 2 { // a reused builder starts empty
			cols.reset(n)
			for i := range n {
				if err := add(i); err != nil {
					t.Fatal(err)
				}
			}
			check(name, tab, cols.input(), n)
		}
	}
	var sc spanCols
	fill("spans", spansTable, &sc, len(b.Spans), func(i int) error { return sc.add(b.Spans[i]) })
	var lc logCols
	fill("logs", logsTable, &lc, len(b.Logs), func(i int) error { return lc.add(b.Logs[i]) })
	var mc metricCols
	fill("metrics", metricsTable, &mc, len(b.Metrics), func(i int) error { return mc.add(b.Metrics[i]) })
	var scc scoreCols
	fill("scores", scoresTable, &scc, len(b.Scores), func(i int) error { return scc.add(b.Scores[i]) })
	var fc feedbackCols
	fill("feedback", feedbackTable, &fc, len(b.Feedback), func(i int) error { return fc.add(b.Feedback[i]) })
}

func TestWriteRowValues(t *testing.T) {
	w, rec := testWriter(t, DefaultConfig())
	if err := w.Write(t.Context(), fullBatch(t0)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if got, want := names(rec.sent("")), "spans,logs,metrics,scores,feedback"; got != want {
		t.Fatalf("inserts: got %s, want %s", got, want)
	}
	spans := rec.sent("spans")[0]
	if spans.Rows() != 3 {
		t.Fatalf("spans rows: got %d, want 3", spans.Rows())
	}
	if q := spans.query; !strings.HasPrefix(q, "INSERT INTO spanpipe.spans (trace_id, span_id, version, ") {
		t.Errorf("query: got %q", q)
	}
	for _, tc := range []struct {
		col  string
		row  int
		want any
	}{
		{"trace_id", 0, traceA},
		{"version", 0, uint64(1)},
		{"parent_span_id", 0, ""},
		{"parent_span_id", 1, "00000000000000a1"},
		{"span_type", 0, "agent_run"},
		{"service_name", 0, "svc"},
		{"tags", 0, []string{"prod", "beta"}},
		{"started_at", 0, t0},
		{"ended_at", 0, nil},
		{"ended_at", 1, t0.Add(time.Second).Add(3 * time.Second)},
		{"attributes", 0, `{"step":1}`},
		{"output", 0, ""},
		{"output", 1, `{"text":"sunny"}`},
		{"error", 0, ""},
		{"error", 2, `{"message":"boom","category":"USER","details":{"code":7}}`},
		{"is_event", 2, true},
		{"is_root_span", 0, true},
		{"is_root_span", 1, false},
	} {
		got := spans.value(t, tc.col, tc.row)
		if p, ok := got.(*time.Time); ok && p != nil {
			got = *p
		}
		if tm, ok := got.(time.Time); ok {
			got = tm.UTC()
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("spans.%s[%d]: got %#v, want %#v", tc.col, tc.row, got, tc.want)
		}
	}
	metrics := rec.sent("metrics")[0]
	if got := metrics.value(t, "estimated_cost", 0); deref(got) != 0.0123 {
		t.Errorf("metrics.estimated_cost[0]: got %v, want 0.0123", got)
	}
	if got := metrics.value(t, "estimated_cost", 1); got != nil {
		t.Errorf("metrics.estimated_cost[1]: got %v, want NULL", got)
	}
	if got, want := metrics.value(t, "labels", 0), map[string]string{"model": "gpt-4o-mini", "kind": "input"}; !reflect.DeepEqual(got, want) {
		t.Errorf("metrics.labels[0]: got %v, want %v", got, want)
	}
	fb := rec.sent("feedback")[0]
	if got := fb.value(t, "value_number", 0); deref(got) != 1.0 {
		t.Errorf("feedback.value_number[0]: got %v, want 1", got)
	}
	if got := fb.value(t, "value_string", 1); got != "wrong tool" {
		t.Errorf("feedback.value_string[1]: got %v, want %q", got, "wrong tool")
	}
	if got := fb.value(t, "value", 1); got != `wrong tool` {
		t.Errorf("feedback.value[1]: got %v", got)
	}
}

func TestWriteSkipsNilAndEmpty(t *testing.T) {
	w, rec := testWriter(t, DefaultConfig())
	if err := w.Write(t.Context(), &pipeline.Batch{}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(t.Context(), &pipeline.Batch{Spans: []*schema.Span{nil, span(traceA, "01", "", 1, t0), nil}}); err != nil {
		t.Fatal(err)
	}
	if got := rec.sent(""); len(got) != 1 || got[0].Rows() != 1 {
		t.Fatalf("got %d inserts, want 1 of 1 row", len(got))
	}
	if got := rec.sent("")[0].token(); got != "" {
		t.Errorf("batch without sources: got token %q, want none", got)
	}
}

func TestTokens(t *testing.T) {
	src := []pipeline.SourceRange{
		{Topic: "spanpipe.spans", Partition: 0, First: 10, Last: 19},
		{Topic: "spanpipe.spans", Partition: 3, First: 7, Last: 7},
	}
	reversed := []pipeline.SourceRange{src[1], src[0]}
	a, b := sourcesDigest(src), sourcesDigest(reversed)
	if a != b {
		t.Errorf("source order changed the digest: %x vs %x", a.sum, b.sum)
	}
	for _, other := range [][]pipeline.SourceRange{
		{src[0]},
		{{Topic: "spanpipe.spans", Partition: 0, First: 10, Last: 20}, src[1]},
		{{Topic: "spanpipe.spans", Partition: 1, First: 10, Last: 19}, src[1]},
		{{Topic: "other", Partition: 0, First: 10, Last: 19}, src[1]},
	} {
		if d := sourcesDigest(other); d == a {
			t.Errorf("sources %v: same digest as %v", other, src)
		}
	}
	if d := sourcesDigest(nil); d.ok || dedupToken("spans", 0, 1, d, 1) != "" {
		t.Errorf("no sources: got %+v, want no token", d)
	}

	base := dedupToken("spans", 0, 1, a, 42)
	if base != dedupToken("spans", 0, 1, b, 42) {
		t.Error("same sources, table, chunk and keys: tokens differ")
	}
	for name, tok := range map[string]string{
		"table":  dedupToken("logs", 0, 1, a, 42),
		"chunk":  dedupToken("spans", 1, 2, a, 42),
		"chunks": dedupToken("spans", 0, 2, a, 42),
		"keys":   dedupToken("spans", 0, 1, a, 43),
	} {
		if tok == base {
			t.Errorf("different %s: same token %s", name, tok)
		}
	}
}

func TestWriteTokensStableAcrossRetries(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPartitionsPerInsert = 2
	w, rec := testWriter(t, cfg)
	b := fullBatch(t0)
	for i := range 5 {
		b.Logs = append(b.Logs, logAt(fmt.Sprintf("late-%d", i), t0.AddDate(0, 0, -i-1)))
	}
	// The first attempt fails on the fourth insert with a transient error.
	transient := &ch.Exception{Code: 319, Name: "DB::Exception", Message: "Unknown status of insert"}
	rec.fail = func(n int, _ *fakeBatch) error {
		if n == 3 {
			return transient
		}
		return nil
	}
	err := w.Write(t.Context(), b)
	if !errors.Is(err, transient) || errors.Is(err, pipeline.ErrPermanent) {
		t.Fatalf("first attempt: got %v, want the transient exception unwrapped", err)
	}
	first := tokens(rec.inserts)
	rec.fail, rec.inserts = nil, nil
	if err := w.Write(t.Context(), b); err != nil {
		t.Fatalf("retry: %v", err)
	}
	retry := tokens(rec.inserts)
	if !slices.Equal(first, retry[:len(first)]) {
		t.Errorf("retry tokens differ:\nfirst %q\nretry %q", first, retry)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(retry)))) != len(retry) {
		t.Errorf("tokens of one batch must be distinct: %q", retry)
	}
	// 7 logs over 6 days with 2 partitions per insert: 3 inserts.
	if got := len(rec.sent("logs")); got != 3 {
		t.Errorf("log inserts: got %d, want 3", got)
	}
	// Redelivered in another batch (other offsets), the same rows get other tokens.
	b2 := fullBatch(t0)
	b2.Sources = sources("spanpipe.spans", 0, 100, 109)
	rec.inserts = nil
	if err := w.Write(t.Context(), b2); err != nil {
		t.Fatal(err)
	}
	if rec.inserts[0].token() == retry[0] {
		t.Error("a batch with other sources reused a token")
	}
}

func TestPlan(t *testing.T) {
	m := func(days ...int32) []rowMeta {
		out := make([]rowMeta, len(days))
		for i, d := range days {
			out[i] = rowMeta{day: d, size: 10}
		}
		return out
	}
	big := limits{rows: 1000, bytes: 1 << 30, parts: 100}
	tests := []struct {
		name string
		meta []rowMeta
		lim  limits
		want [][]int
	}{
		{"one insert", m(1, 1, 1), big, [][]int{{0, 1, 2}}},
		{"sorted by day, stable", m(2, 1, 2, 1), big, [][]int{{1, 3, 0, 2}}},
		{"rows", m(1, 1, 1, 1, 1), limits{rows: 2, bytes: 1 << 30, parts: 100}, [][]int{{0, 1}, {2, 3}, {4}}},
		{"bytes", m(1, 1, 1), limits{rows: 100, bytes: 25, parts: 100}, [][]int{{0, 1}, {2}}},
		{"partitions", m(3, 1, 2, 1, 3), limits{rows: 100, bytes: 1 << 30, parts: 2}, [][]int{{1, 3, 2}, {0, 4}}},
		{"one partition per insert", m(1, 2, 3), limits{rows: 100, bytes: 1 << 30, parts: 1}, [][]int{{0}, {1}, {2}}},
		{"row larger than the limit goes alone", []rowMeta{{1, 5}, {1, 500}, {1, 5}}, limits{rows: 100, bytes: 100, parts: 100}, [][]int{{0}, {1}, {2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := plan(tt.meta, tt.lim); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("plan(%v, %+v): got %v, want %v", tt.meta, tt.lim, got, tt.want)
			}
		})
	}
}

func TestInsertSettings(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Config)
		token string
		want  ch.Settings
	}{
		{"sync", func(*Config) {}, "tok", ch.Settings{"async_insert": 0, "insert_deduplication_token": "tok", "max_partitions_per_insert_block": 100}},
		{"no token", func(*Config) {}, "", ch.Settings{"async_insert": 0, "max_partitions_per_insert_block": 100}},
		{"async", func(c *Config) { c.AsyncInsert = true }, "tok", ch.Settings{"async_insert": 1, "wait_for_async_insert": 1,
			"insert_deduplication_token": "tok", "max_partitions_per_insert_block": 100}},
		{"async replicated cluster", func(c *Config) { c.AsyncInsert, c.Replicated, c.Cluster = true, true, "main" }, "tok", ch.Settings{
			"async_insert": 1, "wait_for_async_insert": 1, "async_insert_deduplicate": 1, "insert_distributed_sync": 1,
			"insert_deduplication_token": "tok", "max_partitions_per_insert_block": 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.edit(&cfg)
			w, _ := testWriter(t, cfg)
			if got := w.insertSettings(tt.token); !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWriteRejectsTimesOutOfRange(t *testing.T) {
	w, rec := testWriter(t, DefaultConfig())
	s := span(traceA, "01", "", 3, time.Date(1850, 1, 1, 0, 0, 0, 0, time.UTC))
	err := w.Write(t.Context(), &pipeline.Batch{Spans: []*schema.Span{s}})
	if !errors.Is(err, pipeline.ErrPermanent) || !strings.Contains(err.Error(), "started_at 1850-01-01") {
		t.Fatalf("got %v, want a permanent error naming started_at", err)
	}
	if len(rec.inserts) != 0 {
		t.Errorf("nothing may be sent, got %d inserts", len(rec.inserts))
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		permanent bool
	}{
		{"unknown table", &ch.Exception{Code: 60, Message: "Table spanpipe.spans does not exist"}, true},
		{"too many parts", &ch.Exception{Code: 252, Message: "Too many parts (300)"}, false},
		{"connection reset", fmt.Errorf("write: %w", errors.New("connection reset by peer")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, rec := testWriter(t, DefaultConfig())
			rec.fail = func(int, *fakeBatch) error { return tt.err }
			err := w.Write(t.Context(), fullBatch(t0))
			if got := errors.Is(err, pipeline.ErrPermanent); got != tt.permanent {
				t.Errorf("permanent: got %v, want %v (err %v)", got, tt.permanent, err)
			}
			if !errors.Is(err, tt.err) || !strings.HasPrefix(err.Error(), "clickhouse: insert 3 rows into spans: ") {
				t.Errorf("got %q, want the insert error wrapped once", err)
			}
		})
	}
}

func TestClose(t *testing.T) {
	w, _ := testWriter(t, DefaultConfig())
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !w.conn.(*fakeConn).closed {
		t.Error("Close did not close the connection")
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.Write(t.Context(), fullBatch(t0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: got %v, want ErrClosed", err)
	}
}

func TestCapabilities(t *testing.T) {
	w, _ := testWriter(t, DefaultConfig())
	c := w.Capabilities()
	if c.Preferred != pipeline.InsertOnly || !c.Supports(pipeline.BatchWithUpdates) || c.Supports(pipeline.Realtime) {
		t.Errorf("sync: got %+v", c)
	}
	for _, s := range schema.AllSignals {
		if !c.Stores(s) {
			t.Errorf("signal %s not stored", s)
		}
	}
	cfg := DefaultConfig()
	cfg.AsyncInsert = true
	w, _ = testWriter(t, cfg)
	if !w.Capabilities().Supports(pipeline.Realtime) {
		t.Error("async_insert: realtime should be supported")
	}
}

func TestDay(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want int32
	}{
		{time.Unix(0, 0), 0},
		{time.Unix(86399, 0), 0},
		{time.Unix(86400, 0), 1},
		{time.Date(2026, 3, 14, 23, 59, 0, 0, time.FixedZone("x", -5*3600)), int32(time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC).Unix() / 86400)},
		{time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), 0},
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), 65535},
	} {
		if got := day(tc.t); got != tc.want {
			t.Errorf("day(%s): got %d, want %d", tc.t, got, tc.want)
		}
	}
}

// deref returns *p for a pointer, v otherwise.
func deref(v any) any {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		return rv.Elem().Interface()
	}
	return v
}

func TestCompressionAuto(t *testing.T) {
	for _, tc := range []struct {
		set  string
		addr []string
		want string
	}{
		{"auto", []string{"127.0.0.1:9000"}, "none"},
		{"auto", []string{"localhost:9000", "[::1]:9000", "127.0.0.2:9001"}, "none"},
		{"auto", []string{"127.0.0.1:9000", "ch-2:9000"}, "lz4"},
		{"auto", []string{"10.0.0.7:9440"}, "lz4"},
		{"lz4", []string{"127.0.0.1:9000"}, "lz4"},
		{"none", []string{"ch-1:9000"}, "none"},
		{"zstd", []string{"ch-1:9000"}, "zstd"},
	} {
		cfg := DefaultConfig()
		cfg.Compression, cfg.Addr = tc.set, tc.addr
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := cfg.compression(); got != tc.want {
			t.Errorf("compression %s for %v: got %s, want %s", tc.set, tc.addr, got, tc.want)
		}
	}
}

// The two encodings of a String column, whole into a buffer (compressed connections)
// and vectored with large strings written in place (uncompressed ones), send the
// same bytes.
func TestStrColEncodings(t *testing.T) {
	col := strCol{"", "a", strings.Repeat("b", largeString-1), strings.Repeat("c", largeString),
		"d", strings.Repeat("é", 5000), strings.Repeat("f", largeString+1), "", strings.Repeat("g", 300)}
	for _, c := range []strCol{col, col[:1], col[3:4], col[3:6], nil} {
		var whole proto.Buffer
		c.EncodeColumn(&whole)
		var out bytes.Buffer
		w := proto.NewWriter(&out, new(proto.Buffer))
		c.WriteColumn(w)
		if _, err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), whole.Buf) {
			t.Errorf("%d strings: vectored %d bytes differ from whole %d bytes", len(c), out.Len(), len(whole.Buf))
		}
		var back proto.ColStr
		if err := back.DecodeColumn(proto.NewReader(bytes.NewReader(out.Bytes())), len(c)); err != nil {
			t.Fatal(err)
		}
		for i, want := range c {
			if got := back.Row(i); got != want {
				t.Errorf("row %d: got %d bytes, want %d", i, len(got), len(want))
			}
		}
	}
}
