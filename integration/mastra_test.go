package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/sinks/duckdb"
	"github.com/twmb/franz-go/pkg/kgo"
)

// mastraNode provisions the TypeScript client once per run (Node 22 from the npm
// registry, npm ci from the committed lock file, the ESM and CJS builds) and returns
// the node binary.
var mastraNode = sync.OnceValues(func() (string, error) {
	start := time.Now()
	cmd := exec.Command("bash", filepath.Join(repoRoot, "clients", "mastra", "scripts", "setup.sh"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("clients/mastra/scripts/setup.sh: %w\n%s", err, tail(stderr.String(), 40))
	}
	fmt.Fprintf(os.Stderr, "integration: Mastra client ready in %s\n", time.Since(start).Round(100*time.Millisecond))
	return strings.TrimSpace(lastLine(stdout.String())), nil
})

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// appSummary is the last stdout line of clients/mastra/test/e2e/app.mjs.
type appSummary struct {
	Traces   int            `json:"traces"`
	Recorded map[string]int `json:"recorded"`
	Stats    struct {
		Emitted             int            `json:"emitted"`
		Acked               int            `json:"acked"`
		Dropped             int            `json:"dropped"`
		DroppedBy           map[string]int `json:"droppedBy"`
		DropEventsPublished int            `json:"dropEventsPublished"`
	} `json:"stats"`
	ReportedDrops map[string]int `json:"reportedDrops"`
	AppExceptions int            `json:"appExceptions"`
	MaxRssMB      int            `json:"maxRssMB"`
	EmitMs        int            `json:"emitMs"`
	TotalMs       int            `json:"totalMs"`
	CPUMs         int            `json:"cpuMs"`
}

// mastraApp is one run of clients/mastra/test/e2e/app.mjs: a Mastra application with
// the exporter, publishing to the scenario's topics.
type mastraApp struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdout  bytes.Buffer
	logPath string
	exited  chan struct{}
}

// startMastraApp starts the app, which records what Mastra published in out; env adds
// MODE and sizes.
func (s *scenario) startMastraApp(out string, env ...string) *mastraApp {
	t := s.t
	t.Helper()
	node, err := mastraNode()
	if err != nil {
		t.Fatal(err)
	}
	a := &mastraApp{t: t, logPath: filepath.Join(s.dir, "mastra-app.log"), exited: make(chan struct{})}
	logf, err := os.Create(a.logPath)
	if err != nil {
		t.Fatal(err)
	}
	a.cmd = exec.CommandContext(t.Context(), node, filepath.Join(repoRoot, "clients", "mastra", "test", "e2e", "app.mjs"))
	a.cmd.Dir = filepath.Join(repoRoot, "clients", "mastra")
	a.cmd.Env = append(childEnv(), append([]string{
		"BROKERS=" + strings.Join(s.brokers, ","), "TOPIC=" + s.topic, "DROP_TOPIC=" + s.dropTopic, "OUT=" + out,
	}, env...)...)
	a.cmd.Stdout, a.cmd.Stderr = &a.stdout, logf
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = a.cmd.Wait()
		logf.Close()
		close(a.exited)
	}()
	return a
}

// wait waits for the app to exit, at most timeout, and returns its summary.
func (a *mastraApp) wait(timeout time.Duration) appSummary {
	t := a.t
	t.Helper()
	select {
	case <-a.exited:
	case <-time.After(timeout):
		_ = a.cmd.Process.Kill()
		<-a.exited
		t.Fatalf("the mastra app did not exit within %s", timeout)
	}
	var sum appSummary
	if code := a.cmd.ProcessState.ExitCode(); code != 0 {
		b, _ := os.ReadFile(a.logPath)
		t.Fatalf("mastra app exited with %d\n%s\n%s", code, a.stdout.String(), tail(string(b), 40))
	}
	if err := json.Unmarshal([]byte(lastLine(a.stdout.String())), &sum); err != nil {
		t.Fatalf("mastra app summary %q: %v", lastLine(a.stdout.String()), err)
	}
	return sum
}

