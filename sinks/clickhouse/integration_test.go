package clickhouse_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/testcontainers/testcontainers-go"
	tcch "github.com/testcontainers/testcontainers-go/modules/clickhouse"

	"github.com/spanpipe/spanpipe/internal/chlocal"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/clickhouse"
)

// The tests in this file run against a real ClickHouse server: the one named by
// CLICKHOUSE_DSN (clickhouse://user:password@host:9000), else a testcontainers
// container (image CLICKHOUSE_IMAGE, default clickhouse/clickhouse-server:25.8) when
// a Docker engine answers, else the local launcher (deploy/local/clickhouse.sh, the
// ClickHouse engine of PyPI's chdb-core); shared by the package and removed in
// TestMain. They skip, saying why, only when none of these is available. Each test
// uses a database of its own.

const defaultImage = "clickhouse/clickhouse-server:25.8"

var server struct {
	once sync.Once
	cfg  clickhouse.Config
	skip string
	err  error
	ctr  *tcch.ClickHouseContainer
	// local is the launcher's server and dir its data directory, removed in TestMain.
	local *chlocal.Server
	dir   string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if server.ctr != nil {
		if err := testcontainers.TerminateContainer(server.ctr); err != nil {
			fmt.Fprintln(os.Stderr, "terminate clickhouse container:", err)
		}
	}
	if server.local != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := server.local.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "stop the local clickhouse server:", err)
		}
		cancel()
	}
	if server.dir != "" {
		_ = os.RemoveAll(server.dir)
	}
	os.Exit(code)
}

// dockerUnavailable returns why no Docker engine answers, or "" when one does.
func dockerUnavailable(ctx context.Context) (reason string) {
	defer func() {
		if r := recover(); r != nil { // testcontainers panics on some setups without Docker
			reason = fmt.Sprint(r)
		}
	}()
	p, err := testcontainers.ProviderDocker.GetProvider()
	if err != nil {
		return err.Error()
	}
	defer p.Close()
	if err := p.Health(ctx); err != nil {
		return err.Error()
	}
	return ""
}

func startServer() {
	cfg := clickhouse.DefaultConfig()
	if dsn := os.Getenv("CLICKHOUSE_DSN"); dsn != "" {
		opts, err := ch.ParseDSN(dsn)
		if err != nil {
			server.err = fmt.Errorf("CLICKHOUSE_DSN: %w", err)
			return
		}
		cfg.Addr = opts.Addr
		cfg.Username, cfg.Password = opts.Auth.Username, opts.Auth.Password
		if opts.TLS != nil {
			cfg.TLS.Enable, cfg.TLS.InsecureSkipVerify = true, opts.TLS.InsecureSkipVerify
		}
		server.cfg = cfg
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if reason := dockerUnavailable(ctx); reason != "" {
		startLocal(ctx, "no Docker engine answers ("+reason+")")
		return
	}
	img := os.Getenv("CLICKHOUSE_IMAGE")
	if img == "" {
		img = defaultImage
	}
	ctr, err := tcch.Run(ctx, img, tcch.WithUsername("spanpipe"), tcch.WithPassword("spanpipe"))
	server.ctr = ctr
	if err != nil {
		server.err = fmt.Errorf("start %s: %w", img, err)
		return
	}
	host, err := ctr.ConnectionHost(ctx)
	if err != nil {
		server.err = err
		return
	}
	cfg.Addr, cfg.Username, cfg.Password = []string{host}, ctr.User, ctr.Password
	server.cfg = cfg
}

// startLocal starts the local launcher's server; why says why it is used.
func startLocal(ctx context.Context, why string) {
	dir, err := os.MkdirTemp("", "spanpipe-clickhouse-test-")
	if err != nil {
		server.err = err
		return
	}
	server.dir = dir
	srv, err := chlocal.Start(ctx, dir)
	if srv != nil && srv.DSN != "" {
		server.local = srv
	}
	switch {
	case errors.Is(err, chlocal.ErrUnavailable):
		server.skip = "no ClickHouse server: CLICKHOUSE_DSN is not set, " + why + ", and the local launcher cannot run: " +
			err.Error() + "; the SQL is still checked on chdb by testdata/chdb_check.sh"
		return
	case err != nil:
		server.local = srv // stop whatever it left running
		server.err = fmt.Errorf("%s; the local launcher failed: %w", why, err)
		return
	}
	fmt.Fprintf(os.Stderr, "clickhouse tests: %s, using the local launcher's server %s\n", why, srv.DSN)
	opts, err := ch.ParseDSN(srv.DSN)
	if err != nil {
		server.err = err
		return
	}
	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Username = opts.Addr, opts.Auth.Username
	server.cfg = cfg
}

// serverConfig returns the configuration of the test server with a database of the
// test's own, dropped when the test ends.
func serverConfig(t *testing.T) clickhouse.Config {
	t.Helper()
	server.once.Do(startServer)
	if server.skip != "" {
		t.Skip(server.skip)
	}
	if server.err != nil {
		t.Fatal(server.err)
	}
	cfg := server.cfg
	cfg.Database = fmt.Sprintf("spanpipe_test_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		conn, err := ch.Open(&ch.Options{Addr: cfg.Addr, Auth: ch.Auth{Username: cfg.Username, Password: cfg.Password}})
		if err == nil {
			_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.Database+" SYNC")
			_ = conn.Close()
		}
	})
	return cfg
}

