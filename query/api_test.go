package query_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/query"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

var _ query.Reader = (*duckdb.Reader)(nil)

var t0 = time.Date(2026, 3, 14, 15, 0, 0, 0, time.UTC)

// fixture traces, oldest first: ok (support), error in a tool (billing), running
// (support), ok in another service (search), each a minute apart.
const (
	trOK      = "0000000000000000000000000000000a"
	trErr     = "0000000000000000000000000000000b"
	trRunning = "0000000000000000000000000000000c"
	trOther   = "0000000000000000000000000000000d"
)

func fixture() []*schema.Span {
	mk := func(trace, id, parent, name string, typ schema.SpanType, start, dur time.Duration) *schema.Span {
		s := &schema.Span{TraceID: trace, SpanID: id, ParentSpanID: parent, Name: name, Type: typ,
			StartTime: t0.Add(start), IsRootSpan: parent == "", Version: 3,
			Correlation: schema.Correlation{ServiceName: "support", Environment: "prod"}}
		if dur > 0 {
			s.EndTime = s.StartTime.Add(dur)
		}
		return s
	}
	var out []*schema.Span
	trace := func(trace string, at time.Duration, agent string) *schema.Span {
		root := mk(trace, "0000000000000001", "", "agent "+agent, schema.AgentRun, at, 3*time.Second)
		root.EntityType, root.EntityName, root.UserID, root.Tags = "agent", agent, "user-"+agent, []string{"demo", agent}
		root.Metadata = jsontext.Value(`{"customer":"` + agent + `"}`)
		llm := mk(trace, "0000000000000002", root.SpanID, "llm plan", schema.ModelGeneration, at+100*time.Millisecond, time.Second)
		llm.Attributes = jsontext.Value(`{"model":"gpt-4o-mini","usage":{"inputTokens":100,"outputTokens":20}}`)
		tool := mk(trace, "0000000000000003", llm.SpanID, "tool weather", schema.ToolCall, at+1200*time.Millisecond, 50*time.Millisecond)
		tool.Input = jsontext.Value(`{"city":"Paris"}`)
		out = append(out, root, llm, tool)
		return root
	}
	trace(trOK, 0, "support")
	trace(trErr, time.Minute, "billing")
	out[len(out)-1].ErrorInfo = &schema.ErrorInfo{Message: "weather: upstream returned 503"}
	r := trace(trRunning, 2*time.Minute, "support")
	r.EndTime = time.Time{}
	o := trace(trOther, 3*time.Minute, "research")
	for _, s := range out[len(out)-3:] {
		s.ServiceName = "search"
	}
	_ = o
	return out
}

