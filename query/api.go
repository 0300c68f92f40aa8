package query

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/schema"
)

// The page and the API description, served as they are: nothing is loaded from
// elsewhere.
//
//go:embed web openapi.yaml
var assets embed.FS

// QueryTimeout bounds every store query an API request makes.
const QueryTimeout = 30 * time.Second

// csp allows only what the page itself serves: no inline script or style, no eval,
// no frames, no form posts, and fetches to this origin only. Span content is
// inserted as text, so even a payload that slipped into markup could not run.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the explorer: the page at /, the JSON API under /api/v1/ and its
// OpenAPI description at /api/v1/openapi.yaml. It only reads. With a token, every
// request must carry it (Authorization: Bearer TOKEN, or basic auth with the token
// as password, which browsers prompt for).
type Handler struct {
	r     Reader
	log   *slog.Logger
	token [32]byte // sha256 of the token, compared in constant time
	auth  bool
	mux   *http.ServeMux
	drops *Drops
}

// HandlerOption configures a [Handler].
type HandlerOption func(*Handler)

// WithDrops serves d as GET /api/v1/drops; without it that endpoint answers 404.
func WithDrops(d *Drops) HandlerOption { return func(h *Handler) { h.drops = d } }

// NewHandler returns the explorer's handler over r; token "" means no
// authentication (for loopback listeners only: see [ServerConfig.Validate]).
func NewHandler(r Reader, token string, log *slog.Logger, opts ...HandlerOption) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{r: r, log: log, mux: http.NewServeMux()}
	for _, o := range opts {
		o(h)
	}
	if token != "" {
		h.auth, h.token = true, sha256.Sum256([]byte(token))
	}
	web, _ := fs.Sub(assets, "web")
	files := http.FileServerFS(web)
	h.mux.Handle("GET /{$}", files)
	h.mux.Handle("GET /assets/", http.StripPrefix("/assets/", files))
	h.mux.HandleFunc("GET /api/v1/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		http.ServeFileFS(w, r, assets, "openapi.yaml")
	})
	h.mux.HandleFunc("GET /api/v1/traces", h.listTraces)
	h.mux.HandleFunc("GET /api/v1/traces/{traceId}", h.getTrace)
	h.mux.HandleFunc("GET /api/v1/traces/{traceId}/spans/{spanId}", h.getSpan)
	h.mux.HandleFunc("GET /api/v1/stats", h.stats)
	h.mux.HandleFunc("GET /api/v1/drops", h.dropSummary)
	h.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cache-Control", "no-store")
	if h.auth && !h.authorized(r) {
		hd.Set("WWW-Authenticate", `Basic realm="spanpipe", charset="UTF-8"`)
		writeError(w, http.StatusUnauthorized, "authentication required: Authorization: Bearer TOKEN, or basic auth with the token as password")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "read-only: only GET and HEAD")
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) authorized(r *http.Request) bool {
	var got string
	if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		got = b
	} else if _, p, ok := r.BasicAuth(); ok {
		got = p
	} else {
		return false
	}
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], h.token[:]) == 1
}