// openWriter opens the writer on cfg, closed when the test ends, and a plain
// connection beside it.
func openWriter(t *testing.T, cfg clickhouse.Config) (*clickhouse.Writer, ch.Conn) {
	t.Helper()
	w, err := clickhouse.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w, rawConn(t, cfg)
}

// rawConn is a plain driver connection, for what the writer does not expose.
func rawConn(t *testing.T, cfg clickhouse.Config) ch.Conn {
	t.Helper()
	opts := &ch.Options{Addr: cfg.Addr, Auth: ch.Auth{Username: cfg.Username, Password: cfg.Password}}
	conn, err := ch.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func rawCount(t *testing.T, conn ch.Conn, db, table string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(t.Context(), "SELECT count() FROM "+db+"."+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

var tStart = time.Now().UTC().Truncate(time.Millisecond)

func itSpan(traceID, spanID, parent string, v uint64) *schema.Span {
	s := &schema.Span{
		TraceID: traceID, SpanID: spanID, ParentSpanID: parent, Name: fmt.Sprintf("%s v%d", spanID, v),
		Type:        schema.ToolCall,
		Correlation: schema.Correlation{ServiceName: "svc", Environment: "test", Tags: []string{"a"}},
		StartTime:   tStart,
		Metadata:    jsontext.Value(`{"customer":"acme"}`),
		Input:       jsontext.Value(`{"q":1}`),
		IsRootSpan:  parent == "",
		Version:     v,
	}
	if v >= 3 {
		s.EndTime = tStart.Add(time.Second)
		s.Output = jsontext.Value(`{"a":2}`)
	}
	return s
}

func TestWriterAgainstServer(t *testing.T) {
	cfg := serverConfig(t)
	ctx := t.Context()
	w, raw := openWriter(t, cfg)

	const trace = "11111111111111111111111111111111"
	b1 := &pipeline.Batch{
		Spans: []*schema.Span{itSpan(trace, "0000000000000001", "", 1), itSpan(trace, "0000000000000002", "0000000000000001", 3)},
		Logs:  []*schema.Log{{LogID: "l1", Timestamp: tStart, TraceID: trace, Level: "info", Message: "m"}},
		Metrics: []*schema.Metric{{MetricID: "m1", Timestamp: tStart, Name: "tokens", Value: 3,
			Labels: map[string]string{"k": "v"}}},
		Scores:   []*schema.Score{{ScoreID: "s1", Timestamp: tStart, TraceID: trace, ScorerID: "x", Score: 1}},
		Feedback: []*schema.Feedback{{FeedbackID: "f1", Timestamp: tStart, TraceID: trace, FeedbackType: "t", Value: jsontext.Value(`5`)}},
		Sources:  []pipeline.SourceRange{{Topic: "spanpipe.spans", Partition: 0, First: 0, Last: 4}},
	}
	for range 2 { // the second Write is the pipeline's retry: deduplicated by token
		if err := w.Write(ctx, b1); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if got := rawCount(t, raw, cfg.Database, "spans"); got != 2 {
		t.Errorf("raw span rows after a retried batch: got %d, want 2 (insert_deduplication_token)", got)
	}
	b2 := &pipeline.Batch{
		Spans:   []*schema.Span{itSpan(trace, "0000000000000001", "", 3), itSpan(trace, "0000000000000002", "0000000000000001", 2)},
		Sources: []pipeline.SourceRange{{Topic: "spanpipe.spans", Partition: 0, First: 5, Last: 6}},
	}
	if err := w.Write(ctx, b2); err != nil {
		t.Fatalf("Write: %v", err)
	}

	spans, err := w.Trace(ctx, trace)
	if err != nil {
		t.Fatalf("Trace: %v", err)
	}
	if len(spans) != 2 {
		t.Fatalf("Trace: got %d spans, want 2", len(spans))
	}
	for _, s := range spans {
		want := itSpan(trace, s.SpanID, s.ParentSpanID, 3)
		if s.Version != 3 || !s.EndTime.Equal(want.EndTime) || string(s.Output) != string(want.Output) ||
			s.ServiceName != "svc" || !s.StartTime.Equal(tStart) || len(s.Tags) != 1 {
			t.Errorf("span %s: got %+v, want version 3 ended", s.SpanID, s)
		}
	}
	if n, err := w.CountSpans(ctx); err != nil || n != 2 {
		t.Errorf("CountSpans: got %d, %v; want 2", n, err)
	}
	for table, want := range map[string]int64{"trace_roots": 1, "logs": 1, "metrics": 1, "scores": 1, "feedback": 1} {
		if n, err := w.CountRows(ctx, table); err != nil || n != want {
			t.Errorf("CountRows(%s): got %d, %v; want %d", table, n, err, want)
		}
	}
	recent, err := w.RecentTraces(ctx, 10)
	if err != nil || len(recent) != 1 || recent[0].TraceID != trace || recent[0].Version != 3 || recent[0].EndTime.IsZero() {
		t.Errorf("RecentTraces: got %+v, %v", recent, err)
	}

	// The Map, Nullable and LowCardinality columns, as the server stored them.
	var (
		label, vstr string
		vnum        *float64
	)
	if err := raw.QueryRow(ctx, "SELECT labels['k'] FROM "+cfg.Database+".metrics").Scan(&label); err != nil || label != "v" {
		t.Errorf("metrics.labels['k']: got %q, %v; want v", label, err)
	}
	if err := raw.QueryRow(ctx, "SELECT value, value_number FROM "+cfg.Database+".feedback").Scan(&vstr, &vnum); err != nil ||
		vstr != "5" || vnum == nil || *vnum != 5 {
		t.Errorf("feedback value, value_number: got %q, %v, %v; want 5, 5", vstr, vnum, err)
	}

	// A column the writer inserts that the table lacks (a schema older or newer than
	// the writer) is a permanent error, named by the server.
	if err := raw.Exec(ctx, "ALTER TABLE "+cfg.Database+".feedback DROP COLUMN comment"); err != nil {
		t.Fatal(err)
	}
	err = w.Write(ctx, &pipeline.Batch{Feedback: b1.Feedback})
	if !errors.Is(err, pipeline.ErrPermanent) || !strings.Contains(err.Error(), "comment") {
		t.Errorf("Write into a table without a column: got %v, want a permanent error naming the column", err)
	}

	// A missing table is a permanent error: the batch is dead-lettered, not retried.
	if err := raw.Exec(ctx, "DROP TABLE "+cfg.Database+".scores SYNC"); err != nil {
		t.Fatal(err)
	}
	err = w.Write(ctx, &pipeline.Batch{Scores: b1.Scores})
	if !errors.Is(err, pipeline.ErrPermanent) || !strings.Contains(err.Error(), "scores") {
		t.Errorf("Write into a dropped table: got %v, want a permanent error", err)
	}
}

// metadata_search is derived by the server from metadata (migration 0004): the
// top-level string values, non-empty, at most 1024 bytes, unescaped; also in
// trace_roots, which the view fills from the inserted block. A writer that still sends
// the column (an older release) keeps working.
func TestMetadataSearchAgainstServer(t *testing.T) {
	cfg := serverConfig(t)
	ctx := t.Context()
	w, raw := openWriter(t, cfg)
	long := strings.Repeat("x", 1025)
	tests := []struct {
		metadata string
		want     map[string]string
	}{
		{``, map[string]string{}},
		{`null`, map[string]string{}},
		{`[1,2]`, map[string]string{}},
		{`{"a":"b","n":1,"o":{"x":"y"},"l":["z"],"t":true,"e":""}`, map[string]string{"a": "b"}},
		{`{"esc":"caf\u00e9 \"q\""}`, map[string]string{"esc": `café "q"`}},
		{`{"long":"` + long + `","ok":"1","max":"` + long[1:] + `"}`, map[string]string{"ok": "1", "max": long[1:]}},
		{`{"a":"b", broken`, map[string]string{}},
		{" { \"k\" :\t\"v\" ,\n \"x\":\"y\" } ", map[string]string{"k": "v", "x": "y"}},
		{`{"na\u006de":"v","ü":"ö"}`, map[string]string{"name": "v", "ü": "ö"}},
	}
	const trace = "22222222222222222222222222222222"
	b := &pipeline.Batch{Sources: []pipeline.SourceRange{{Topic: "spanpipe.spans", Partition: 0, First: 0, Last: int64(len(tests))}}}
	for i, tt := range tests {
		s := itSpan(trace, fmt.Sprintf("%016x", i+1), "", 3)
		s.Metadata = jsontext.Value(tt.metadata)
		b.Spans = append(b.Spans, s)
	}
	if err := w.Write(ctx, b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	for _, table := range []string{"spans", "trace_roots"} {
		for i, tt := range tests {
			var got map[string]string
			q := "SELECT metadata_search FROM " + cfg.Database + "." + table + " FINAL WHERE trace_id = ? AND span_id = ?"
			if err := raw.QueryRow(ctx, q, trace, fmt.Sprintf("%016x", i+1)).Scan(&got); err != nil {
				t.Fatalf("%s: %v", table, err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("%s: metadata %.40q: got metadata_search %v, want %v", table, tt.metadata, got, tt.want)
			}
		}
	}

	// An older writer sent metadata_search itself.
	if err := raw.Exec(ctx, "INSERT INTO "+cfg.Database+".spans (trace_id, span_id, version, started_at, metadata, metadata_search) "+
		"VALUES ('t', 's', 1, now64(9), '{}', map('customer', 'acme'))"); err != nil {
		t.Fatalf("insert with metadata_search: %v", err)
	}
	var n uint64
	if err := raw.QueryRow(ctx, "SELECT count() FROM "+cfg.Database+".spans WHERE metadata_search['customer'] = 'acme'").Scan(&n); err != nil || n != 1 {
		t.Errorf("explicit metadata_search: got %d rows, %v; want 1", n, err)
	}
}

func TestMigrateAgainstServer(t *testing.T) {
	cfg := serverConfig(t)
	cfg.AutoMigrate = false
	if _, err := clickhouse.Open(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "spanpipe migrate") {
		t.Fatalf("Open before migrating: got %v, want an error asking for spanpipe migrate", err)
	}
	cfg.TTL.Spans = 30
	res, err := clickhouse.Migrate(t.Context(), cfg)
	want := []string{"0001_init", "0002_span_rank", "0003_newest_score_feedback", "0004_metadata_search_default"}
	if err != nil || !slices.Equal(res.Applied, want) {
		t.Fatalf("Migrate: got %+v, %v; want %v applied", res, err, want)
	}
	cfg.TTL.Spans = 7
	if res, err := clickhouse.Migrate(t.Context(), cfg); err != nil || len(res.Applied) != 0 || len(res.TTL) != 2 {
		t.Fatalf("second Migrate: got %+v, %v; want no migration and the TTL of spans and trace_roots changed", res, err)
	}
	var full string
	if err := rawConn(t, cfg).QueryRow(t.Context(), "SELECT engine_full FROM system.tables WHERE database = ? AND name = 'spans'",
		cfg.Database).Scan(&full); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(full, "TTL toDate(started_at) + toIntervalDay(7)") {
		t.Errorf("TTL not updated: %s", full)
	}
	w, err := clickhouse.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open after migrating: %v", err)
	}
	_ = w.Close()
}

// A server that goes away is "unavailable" to the pipeline (wait, never dead-letter);
// once it is back, the same writer stores again, and a batch written again is
// deduplicated by its token.
// It needs a server of its own to kill: the local launcher's.
func TestWriterServerDownIsUnavailable(t *testing.T) {
	srv, err := chlocal.Start(t.Context(), t.TempDir())
	if errors.Is(err, chlocal.ErrUnavailable) {
		t.Skipf("this test kills its server and needs the local launcher: %v", err)
	}
	t.Cleanup(func() {
		if srv != nil {
			_ = srv.Stop(context.Background())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := ch.ParseDSN(srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg := clickhouse.DefaultConfig()
	cfg.Addr = opts.Addr
	w, err := clickhouse.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	const trace = "22222222222222222222222222222222"
	batch := func(i int) *pipeline.Batch {
		return &pipeline.Batch{
			Spans:   []*schema.Span{itSpan(trace, fmt.Sprintf("%016x", i), "", 3)},
			Sources: []pipeline.SourceRange{{Topic: "t", Partition: 0, First: int64(i), Last: int64(i)}},
		}
	}
	if err := w.Write(t.Context(), batch(1)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := srv.Kill(t.Context()); err != nil {
		t.Fatal(err)
	}
	err = w.Write(t.Context(), batch(2))
	if !errors.Is(err, pipeline.ErrUnavailable) || errors.Is(err, pipeline.ErrPermanent) {
		t.Errorf("Write with the server killed: got %v, want a pipeline.ErrUnavailable error", err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(t.Context(), batch(2)); err != nil {
		t.Errorf("Write after the server is back: %v", err)
	}
	// Retries carry the same insert_deduplication_token, also across a server crash
	// and a restart: the batch stored before the kill is not inserted twice.
	if err := w.Write(t.Context(), batch(1)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if got := rawCount(t, rawConn(t, cfg), cfg.Database, "spans"); got != 2 {
		t.Errorf("raw span rows: got %d, want 2 (a batch written again after a restart must be deduplicated)", got)
	}
	if n, err := w.CountSpans(t.Context()); err != nil || n != 2 {
		t.Errorf("CountSpans: got %d, %v; want 2", n, err)
	}
}