func newAPI(t *testing.T, token string) *httptest.Server {
	t.Helper()
	cfg := duckdb.DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "q.duckdb")
	w, err := duckdb.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	if err := w.Write(t.Context(), &pipeline.Batch{Strategy: pipeline.BatchWithUpdates, Spans: fixture()}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(query.NewHandler(duckdb.NewReader(w.DB()), token, nil))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, srv *httptest.Server, path string, out any) (int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

func ids(p query.TracePage) string {
	var s []string
	for _, t := range p.Traces {
		s = append(s, t.TraceID[len(t.TraceID)-1:]+":"+string(t.Status))
	}
	return strings.Join(s, " ")
}

func TestListTraces(t *testing.T) {
	srv := newAPI(t, "")
	tests := []struct{ query, want string }{
		{"", "d:ok c:running b:error a:ok"},
		{"status=error", "b:error"},
		{"status=running", "c:running"},
		{"status=ok", "d:ok a:ok"},
		{"service=search", "d:ok"},
		{"service=support&environment=prod", "c:running b:error a:ok"},
		{"entityType=agent&entityName=billing", "b:error"},
		{"userId=user-support", "c:running a:ok"},
		{"tag=demo&tag=research", "d:ok"},
		{"meta=customer:billing", "b:error"},
		{"spanType=tool_call&status=error", "b:error"},
		{"spanType=workflow_run", ""},
		{"q=WEATHER", "d:ok c:running b:error a:ok"},
		{"q=nothing-like-this", ""},
		{"from=" + url.QueryEscape(t0.Add(30*time.Second).Format(time.RFC3339)) + "&to=" + fmt.Sprint(t0.Add(150*time.Second).UnixMilli()), "c:running b:error"},
	}
	for _, tt := range tests {
		var page query.TracePage
		if code, body := get(t, srv, "/api/v1/traces?"+tt.query, &page); code != 200 {
			t.Fatalf("?%s: status %d: %s", tt.query, code, body)
		}
		if got := ids(page); got != tt.want {
			t.Errorf("?%s: got %q, want %q", tt.query, got, tt.want)
		}
	}

	var page query.TracePage
	get(t, srv, "/api/v1/traces?status=error", &page)
	got := page.Traces[0]
	if got.Name != "agent billing" || got.SpanCount != 3 || got.ErrorCount != 1 || got.DurationMS == nil || *got.DurationMS != 3000 || got.ServiceName != "support" {
		t.Errorf("error trace row: got %+v", got)
	}
}

func TestListTracesPages(t *testing.T) {
	srv := newAPI(t, "")
	var all []string
	path := "/api/v1/traces?limit=3"
	for range 5 {
		var page query.TracePage
		if code, body := get(t, srv, path, &page); code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		all = append(all, ids(page))
		if page.NextCursor == "" {
			break
		}
		path = "/api/v1/traces?limit=3&cursor=" + page.NextCursor
	}
	if got := strings.Join(all, " | "); got != "d:ok c:running b:error | a:ok" {
		t.Errorf("pages: got %q", got)
	}
}

func TestGetTraceAndSpan(t *testing.T) {
	srv := newAPI(t, "")
	var tr query.Trace
	// Ids are case-insensitive.
	if code, body := get(t, srv, "/api/v1/traces/"+strings.ToUpper(trErr), &tr); code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var tree []string
	for _, s := range tr.Spans {
		tree = append(tree, fmt.Sprintf("%d:%s:%s", s.Depth, s.Name, s.Status))
	}
	if got, want := strings.Join(tree, ","), "0:agent billing:ok,1:llm plan:ok,2:tool weather:error"; got != want {
		t.Errorf("tree: got %s, want %s", got, want)
	}
	if tr.Status != query.StatusError || tr.Spans[2].Error != "weather: upstream returned 503" || *tr.DurationMS != 3000 {
		t.Errorf("trace: got %+v", tr)
	}

	var sp map[string]any
	if code, body := get(t, srv, "/api/v1/traces/"+trErr+"/spans/0000000000000003", &sp); code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	if in, _ := sp["input"].(map[string]any); in["city"] != "Paris" || sp["output"] != nil {
		t.Errorf("span input/output: got %v / %v", sp["input"], sp["output"])
	}
	if e, _ := sp["errorInfo"].(map[string]any); e["message"] != "weather: upstream returned 503" {
		t.Errorf("span errorInfo: got %v", sp["errorInfo"])
	}
}

func TestStats(t *testing.T) {
	srv := newAPI(t, "")
	var st query.Stats
	path := fmt.Sprintf("/api/v1/stats?from=%d&to=%d&bucket=1m", t0.UnixMilli(), t0.Add(5*time.Minute).UnixMilli())
	if code, body := get(t, srv, path, &st); code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var series []string
	for _, b := range st.Series {
		series = append(series, fmt.Sprintf("%d/%d/%d/%.1f", b.Traces, b.Spans, b.ErrorSpans, b.ErrorRate))
	}
	if got, want := strings.Join(series, " "), "1/3/0/0.0 1/3/1/1.0 1/3/0/0.0 1/3/0/0.0 0/0/0/0.0"; got != want {
		t.Errorf("series: got %s, want %s", got, want)
	}
	if len(st.Models) != 1 || st.Models[0].Model != "gpt-4o-mini" || st.Models[0].Calls != 4 || st.Models[0].InputTokens != 400 || st.Models[0].OutputTokens != 80 {
		t.Errorf("models: got %+v", st.Models)
	}
	var weather *query.EntityDuration
	for i, d := range st.Durations {
		if d.Entity == "tool weather" {
			weather = &st.Durations[i]
		}
	}
	if weather == nil || weather.Count != 4 || weather.P50MS != 50 || weather.P99MS != 50 {
		t.Errorf("durations: got %+v", st.Durations)
	}
}

// TestBadRequests: every bad parameter is a 400 naming it, never a 500.
func TestBadRequests(t *testing.T) {
	srv := newAPI(t, "")
	tests := []struct{ path, want string }{
		{"/api/v1/traces?limit=0", "limit must be 1 to 200"},
		{"/api/v1/traces?limit=100000", "limit must be 1 to 200"},
		{"/api/v1/traces?limit=x", "limit must be 1 to 200"},
		{"/api/v1/traces?from=yesterday", "from: want RFC 3339"},
		{"/api/v1/traces?from=2026-03-14T15:00:00Z&to=2026-03-14T14:00:00Z", "from must be before to"},
		{"/api/v1/traces?statuss=error", `unknown parameter \"statuss\"`},
		{"/api/v1/traces?status=broken", "status must be ok, error or running"},
		{"/api/v1/traces?service=a&service=b", "service: given 2 times"},
		{"/api/v1/traces?cursor=%21%21", "cursor: not a cursor"},
		{"/api/v1/traces?meta=nocolon", "meta: want key:value"},
		{"/api/v1/traces?meta=" + url.QueryEscape("a'b:c"), "meta: key"},
		{"/api/v1/traces?q=" + strings.Repeat("x", 201), "q: at most 200 bytes"},
		{"/api/v1/traces?userId=" + strings.Repeat("x", 257), "userId: at most 256 bytes"},
		{"/api/v1/traces?" + strings.Repeat("tag=a&", 11), "tag: at most 10"},
		{"/api/v1/traces/not-hex", "invalid trace id"},
		{"/api/v1/traces/" + strings.Repeat("a", 33), "invalid trace id"},
		{"/api/v1/traces/" + trErr + "?x=1", "takes no parameters"},
		{"/api/v1/traces/" + trErr + "/spans/zz", "invalid span id"},
		{"/api/v1/stats", "from and to are required"},
		{"/api/v1/stats?from=0&to=" + fmt.Sprint((40 * 24 * time.Hour).Milliseconds()), "at most 744h0m0s"},
		{"/api/v1/stats?from=0&to=86400000&bucket=1", "gives 86400 buckets"},
		{"/api/v1/stats?from=0&to=86400000&bucket=-5m", "bucket must be"},
		{"/api/v1/stats?from=0&to=86400000&bucket=soon", "bucket: want seconds"},
	}
	for _, tt := range tests {
		code, body := get(t, srv, tt.path, nil)
		if code != 400 || !strings.Contains(body, tt.want) || !strings.HasPrefix(body, `{"error":{"status":400,"message":"invalid request: `) {
			t.Errorf("GET %s: got %d %s, want 400 with %q", tt.path, code, body, tt.want)
		}
	}
	for _, path := range []string{"/api/v1/traces/" + strings.Repeat("f", 32), "/api/v1/traces/" + trErr + "/spans/00000000000000ff", "/api/v1/nothing"} {
		if code, body := get(t, srv, path, nil); code != 404 || !strings.Contains(body, "not found") && !strings.Contains(body, "no such endpoint") {
			t.Errorf("GET %s: got %d %s, want 404", path, code, body)
		}
	}
	resp, err := http.Post(srv.URL+"/api/v1/traces", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("POST: got %d, want 405 (read-only)", resp.StatusCode)
	}
}

func TestPageHeadersAndAssets(t *testing.T) {
	srv := newAPI(t, "")
	for _, path := range []string{"/", "/assets/app.js", "/assets/app.css", "/api/v1/openapi.yaml"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if resp.StatusCode != 200 || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: got %d, CSP %q", path, resp.StatusCode, csp)
		}
	}
}

