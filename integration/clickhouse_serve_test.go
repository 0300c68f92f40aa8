package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spanpipe/spanpipe/schema"
)

var explorerURLRE = regexp.MustCompile(`msg="explorer listening" url=(\S+)`)

// TestClickHouseServe: the explorer's API as a user meets it on ClickHouse. `spanpipe
// migrate` creates the database, `spanpipe consume --dsn` stores a few traces (one
// with a failed tool call), and `spanpipe serve --dsn` answers the list with a filter,
// a trace as a tree with its error message, one span with its payloads, and stats:
// the read side's SQL run on a real server, not only on chdb. A poison record among
// the spans shows in the drop summary serve reads from the drop topic (--brokers).
func TestClickHouseServe(t *testing.T) {
	s := newScenario(t, sharedBrokers(t), 1)
	srv := sharedClickHouse(t)
	dsn, _ := s.database(srv)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	s.spanpipeCmd(ctx, nil, "migrate", "--dsn", dsn)
	c := s.startConsumer("c0", dsn, "SPANPIPE_SINK_CLICKHOUSE_AUTO_MIGRATE=false")
	s.waitAssigned(c)

	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	span := func(trace, id, parent, name string, typ schema.SpanType, off time.Duration, err *schema.ErrorInfo) *schema.Span {
		return &schema.Span{TraceID: trace, SpanID: id, ParentSpanID: parent, Name: name, Type: typ,
			StartTime: start.Add(off), EndTime: start.Add(off + 200*time.Millisecond), Version: 1, ErrorInfo: err,
			Input: []byte(`{"q":"weather in Paris"}`), Attributes: []byte(`{"toolId":"lookup"}`),
			Correlation: schema.Correlation{ServiceName: "it-serve", Environment: "ci", EntityType: "agent", EntityName: "helper"}}
	}
	okTrace, badTrace := randomHex(32), randomHex(32)
	root, tool := randomHex(16), randomHex(16)
	spans := []*schema.Span{
		span(okTrace, randomHex(16), "", "agent run ok", schema.AgentRun, 0, nil),
		span(badTrace, root, "", "agent run failing", schema.AgentRun, time.Second, nil),
		span(badTrace, tool, root, "tool lookup", schema.ToolCall, time.Second+10*time.Millisecond,
			&schema.ErrorInfo{Message: "lookup failed: upstream 502"}),
	}
	spans[1].EndTime = start.Add(2 * time.Second)
	var recs []*kgo.Record
	for _, sp := range spans {
		b, err := schema.Encode(nil, &schema.Event{Type: schema.SpanEnded, Span: sp})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: s.topic, Key: []byte(sp.TraceID), Value: b,
			Headers: []kgo.RecordHeader{{Key: schema.HeaderCodec, Value: []byte(schema.CodecJSON)}}})
	}
	recs = append(recs, &kgo.Record{Topic: s.topic, Key: []byte("poison"), Value: []byte("{poison")})
	cl := newClient(t, s.brokers)
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	s.waitCommitted(5 * time.Minute)
	s.stopAll()

	conf := filepath.Join(s.dir, "serve.yaml")
	if err := os.WriteFile(conf, []byte("drops:\n  topic: "+s.dropTopic+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sv := startBg(t, "serve", filepath.Join(s.dir, "serve.log"), []*regexp.Regexp{explorerURLRE}, spanpipeBinary(t),
		"serve", "--config", conf, "--dsn", dsn, "--listen", "127.0.0.1:0", "--brokers", strings.Join(s.brokers, ","))
	base := strings.TrimSuffix(sv.await(t, explorerURLRE, 2*time.Minute), "/")
	get := func(path string, v any) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s: %s\n%s", path, resp.Status, body, sv.logTail(20))
		}
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}

	var list struct {
		Traces []struct {
			TraceID    string `json:"traceId"`
			Name       string `json:"name"`
			SpanCount  int    `json:"spanCount"`
			ErrorCount int    `json:"errorCount"`
			Status     string `json:"status"`
		} `json:"traces"`
	}
	get("/api/v1/traces?status=error&service=it-serve", &list)
	if len(list.Traces) != 1 || list.Traces[0].TraceID != badTrace || list.Traces[0].SpanCount != 2 ||
		list.Traces[0].ErrorCount != 1 || list.Traces[0].Name != "agent run failing" {
		t.Errorf("error traces = %+v, want only %s (agent run failing, 2 spans, 1 error)", list.Traces, badTrace)
	}
	get("/api/v1/traces?q="+url.QueryEscape("run ok"), &list)
	if len(list.Traces) != 1 || list.Traces[0].TraceID != okTrace || list.Traces[0].Status != "ok" {
		t.Errorf("search %q = %+v, want only %s, ok", "run ok", list.Traces, okTrace)
	}

	var tr struct {
		SpanCount int `json:"spanCount"`
		Spans     []struct {
			SpanID string `json:"spanId"`
			Depth  int    `json:"depth"`
			Error  string `json:"error"`
		} `json:"spans"`
	}
	get("/api/v1/traces/"+badTrace, &tr)
	if tr.SpanCount != 2 || len(tr.Spans) != 2 || tr.Spans[0].SpanID != root || tr.Spans[1].SpanID != tool ||
		tr.Spans[1].Depth != 1 || tr.Spans[1].Error != "lookup failed: upstream 502" {
		t.Errorf("trace %s = %+v, want root %s then tool %s at depth 1 with its error", badTrace, tr, root, tool)
	}

	var sp struct {
		Name       string          `json:"name"`
		Input      json.RawMessage `json:"input"`
		Attributes json.RawMessage `json:"attributes"`
		ErrorInfo  *struct {
			Message string `json:"message"`
		} `json:"errorInfo"`
	}
	get(fmt.Sprintf("/api/v1/traces/%s/spans/%s", badTrace, tool), &sp)
	if sp.Name != "tool lookup" || !strings.Contains(string(sp.Input), "weather in Paris") ||
		!strings.Contains(string(sp.Attributes), "lookup") || sp.ErrorInfo == nil || sp.ErrorInfo.Message != "lookup failed: upstream 502" {
		t.Errorf("span %s = %+v (input %s), want tool lookup with its input and error", tool, sp, sp.Input)
	}

	var st struct {
		Series []struct {
			Traces     int64 `json:"traces"`
			Spans      int64 `json:"spans"`
			ErrorSpans int64 `json:"errorSpans"`
		} `json:"series"`
		Durations []struct {
			Count int64 `json:"count"`
		} `json:"durations"`
	}
	get(fmt.Sprintf("/api/v1/stats?from=%d&bucket=1h&service=it-serve", start.Add(-time.Hour).UnixMilli()), &st)
	var traces, nspans, errs, durs int64
	for _, b := range st.Series {
		traces, nspans, errs = traces+b.Traces, nspans+b.Spans, errs+b.ErrorSpans
	}
	for _, d := range st.Durations {
		durs += d.Count
	}
	if traces != 2 || nspans != 3 || errs != 1 || durs != 3 {
		t.Errorf("stats: %d traces, %d spans, %d error spans, %d durations; want 2, 3, 1, 3 (%+v)", traces, nspans, errs, durs, st)
	}
	var drops struct {
		Totals []struct {
			Reason string `json:"reason"`
			Count  int64  `json:"count"`
		} `json:"totals"`
		Samples []struct {
			Error string `json:"error"`
		} `json:"samples"`
	}
	deadline := time.Now().Add(2 * time.Minute)
	for get("/api/v1/drops", &drops); len(drops.Totals) == 0 && time.Now().Before(deadline); get("/api/v1/drops", &drops) {
		time.Sleep(200 * time.Millisecond) // the feed reads the drop topic in the background
	}
	if len(drops.Totals) != 1 || drops.Totals[0].Reason != "decode-error" || drops.Totals[0].Count != 1 || len(drops.Samples) != 1 {
		t.Errorf("drop summary = %+v, want the poison record: 1 decode-error", drops)
	}
	if code := sv.stop(t); code != 0 {
		t.Errorf("serve exited %d on SIGTERM:\n%s", code, sv.logTail(20))
	}
}