// TestMastraExporterEndToEnd: real Mastra with @spanpipe/mastra's KafkaExporter → real
// Kafka → `spanpipe consume` → DuckDB, under insert-only and batch-with-updates; every
// stored field of every span, log, metric, score and feedback row is compared with what
// Mastra handed its exporters, and every field Mastra published must be stored. The
// exporter publishes uncompressed, its default, so every field goes through the produce
// encoder it swaps into kafkajs; gzip goes through kafkajs' own encoder, which
// clients/mastra's tests compare byte for byte.
func TestMastraExporterEndToEnd(t *testing.T) {
	brokers := sharedBrokers(t)
	s := newScenario(t, brokers, 3)
	published := filepath.Join(s.dir, "published.jsonl")
	sum := s.startMastraApp(published, "MODE=e2e", "COMPRESSION=none", fmt.Sprintf("TRACES=%d", envInt("SPANPIPE_IT_MASTRA_TRACES", 12))).wait(5 * time.Minute)
	if sum.AppExceptions != 0 || sum.Stats.Dropped != 0 || sum.Stats.Acked != sum.Stats.Emitted {
		t.Fatalf("the app: %d exceptions, %d dropped, %d of %d acknowledged; want 0, 0, all", sum.AppExceptions, sum.Stats.Dropped, sum.Stats.Acked, sum.Stats.Emitted)
	}
	events := readPublished(t, published)
	if len(events) != sum.Stats.Emitted {
		t.Fatalf("the recorder saw %d events, the exporter %d", len(events), sum.Stats.Emitted)
	}
	checkCases(t, published, events)
	base := s.group
	for i, strategy := range []string{"insert-only", "batch-with-updates"} {
		t.Run(strategy, func(t *testing.T) {
			s.t = t
			s.group = base + "-" + strategy
			db := s.db(i)
			p := s.startConsumer(strategy, db, "SPANPIPE_PIPELINE_STRATEGY="+strategy)
			s.waitCommitted(3 * time.Minute)
			p.stop()
			want := expectRows(events, strategy)
			got := readRows(t, db)
			for _, m := range compareRows(want, got) {
				t.Error(m.text)
			}
		})
	}
	s.t = t
	drops := s.readDropTopic()
	for _, ev := range drops.events {
		t.Errorf("drop event on %s: %+v", s.dropTopic, *ev)
	}
	logFigures(t, "events", len(events), "traces", sum.Traces, "app_cpu_ms", sum.CPUMs)
}

// pubEvent is one published event: its type, its payload object, and whether its JSON
// text holds a lone surrogate escape.
type pubEvent struct {
	typ   string
	body  map[string]any
	lone  bool
	order int
}

var loneSurrogateRE = regexp.MustCompile(`\\ud[89a-f][0-9a-f]{2}`)

func readPublished(t *testing.T, path string) []pubEvent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []pubEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var env map[string]any
		if err := json.Unmarshal(sc.Bytes(), &env); err != nil {
			t.Fatalf("%s line %d: %v", path, len(out)+1, err)
		}
		typ, _ := env["type"].(string)
		key := map[string]string{"log": "log", "metric": "metric", "score": "score", "feedback": "feedback"}[typ]
		if key == "" {
			key = "exportedSpan"
		}
		body, _ := env[key].(map[string]any)
		out = append(out, pubEvent{typ: typ, body: body, lone: loneSurrogateRE.Match(sc.Bytes()), order: len(out)})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// cell is one expected column value and the published field it comes from.
type cell struct {
	want   any
	json   bool   // compare as JSON values
	origin string // the published field, for messages
}

// expRow is one expected row: its table, key and cells by column.
type expRow struct {
	table string
	key   string
	lone  bool
	cells map[string]cell
	// unmapped are published fields with no column: each is a mismatch.
	unmapped []string
}

// correlationFields maps Mastra's correlation fields to spanpipe's columns.
var correlationFields = map[string]string{
	"entityType": "entity_type", "entityId": "entity_id", "entityName": "entity_name", "entityVersionId": "entity_version_id",
	"parentEntityType": "parent_entity_type", "parentEntityId": "parent_entity_id", "parentEntityName": "parent_entity_name",
	"parentEntityVersionId": "parent_entity_version_id", "rootEntityType": "root_entity_type", "rootEntityId": "root_entity_id",
	"rootEntityName": "root_entity_name", "rootEntityVersionId": "root_entity_version_id", "userId": "user_id",
	"organizationId": "organization_id", "resourceId": "resource_id", "runId": "run_id", "sessionId": "session_id",
	"threadId": "thread_id", "requestId": "request_id", "environment": "environment", "source": "source",
	"serviceName": "service_name", "experimentId": "experiment_id", "tags": "tags",
}