func TestAuth(t *testing.T) {
	const token = "0123456789abcdef-secret"
	srv := newAPI(t, token)
	do := func(set func(*http.Request)) int {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/traces", nil)
		set(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for name, tt := range map[string]struct {
		set  func(*http.Request)
		want int
	}{
		"none":         {func(*http.Request) {}, 401},
		"wrong bearer": {func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, 401},
		"bearer":       {func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }, 200},
		"basic":        {func(r *http.Request) { r.SetBasicAuth("anyone", token) }, 200},
		"wrong basic":  {func(r *http.Request) { r.SetBasicAuth(token, "x") }, 401},
	} {
		if got := do(tt.set); got != tt.want {
			t.Errorf("%s: got %d, want %d", name, got, tt.want)
		}
	}
}

func TestServerConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  query.ServerConfig
		want string
	}{
		{query.ServerConfig{Addr: "127.0.0.1:7070"}, ""},
		{query.ServerConfig{Addr: "localhost:0"}, ""},
		{query.ServerConfig{Addr: "[::1]:7070"}, ""},
		{query.ServerConfig{Addr: "0.0.0.0:7070"}, "set a token"},
		{query.ServerConfig{Addr: ":7070"}, "set a token"},
		{query.ServerConfig{Addr: "0.0.0.0:7070", Token: "0123456789abcdef"}, ""},
		{query.ServerConfig{Addr: "0.0.0.0:7070", Token: "short"}, "at least 16"},
		{query.ServerConfig{Addr: "7070"}, "want host:port"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Validate(%+v): got %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

func TestReadToken(t *testing.T) {
	env := func(v string) func(string) string { return func(string) string { return v } }
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("  0123456789abcdef-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := query.ReadToken(file, env("from-env")); err != nil || got != "0123456789abcdef-from-file" {
		t.Errorf("from file: got %q, %v", got, err)
	}
	if got, err := query.ReadToken("", env("from-env")); err != nil || got != "from-env" {
		t.Errorf("from env: got %q, %v", got, err)
	}
	if _, err := query.ReadToken(filepath.Join(t.TempDir(), "missing"), env("")); err == nil {
		t.Error("missing file: no error")
	}
}
