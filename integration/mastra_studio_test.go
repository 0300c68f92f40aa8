package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// studioNode provisions integration/mastra-studio once per run (Node 22 and the built
// client through clients/mastra's setup, then npm ci of the pinned @mastra/clickhouse,
// @mastra/core and @mastra/observability) and returns the node binary.
var studioNode = sync.OnceValues(func() (string, error) {
	if _, err := mastraNode(); err != nil {
		return "", err
	}
	start := time.Now()
	cmd := exec.Command("bash", filepath.Join(repoRoot, "integration", "mastra-studio", "setup.sh"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("integration/mastra-studio/setup.sh: %w\n%s", err, tail(stderr.String(), 40))
	}
	fmt.Fprintf(os.Stderr, "integration: Mastra Studio proof ready in %s\n", time.Since(start).Round(100*time.Millisecond))
	return strings.TrimSpace(lastLine(stdout.String())), nil
})

// studioScript runs one of integration/mastra-studio's scripts and returns its last
// stdout line; a failure fails the test.
func (s *scenario) studioScript(script string, env ...string) string {
	s.t.Helper()
	line, err := s.runStudio(script, env...)
	if err != nil {
		s.t.Fatal(err)
	}
	return line
}

// runStudio is studioScript for any goroutine: it returns the failure.
func (s *scenario) runStudio(script string, env ...string) (string, error) {
	node, err := studioNode()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(s.t.Context(), node, filepath.Join(repoRoot, "integration", "mastra-studio", script))
	cmd.Dir = filepath.Join(repoRoot, "integration", "mastra-studio")
	cmd.Env = append(childEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	_ = os.WriteFile(filepath.Join(s.dir, strings.TrimSuffix(script, ".mjs")+"-"+time.Now().Format("150405.000000")+".log"), stderr.Bytes(), 0o644)
	if err != nil {
		return "", fmt.Errorf("node %s %v: %w\n%s\n%s", script, env, err, tail(stdout.String(), 5), tail(stderr.String(), 40))
	}
	return lastLine(stdout.String()), nil
}

// httpURL is the HTTP endpoint of the server (what @mastra/clickhouse talks to),
// asked from the server itself: the launcher picks its ports.
func (c *chServer) httpURL(t *testing.T) string {
	t.Helper()
	var port uint16
	if err := c.conn(t).QueryRow(t.Context(), "SELECT getServerPort('http_port')").Scan(&port); err != nil {
		t.Fatalf("ask ClickHouse for its HTTP port: %v", err)
	}
	u, err := url.Parse(c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://%s:%d", u.Hostname(), port)
}

type studioApp struct {
	Traces    int            `json:"traces"`
	FlushedMs int            `json:"flushedMs"`
	Drops     map[string]int `json:"drops"`
	AppErrors int            `json:"appExceptions"`
	Kafka     *struct {
		Emitted int `json:"emitted"`
		Acked   int `json:"acked"`
	} `json:"kafka"`
}

func (s *scenario) runStudioApp(env ...string) studioApp {
	s.t.Helper()
	var app studioApp
	line := s.studioScript("app.mjs", append([]string{"BROKERS=" + strings.Join(s.brokers, ","), "TOPIC=" + s.topic, "DROP_TOPIC=" + s.dropTopic}, env...)...)
	if err := json.Unmarshal([]byte(line), &app); err != nil {
		s.t.Fatalf("app summary %q: %v", line, err)
	}
	if app.AppErrors != 0 || len(app.Drops) != 0 || (app.Kafka != nil && app.Kafka.Acked != app.Kafka.Emitted) {
		s.t.Fatalf("the Mastra app: %+v; want no exception, no drop, every Kafka record acknowledged", app)
	}
	return app
}

// TestMastraStudioLayout: one real Mastra app publishes a rich workload through two
// exporters at once, Mastra's own MastraStorageExporter into database A and
// @spanpipe/mastra's KafkaExporter into Kafka, from where `spanpipe consume` with
// layout mastra writes database B. @mastra/clickhouse's reads (what Studio calls) must
// answer the same on A and B, field by field, before and after the consumer is killed
// with SIGKILL mid-stream and after every record is delivered a second time. Then
// the throughput of each path into the same server.
func TestMastraStudioLayout(t *testing.T) {
	brokers := sharedBrokers(t)
	chs := sharedClickHouse(t)
	if _, err := studioNode(); err != nil {
		t.Fatal(err)
	}
	spanpipeBinary(t)
	began := time.Now()
	phase := func(what string) { t.Logf("%s: %s", what, time.Since(began).Round(100*time.Millisecond)) }
	s := newScenario(t, brokers, 3)
	httpURL := chs.httpURL(t)
	conn := chs.conn(t)
	dsnB, dbB := s.database(chs)
	dbA := dbB + "_mastra"
	for _, db := range []string{dbA, dbB} {
		if err := conn.Exec(t.Context(), "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
			t.Fatal(err)
		}
	}
	// Mastra's init() creates B's tables, as the Mastra server that serves Studio does.
	s.studioScript("read.mjs", "CH_URL="+httpURL, "DB="+dbB, "INIT=1")
	phase("Mastra's init() on B")

	app := s.runStudioApp("MODE=both", "CH_URL="+httpURL, "DB_A="+dbA, fmt.Sprintf("TRACES=%d", envInt("SPANPIPE_IT_STUDIO_TRACES", 12)))
	s.env = append(s.env, "SPANPIPE_SINK_CLICKHOUSE_LAYOUT=mastra")
	phase("the app published to A and Kafka")

	// A consumer killed once rows are arriving, then a second member that finishes.
	c1 := s.startConsumer("c1", dsnB)
	s.eventually(2*time.Minute, "span rows in "+dbB, func() bool { return countRows(t, conn, dbB, "mastra_span_events") > 0 })
	c1.kill()
	c2 := s.startConsumer("c2", dsnB)
	s.waitCommitted(3 * time.Minute)
	c2.stop()
	phase("consumed into B across a kill -9")

	// Studio's reads of each database, run side by side.
	read := func(dbs ...string) []map[string]any {
		out := make([]map[string]any, len(dbs))
		errs := make([]error, len(dbs))
		var wg sync.WaitGroup
		for i, db := range dbs {
			wg.Go(func() {
				line, err := s.runStudio("read.mjs", "CH_URL="+httpURL, "DB="+db)
				if err == nil {
					err = json.Unmarshal([]byte(line), &out[i])
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("read.mjs on %s: %v", dbs[i], err)
			}
		}
		return out
	}
	answers := read(dbA, dbB)
	want := answers[0]
	checkStudioAnswers(t, want, app.Traces)
	compareStudio(t, "after a kill -9", want, answers[1])
	rows := studioRowCounts(t, conn, dbB)
	phase("compared")

	// Every record again, under another group: batched differently, so with other
	// deduplication tokens; nothing may change, in the base or the delta tables.
	s.group += "-again"
	c3 := s.startConsumer("c3", dsnB)
	s.waitCommitted(3 * time.Minute)
	c3.stop()
	compareStudio(t, "after every record was delivered twice", want, read(dbB)[0])
	if again := studioRowCounts(t, conn, dbB); !reflect.DeepEqual(again, rows) {
		t.Errorf("row counts changed by the redelivery:\nbefore %v\nafter  %v", rows, again)
	}
	if d := s.readDropTopic(); len(d.events) != 0 {
		t.Errorf("%d drop events, want none", len(d.events))
	}
	t.Logf("compared %d calls; redelivery added no row: %v", len(want), rows)
	phase("redelivered and compared again")

	// Throughput into the same server: Mastra's exporter (from the first event to the
	// end of its flush) and spanpipe (from the consumer's start to its last commit,
	// process start and group join included), the same light traces on each path.
	n := envInt("SPANPIPE_IT_STUDIO_LOAD_TRACES", 300)
	spansA, spansB := countRows(t, conn, dbA, "mastra_span_events"), countRows(t, conn, dbB, "mastra_span_events")
	own := s.runStudioApp("MODE=storage", "CH_URL="+httpURL, "DB_A="+dbA, "DISABLE_INIT=1", fmt.Sprintf("TRACES=%d", n))
	mastraSpans := countRows(t, conn, dbA, "mastra_span_events") - spansA
	load := newScenario(t, brokers, 3)
	load.env = append(load.env, "SPANPIPE_SINK_CLICKHOUSE_LAYOUT=mastra")
	load.runStudioApp("MODE=kafka", fmt.Sprintf("TRACES=%d", n))
	start := time.Now()
	c4 := load.startConsumer("load", dsnB)
	load.waitCommitted(3 * time.Minute)
	took := time.Since(start)
	c4.stop()
	phase("throughput")
	spanpipeSpans := countRows(t, conn, dbB, "mastra_span_events") - spansB
	if spanpipeSpans != mastraSpans {
		t.Errorf("load: spanpipe stored %d spans, Mastra's exporter %d", spanpipeSpans, mastraSpans)
	}
	// The sink's share: time spent in Write (lookups of stored keys and inserts).
	writeSecs := c4.final().sum("spanpipe_sink_write_duration_seconds_sum")
	logFigures(t, "traces", app.Traces, "calls_compared", len(want), "span_rows", rows["mastra_span_events"],
		"load_spans", mastraSpans,
		"mastra_exporter_spans_per_s", int(float64(mastraSpans)/(float64(own.FlushedMs)/1000)),
		"spanpipe_layout_spans_per_s_wall", int(float64(spanpipeSpans)/took.Seconds()),
		"spanpipe_layout_spans_per_s_in_write", int(float64(spanpipeSpans)/max(writeSecs, 0.001)))
}

// checkStudioAnswers makes sure the reference answers hold what the workload made, so
// that equal answers on both sides cannot be equally empty.
func checkStudioAnswers(t *testing.T, a map[string]any, traces int) {
	t.Helper()
	count := func(call, key string) int {
		m, _ := a[call].(map[string]any)
		if e, ok := m["error"]; ok {
			t.Errorf("%s failed on Mastra's own tables: %v", call, e)
		}
		l, _ := m[key].([]any)
		return len(l)
	}
	for _, c := range []struct {
		call, key string
		want      int
	}{
		{"listTraces.all", "spans", traces}, {"listLogs", "logs", traces + traces/2}, {"listScores", "scores", traces},
		{"listFeedback", "feedback", traces}, {"delta.traces", "spans", traces}, {"delta.logs", "logs", traces + traces/2},
		{"delta.scores", "scores", traces}, {"delta.feedback", "feedback", traces},
	} {
		call, key, want := c.call, c.key, c.want
		if got := count(call, key); got != want {
			t.Errorf("%s returned %d %s on Mastra's own tables, want %d", call, got, key, want)
		}
	}
	for _, call := range []string{"listTraces.hasChildError", "listTraces.metadata", "listTraces.entityName", "listTraces.environment", "listMetrics", "listBranches"} {
		m, _ := a[call].(map[string]any)
		n := 0
		for _, v := range m {
			if l, ok := v.([]any); ok {
				n += len(l)
			}
		}
		if n == 0 {
			t.Errorf("%s returned nothing on Mastra's own tables: %v", call, a[call])
		}
	}
}

// compareStudio reports every field where B's answers differ from A's. Left out:
// deltaCursor and cursorId, which are built from the time each database ingested a
// row (Mastra's fallback cursor), and so differ between any two databases.
func compareStudio(t *testing.T, when string, a, b map[string]any) {
	t.Helper()
	var diffs []string
	diffJSON("", a, b, &diffs)
	sort.Strings(diffs)
	for i, d := range diffs {
		if i == 40 {
			t.Errorf("%s: ... and %d more differences", when, len(diffs)-40)
			break
		}
		t.Errorf("%s: %s", when, d)
	}
}

var studioIgnored = map[string]bool{"deltaCursor": true, "cursorId": true}

func diffJSON(path string, a, b any, out *[]string) {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: Mastra %s, spanpipe %s", path, short(a), short(b)))
			return
		}
		for k := range av {
			if studioIgnored[k] {
				continue
			}
			if _, ok := bv[k]; !ok {
				*out = append(*out, fmt.Sprintf("%s.%s: Mastra %s, spanpipe has none", path, k, short(av[k])))
				continue
			}
			diffJSON(path+"."+k, av[k], bv[k], out)
		}
		for k := range bv {
			if _, ok := av[k]; !ok && !studioIgnored[k] {
				*out = append(*out, fmt.Sprintf("%s.%s: Mastra has none, spanpipe %s", path, k, short(bv[k])))
			}
		}
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			*out = append(*out, fmt.Sprintf("%s: Mastra %s, spanpipe %s", path, short(a), short(b)))
			return
		}
		for i := range av {
			diffJSON(fmt.Sprintf("%s[%d]", path, i), av[i], bv[i], out)
		}
	default:
		if !reflect.DeepEqual(a, b) {
			*out = append(*out, fmt.Sprintf("%s: Mastra %s, spanpipe %s", path, short(a), short(b)))
		}
	}
}

func countRows(t *testing.T, conn ch.Conn, db, table string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(t.Context(), "SELECT count() FROM "+db+"."+table).Scan(&n); err != nil {
		t.Fatalf("count %s.%s: %v", db, table, err)
	}
	return n
}

// studioRowCounts counts the raw rows (no merge, no deduplication) of Mastra's base
// and delta tables.
func studioRowCounts(t *testing.T, conn ch.Conn, db string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, tbl := range []string{"span_events", "trace_roots", "trace_branches", "log_events", "metric_events", "score_events", "feedback_events",
		"trace_roots_delta", "trace_branches_delta", "log_events_delta", "metric_events_delta", "score_events_delta", "feedback_events_delta"} {
		out["mastra_"+tbl] = countRows(t, conn, db, "mastra_"+tbl)
	}
	return out
}