// builder fills one expected row from a published object, remembering which fields it used.
type builder struct {
	row  *expRow
	obj  map[string]any
	used map[string]bool
}

func newBuilder(table, key string, obj map[string]any, lone bool) *builder {
	return &builder{row: &expRow{table: table, key: key, lone: lone, cells: map[string]cell{}}, obj: obj, used: map[string]bool{}}
}

// col expects column c to hold field f (NULL when absent or empty).
func (b *builder) col(c, f string) {
	b.used[f] = true
	b.row.cells[c] = cell{want: nullable(b.obj[f]), origin: f}
}

// first expects column c to hold the first present field of fs (newest name first).
func (b *builder) first(c string, fs ...string) {
	for _, f := range fs {
		b.used[f] = true
	}
	for _, f := range fs {
		if v := nullable(b.obj[f]); v != nil {
			b.row.cells[c] = cell{want: v, origin: f}
			return
		}
	}
	b.row.cells[c] = cell{want: nil, origin: fs[0]}
}

func (b *builder) jsonCol(c, f string) {
	b.used[f] = true
	v, ok := b.obj[f]
	if !ok || v == nil {
		b.row.cells[c] = cell{want: nil, origin: f}
		return
	}
	b.row.cells[c] = cell{want: v, json: true, origin: f}
}

func (b *builder) set(c string, v any, origin string) { b.row.cells[c] = cell{want: v, origin: origin} }

// correlation fills the correlation columns from the top level (spans) or from
// correlationContext (the other signals), whose traceId and spanId must repeat the
// top-level ones.
func (b *builder) correlation(nested bool) {
	src := b.obj
	prefix := ""
	if nested {
		b.used["correlationContext"] = true
		src, _ = b.obj["correlationContext"].(map[string]any)
		prefix = "correlationContext."
		for _, id := range []string{"traceId", "spanId"} {
			if v, ok := src[id]; ok && v != b.obj[id] {
				b.row.unmapped = append(b.row.unmapped, fmt.Sprintf("%s%s=%v differs from %s=%v and is not stored", prefix, id, v, id, b.obj[id]))
			}
		}
		for k := range src {
			if _, ok := correlationFields[k]; !ok && k != "traceId" && k != "spanId" {
				b.row.unmapped = append(b.row.unmapped, prefix+k)
			}
		}
	}
	for f, c := range correlationFields {
		if !nested {
			b.used[f] = true
		}
		if c == "tags" {
			b.row.cells[c] = cell{want: nullableList(src[f]), origin: prefix + f}
			continue
		}
		v := nullable(src[f])
		if !nested && v == nil && promotedFromMetadata[f] {
			// As Mastra's span record builder: context ids found as string values in
			// the span's metadata fill the columns the span itself leaves empty.
			meta, _ := b.obj["metadata"].(map[string]any)
			if m, ok := meta[f].(string); ok && m != "" {
				b.row.cells[c] = cell{want: m, origin: "metadata." + f}
				continue
			}
		}
		b.row.cells[c] = cell{want: v, origin: prefix + f}
	}
	if !nested {
		if v := nullable(b.obj["entityVersionId"]); v == nil {
			meta, _ := b.obj["metadata"].(map[string]any)
			if m, ok := meta["entityVersionId"].(string); ok && m != "" {
				b.row.cells["entity_version_id"] = cell{want: m, origin: "metadata.entityVersionId"}
			}
		}
	}
}

// promotedFromMetadata are the correlation fields Mastra reads from span metadata.
var promotedFromMetadata = map[string]bool{
	"userId": true, "organizationId": true, "resourceId": true, "runId": true, "sessionId": true, "threadId": true,
	"requestId": true, "environment": true, "source": true, "serviceName": true, "experimentId": true,
}

// done lists the published fields no column took.
func (b *builder) done() *expRow {
	for k := range b.obj {
		if !b.used[k] {
			b.row.unmapped = append(b.row.unmapped, k)
		}
	}
	return b.row
}

func nullable(v any) any {
	if s, ok := v.(string); ok && s == "" {
		return nil
	}
	return v
}

func nullableList(v any) any {
	if l, ok := v.([]any); ok && len(l) > 0 {
		return l
	}
	return nil
}