// apiError is the body of every error answer.
type apiError struct {
	Error struct {
		Status  int    `json:"status"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	var e apiError
	e.Error.Status, e.Error.Message = status, msg
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.MarshalWrite(w, v, json.Deterministic(true))
}

// fail answers an error from parsing or from the store: bad input is a 400 with its
// message; anything else is logged and answered 500 without details, or 503 when the
// query ran out of time.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, strings.ReplaceAll(err.Error(), "\n", "; "))
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "the query took longer than "+QueryTimeout.String())
	case r.Context().Err() != nil: // the client went away
	default:
		h.log.Error("query failed", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "the store failed to answer; see the server log")
	}
}

// params reads a query string strictly: unknown keys and repeated single keys are
// errors, so that a typo does not silently widen a query.
type params struct {
	v    url.Values
	errs []error
}

func newParams(r *http.Request, known ...string) *params {
	p := &params{v: r.URL.Query()}
	for k := range p.v {
		switch {
		case len(known) == 0:
			p.errs = append(p.errs, invalidf("unknown parameter %q: %s takes no parameters", clip(k), r.URL.Path))
		case !slices.Contains(known, k):
			p.errs = append(p.errs, invalidf("unknown parameter %q (known: %s)", clip(k), strings.Join(known, ", ")))
		}
	}
	return p
}

func (p *params) str(k string) string {
	vs := p.v[k]
	if len(vs) > 1 {
		p.errs = append(p.errs, invalidf("%s: given %d times, want once", k, len(vs)))
	}
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// time accepts RFC 3339 or milliseconds since the epoch.
func (p *params) time(k string) time.Time {
	s := p.str(k)
	if s == "" {
		return time.Time{}
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms >= 0 && ms < 1<<43 {
		return time.UnixMilli(ms).UTC()
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 1900 || t.Year() > 2262 {
		p.errs = append(p.errs, invalidf("%s: want RFC 3339 (2026-03-14T15:09:26Z) or milliseconds since 1970, got %q", k, clip(s)))
		return time.Time{}
	}
	return t.UTC()
}

func (p *params) err() error { return errors.Join(p.errs...) }

var listParams = []string{"from", "to", "service", "environment", "entityType", "entityName", "spanType", "status",
	"userId", "sessionId", "threadId", "resourceId", "runId", "tag", "meta", "q", "limit", "cursor"}

// ParseTraceFilter reads a trace list request's query string.
func ParseTraceFilter(r *http.Request) (TraceFilter, error) {
	p := newParams(r, listParams...)
	f := TraceFilter{
		From: p.time("from"), To: p.time("to"),
		Service: p.str("service"), Environment: p.str("environment"),
		EntityType: p.str("entityType"), EntityName: p.str("entityName"), SpanType: p.str("spanType"),
		Status: Status(p.str("status")), UserID: p.str("userId"), SessionID: p.str("sessionId"),
		ThreadID: p.str("threadId"), ResourceID: p.str("resourceId"), RunID: p.str("runId"),
		Tags: p.v["tag"], Search: p.str("q"),
	}
	for _, m := range p.v["meta"] {
		k, v, ok := strings.Cut(m, ":")
		if !ok {
			p.errs = append(p.errs, invalidf("meta: want key:value, got %q", clip(m)))
		}
		f.Metadata = append(f.Metadata, KV{k, v})
	}
	if s := p.str("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			p.errs = append(p.errs, invalidf("limit must be 1 to %d, got %q", MaxLimit, clip(s)))
		}
		f.Limit = n
	}
	if s := p.str("cursor"); s != "" {
		c, err := ParseCursor(s)
		if err != nil {
			p.errs = append(p.errs, err)
		}
		f.Cursor = c
	}
	if err := p.err(); err != nil {
		return f, err
	}
	return f, f.Validate()
}

func (h *Handler) listTraces(w http.ResponseWriter, r *http.Request) {
	f, err := ParseTraceFilter(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), QueryTimeout)
	defer cancel()
	page, err := h.r.ListTraces(ctx, f)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (h *Handler) getTrace(w http.ResponseWriter, r *http.Request) {
	p := newParams(r)
	id, err := TraceID(r.PathValue("traceId"))
	if err = errors.Join(p.err(), err); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), QueryTimeout)
	defer cancel()
	spans, err := h.r.TraceSpans(ctx, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if len(spans) == 0 {
		writeError(w, http.StatusNotFound, "trace "+id+" not found")
		return
	}
	writeJSON(w, http.StatusOK, BuildTrace(id, spans))
}

// SpanDetail is a span with its payloads, as the API returns it: payloads are the
// stored JSON (null when absent).
type SpanDetail struct {
	SpanNode
	TraceID        string             `json:"traceId"`
	Version        uint64             `json:"version"`
	Correlation    schema.Correlation `json:"correlation"`
	Attributes     jsontext.Value     `json:"attributes"`
	Metadata       jsontext.Value     `json:"metadata"`
	Input          jsontext.Value     `json:"input"`
	Output         jsontext.Value     `json:"output"`
	ErrorInfo      *schema.ErrorInfo  `json:"errorInfo"`
	RequestContext jsontext.Value     `json:"requestContext"`
}

func orNull(v jsontext.Value) jsontext.Value {
	if len(v) == 0 {
		return jsontext.Value("null")
	}
	return v
}

func (h *Handler) getSpan(w http.ResponseWriter, r *http.Request) {
	p := newParams(r)
	tid, err1 := TraceID(r.PathValue("traceId"))
	sid, err2 := SpanID(r.PathValue("spanId"))
	if err := errors.Join(p.err(), err1, err2); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), QueryTimeout)
	defer cancel()
	s, err := h.r.Span(ctx, tid, sid)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if s == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("span %s of trace %s not found", sid, tid))
		return
	}
	d := SpanDetail{SpanNode: node(s, 0), TraceID: s.TraceID, Version: s.Version, Correlation: s.Correlation,
		Attributes: orNull(s.Attributes), Metadata: orNull(s.Metadata), Input: orNull(s.Input), Output: orNull(s.Output),
		ErrorInfo: s.ErrorInfo, RequestContext: orNull(s.RequestContext)}
	writeJSON(w, http.StatusOK, d)
}

// bucket accepts seconds or a Go duration (5m, 1h).
func (p *params) bucket(k string) time.Duration {
	s := p.str(k)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if n, nerr := strconv.Atoi(s); nerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil {
		p.errs = append(p.errs, invalidf("%s: want seconds or a duration (5m, 1h), got %q", k, clip(s)))
	}
	return d
}

func (h *Handler) stats(w http.ResponseWriter, r *http.Request) {
	p := newParams(r, "from", "to", "bucket", "service", "environment")
	q := StatsQuery{From: p.time("from"), To: p.time("to"), Service: p.str("service"), Environment: p.str("environment"),
		Bucket: p.bucket("bucket")}
	if q.To.IsZero() && !q.From.IsZero() {
		q.To = time.Now().UTC()
	}
	err := p.err()
	if err == nil {
		err = q.Validate()
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), QueryTimeout)
	defer cancel()
	st, err := h.r.Stats(ctx, q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

var dropParams = []string{"from", "to", "bucket", "reason", "signal", "samples"}

func (h *Handler) dropSummary(w http.ResponseWriter, r *http.Request) {
	if h.drops == nil {
		writeError(w, http.StatusNotFound, "this process reads no drop topic: the drop summary needs the explorer of "+
			"spanpipe consume or dev, or spanpipe serve --brokers")
		return
	}
	p := newParams(r, dropParams...)
	q := DropQuery{From: p.time("from"), To: p.time("to"), Bucket: p.bucket("bucket"), Reason: p.str("reason"),
		Signal: p.str("signal"), Samples: 20}
	if s := p.str("samples"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			p.errs = append(p.errs, invalidf("samples must be 0 to %d, got %q", MaxDropSamples, clip(s)))
		}
		q.Samples = n
	}
	if err := p.err(); err != nil {
		h.fail(w, r, err)
		return
	}
	s, err := h.drops.Summary(q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}