var eventVersion = map[string]float64{"span_started": 1, "span_updated": 2, "span_ended": 3}

// expectRows is what spanpipe must store for the published events under a strategy.
func expectRows(events []pubEvent, strategy string) map[string]*expRow {
	rows := map[string]*expRow{}
	last := map[string]pubEvent{}
	for _, e := range events {
		if _, span := eventVersion[e.typ]; !span {
			rows[signalKey(e)] = expectSignal(e)
			continue
		}
		k := fmt.Sprint(e.body["traceId"], "/", e.body["id"])
		if strategy == "insert-only" && e.typ != "span_ended" && e.body["isEvent"] != true {
			continue // started and updated snapshots are not stored; a never-ended span is absent
		}
		last[k] = e // Mastra publishes a span's events in lifecycle order
	}
	for k, e := range last {
		rows["spans "+k] = expectSpan(k, e)
	}
	return rows
}

func signalKey(e pubEvent) string {
	id := map[string]string{"log": "logId", "metric": "metricId", "score": "scoreId", "feedback": "feedbackId"}[e.typ]
	return tableOf(e.typ) + " " + fmt.Sprint(e.body[id])
}

func tableOf(typ string) string {
	return map[string]string{"log": "logs", "metric": "metrics", "score": "scores", "feedback": "feedback"}[typ]
}

func expectSpan(key string, e pubEvent) *expRow {
	b := newBuilder("spans", key, e.body, e.lone)
	b.col("trace_id", "traceId")
	b.col("span_id", "id")
	b.set("version", eventVersion[e.typ], "type of event")
	b.col("parent_span_id", "parentSpanId")
	b.col("external_parent_span_id", "externalParentSpanId")
	b.col("name", "name")
	b.col("span_type", "type")
	b.correlation(false)
	b.col("started_at", "startTime")
	b.col("ended_at", "endTime")
	for c, f := range map[string]string{"attributes": "attributes", "metadata": "metadata", "input": "input", "output": "output", "error": "errorInfo", "request_context": "requestContext"} {
		b.jsonCol(c, f)
	}
	for c, f := range map[string]string{"is_event": "isEvent", "is_root_span": "isRootSpan", "is_internal": "isInternal"} {
		b.used[f] = true
		v, _ := e.body[f].(bool)
		b.set(c, v, f)
	}
	return b.done()
}

func expectSignal(e pubEvent) *expRow {
	table := tableOf(e.typ)
	id := map[string]string{"log": "logId", "metric": "metricId", "score": "scoreId", "feedback": "feedbackId"}[e.typ]
	b := newBuilder(table, fmt.Sprint(e.body[id]), e.body, e.lone)
	b.col(strings.TrimSuffix(table, "s")+"_id", id)
	b.col("timestamp", "timestamp")
	b.col("trace_id", "traceId")
	b.col("span_id", "spanId")
	b.correlation(true)
	b.jsonCol("metadata", "metadata")
	cc, _ := e.body["correlationContext"].(map[string]any)
	switch e.typ {
	case "log":
		b.col("level", "level")
		b.col("message", "message")
		b.jsonCol("data", "data")
	case "metric":
		b.col("name", "name")
		b.col("value", "value")
		b.jsonCol("labels", "labels")
		b.used["costContext"] = true
		cost, _ := e.body["costContext"].(map[string]any)
		for c, f := range map[string]string{"provider": "provider", "model": "model", "estimated_cost": "estimatedCost", "cost_unit": "costUnit"} {
			b.row.cells[c] = cell{want: nullable(cost[f]), origin: "costContext." + f}
		}
		if v, ok := cost["costMetadata"]; ok && v != nil {
			b.row.cells["cost_metadata"] = cell{want: v, json: true, origin: "costContext.costMetadata"}
		} else {
			b.row.cells["cost_metadata"] = cell{origin: "costContext.costMetadata"}
		}
		for k := range cost {
			if !slices.Contains([]string{"provider", "model", "estimatedCost", "costUnit", "costMetadata"}, k) {
				b.row.unmapped = append(b.row.unmapped, "costContext."+k)
			}
		}
	case "score":
		b.col("score_trace_id", "scoreTraceId")
		b.col("scorer_id", "scorerId")
		b.col("scorer_name", "scorerName")
		b.col("scorer_version", "scorerVersion")
		b.first("score_source", "scoreSource", "source")
		b.col("score", "score")
		b.col("reason", "reason")
		b.col("target_entity_type", "targetEntityType")
		experimentID(b, cc)
	case "feedback":
		b.first("feedback_source", "feedbackSource", "source")
		b.col("feedback_type", "feedbackType")
		// A string value is stored as itself, anything else as its JSON text (the sinks'
		// documented convention); value_string / value_number tell them apart.
		if v, ok := e.body["value"].(string); ok {
			b.set("value", v, "value")
			b.used["value"] = true
		} else {
			b.jsonCol("value", "value")
		}
		str, _ := e.body["value"].(string)
		num, isNum := e.body["value"].(float64)
		b.set("value_string", nullable(str), "value")
		if isNum {
			b.set("value_number", num, "value")
		} else {
			b.set("value_number", nil, "value")
		}
		b.col("comment", "comment")
		b.col("source_id", "sourceId")
		b.first("feedback_user_id", "feedbackUserId", "userId")
		experimentID(b, cc)
	}
	return b.done()
}

// experimentID: the correlation context's experimentId, else the deprecated top-level one.
func experimentID(b *builder, cc map[string]any) {
	b.used["experimentId"] = true
	if v := nullable(cc["experimentId"]); v != nil {
		return // set by correlation()
	}
	if v := nullable(b.obj["experimentId"]); v != nil {
		b.row.cells["experiment_id"] = cell{want: v, origin: "experimentId"}
	}
}

// readRows reads every row of the five tables, keyed as expectRows keys them.
func readRows(t *testing.T, path string) map[string]map[string]any {
	t.Helper()
	db, err := duckdb.OpenReadOnly(t.Context(), path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	out := map[string]map[string]any{}
	for table, key := range map[string]string{"spans": "trace_id || '/' || span_id", "logs": "log_id", "metrics": "metric_id", "scores": "score_id", "feedback": "feedback_id"} {
		rows, err := db.QueryContext(t.Context(), fmt.Sprintf(`SELECT %s AS k, * FROM %s`, key, table))
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("%s: %v", table, err)
			}
			r := map[string]any{}
			for i, c := range cols[1:] {
				r[c] = vals[i+1]
			}
			out[table+" "+fmt.Sprint(vals[0])] = r
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

type mismatch struct{ text string }

// compareRows compares every expected row with the stored one, both ways.
func compareRows(want map[string]*expRow, got map[string]map[string]any) []mismatch {
	var out []mismatch
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w := want[k]
		for _, f := range w.unmapped {
			out = append(out, mismatch{text: fmt.Sprintf("%s: published field %s has no column", k, f)})
		}
		g, ok := got[k]
		if !ok {
			out = append(out, mismatch{text: fmt.Sprintf("%s: published, not stored", k)})
			continue
		}
		delete(got, k)
		for c, cl := range w.cells {
			gv, ok := g[c]
			if !ok {
				out = append(out, mismatch{text: fmt.Sprintf("%s: no column %s", k, c)})
				continue
			}
			if d := diffCell(cl, gv); d != "" {
				out = append(out, mismatch{text: fmt.Sprintf("%s: %s (from %s): %s", k, c, cl.origin, d)})
			}
		}
	}
	for k := range got {
		out = append(out, mismatch{text: fmt.Sprintf("%s: stored, never published", k)})
	}
	return out
}

// diffCell compares a stored value with the expected one; "" when equal.
func diffCell(c cell, got any) string {
	if b, ok := got.([]byte); ok {
		got = string(b)
	}
	if c.want == nil {
		if got == nil {
			return ""
		}
		return fmt.Sprintf("got %s, want NULL", short(got))
	}
	if got == nil {
		return fmt.Sprintf("got NULL, want %s", short(c.want))
	}
	if c.json {
		s, ok := got.(string)
		var v any
		if !ok || json.Unmarshal([]byte(s), &v) != nil {
			return fmt.Sprintf("got %s, want JSON %s", short(got), short(c.want))
		}
		if !reflect.DeepEqual(v, c.want) {
			return fmt.Sprintf("got JSON %s, want %s", short(s), short(c.want))
		}
		return ""
	}
	switch w := c.want.(type) {
	case string:
		if ts, ok := got.(time.Time); ok {
			wt, err := time.Parse(time.RFC3339Nano, w)
			if err != nil || !ts.Equal(wt) {
				return fmt.Sprintf("got %s, want %s", ts.UTC().Format(time.RFC3339Nano), w)
			}
			return ""
		}
		if got != w {
			return fmt.Sprintf("got %s, want %s", short(got), short(w))
		}
	case float64:
		var g float64
		switch v := got.(type) {
		case float64:
			g = v
		case uint64:
			g = float64(v)
		case int64:
			g = float64(v)
		case int32:
			g = float64(v)
		default:
			return fmt.Sprintf("got %T %v, want number %v", got, got, w)
		}
		if g != w && !(math.IsNaN(g) && math.IsNaN(w)) {
			return fmt.Sprintf("got %v, want %v", g, w)
		}
	case bool:
		if got != w {
			return fmt.Sprintf("got %v, want %v", got, w)
		}
	case []any:
		g, ok := got.([]any)
		if !ok || !reflect.DeepEqual(g, w) {
			return fmt.Sprintf("got %v, want %v", got, w)
		}
	default:
		if !reflect.DeepEqual(got, c.want) {
			return fmt.Sprintf("got %v, want %v", got, c.want)
		}
	}
	return ""
}

func short(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 120 {
		return fmt.Sprintf("%s… (%d bytes)", s[:120], len(s))
	}
	return s
}

// TestMastraExporterBrokerOutage: a Mastra app under load loses its only broker for
// about ten seconds. Nothing is thrown into the app, its memory stays bounded, and the
// drops it reports (through Mastra's drop-event path, and as spanpipe drop events on
// the drop topic once the broker is back) add up to exactly the events that are not
// on the topic.
func TestMastraExporterBrokerOutage(t *testing.T) {
	l := ownLauncher(t, 1)
	s := newScenario(t, l.bootstrap, 3)
	published := filepath.Join(s.dir, "published.jsonl")
	progress := filepath.Join(s.dir, "progress.jsonl")
	stop := filepath.Join(s.dir, "stop")
	app := s.startMastraApp(published, "PROGRESS="+progress, "MODE=load", "SECONDS=600", "STOP="+stop,
		fmt.Sprintf("RATE=%d", envInt("SPANPIPE_IT_MASTRA_OUTAGE_RATE", 60)), "MAX_BUFFER_SIZE=5000", "DELIVERY_TIMEOUT_MS=4000")

	type sample struct {
		At, Traces, Rss, RssBefore, Acked, Dropped, Buffered int64
		Started                                              int64
	}
	lastProgress := func() (first, last sample) {
		b, _ := os.ReadFile(progress)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) < 2 {
			return
		}
		_ = json.Unmarshal([]byte(lines[0]), &first)
		_ = json.Unmarshal([]byte(lines[len(lines)-1]), &last)
		return
	}
	s.eventually(3*time.Minute, "the app to publish under load", func() bool {
		_, last := lastProgress()
		return last.Acked > 2000
	})
	_, before := lastProgress()
	outage := time.Now()
	if err := l.kill(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(envDuration("SPANPIPE_IT_MASTRA_OUTAGE", 10*time.Second)) // the outage itself, not a wait for a condition
	if err := l.restartNode(t.Context(), 1); err != nil {
		t.Fatalf("restart the broker: %v\n%s", err, l.serverLog(1, 40))
	}
	down := time.Since(outage)
	// Load goes on until the exporter delivers again, then the app flushes and exits.
	_, back := lastProgress()
	s.eventually(3*time.Minute, "the exporter to deliver again after the broker's return", func() bool {
		_, last := lastProgress()
		return last.Acked > back.Acked+2000
	})
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := app.wait(5 * time.Minute)
	first, _ := lastProgress()

	// What reached the topic, against what Mastra handed the exporter.
	onTopic := map[string]int{}
	readTopic(t, s.brokers, s.topic, func(r *kgo.Record) { onTopic[string(r.Value)]++ })
	emitted, lost, dupes := 0, 0, 0
	f, err := os.Open(published)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		emitted++
		switch n := onTopic[sc.Text()]; {
		case n == 0:
			lost++
		case n > 1:
			dupes += n - 1
		}
	}
	f.Close()
	reported := 0
	for _, n := range sum.ReportedDrops {
		reported += n
	}
	published0 := s.readDropTopic().count("producer", "")
	t.Logf("outage %s: emitted %d, acked %d, lost %d, reported to Mastra %d (%v), on the drop topic %d, duplicates %d",
		down.Round(100*time.Millisecond), emitted, sum.Stats.Acked, lost, reported, sum.ReportedDrops, published0, dupes)
	if emitted != sum.Stats.Emitted {
		t.Errorf("the recorder saw %d events, the exporter %d", emitted, sum.Stats.Emitted)
	}
	if sum.AppExceptions != 0 {
		t.Errorf("%d exceptions reached the app, want 0", sum.AppExceptions)
	}
	if lost == 0 {
		t.Errorf("no event was lost in a %s outage with a 4 s delivery timeout: the scenario tests nothing", down)
	}
	// A request in flight when the broker died may have been written without its
	// acknowledgement coming back: the exporter gives it up at its delivery timeout and
	// reports it dropped although it landed. Reporting may over-count by at most that
	// one request (maxBatchSize 1000, one request in flight); it may never under-count.
	landedReported := reported - lost
	if reported != sum.Stats.Dropped || published0 != reported {
		t.Errorf("reported through Mastra %d, counted by the exporter %d, producer drop events on %s %d; want all equal",
			reported, sum.Stats.Dropped, s.dropTopic, published0)
	}
	if lost > reported {
		t.Errorf("lost %d events but reported only %d: %d lost silently", lost, reported, lost-reported)
	}
	if landedReported > 1000 {
		t.Errorf("%d events reported dropped are on the topic: more than one request's worth (1000)", landedReported)
	}
	if dupes != 0 {
		t.Errorf("%d duplicate records on the topic, want 0 (idempotent producer)", dupes)
	}
	if sum.Stats.Acked != emitted-reported {
		t.Errorf("acknowledged %d, want %d (emitted %d - reported dropped %d)", sum.Stats.Acked, emitted-reported, emitted, reported)
	}
	// Bounded memory: the buffer holds at most 5000 events (~1 KB each here).
	growthMB := float64(int64(sum.MaxRssMB)<<20-first.RssBefore) / (1 << 20)
	if growthMB > 150 {
		t.Errorf("RSS grew by %.0f MB over the run (peak %d MB), want < 150 MB", growthMB, sum.MaxRssMB)
	}
	logFigures(t, "emitted", emitted, "lost", lost, "reported", reported, "reported_but_landed", landedReported, "outage", down.Round(100*time.Millisecond),
		"rss_before_mb", first.RssBefore>>20, "peak_rss_mb", sum.MaxRssMB, "acked_before_outage", before.Acked,
		"app_cpu_ms", sum.CPUMs, "dropped_by", fmt.Sprint(sum.Stats.DroppedBy))
}

// checkCases asserts that the published data holds every case the comparison is meant
// to cover, so that a change to the app cannot quietly drop one.
func checkCases(t *testing.T, path string, events []pubEvent) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("hunter")) || !bytes.Contains(raw, []byte(`"password":"[REDACTED]"`)) {
		t.Error("Mastra's sensitive-data filter did not redact the password in what it published")
	}
	cases := map[string]int{}
	ended := map[string]bool{}
	for _, e := range events {
		b := e.body
		k := fmt.Sprint(b["traceId"], "/", b["id"])
		switch {
		case e.typ == "span_ended":
			ended[k] = true
			if b["errorInfo"] != nil {
				cases["error span"]++
			}
			if b["isEvent"] == true {
				cases["event span"]++
			}
			if strings.HasPrefix(fmt.Sprint(b["type"]), "workflow_") {
				cases["workflow span"]++
			}
			if out, _ := json.Marshal(b["output"]); len(out) >= 40<<10 {
				cases["40 KB payload"]++
			}
		case e.typ == "span_updated":
			cases["span update"]++
		}
		if e.lone {
			cases["lone surrogate"]++
		}
		cases[e.typ]++
	}
	for _, e := range events {
		if e.typ == "span_started" && !ended[fmt.Sprint(e.body["traceId"], "/", e.body["id"])] {
			cases["never-ended span"]++
		}
	}
	for _, c := range []string{"error span", "event span", "workflow span", "40 KB payload", "span update", "lone surrogate",
		"never-ended span", "log", "metric", "score", "feedback"} {
		if cases[c] == 0 {
			t.Errorf("the published data has no %s", c)
		}
	}
	t.Logf("cases: %v", cases)
}
