package query

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spanpipe/spanpipe/schema"
)

// Reader is what the query side needs of a store. DuckDB and ClickHouse implement it
// (sinks/duckdb.Reader, sinks/clickhouse.Reader); every query is parameterised and
// read-only. Implementations receive filters that passed Validate.
type Reader interface {
	// ListTraces returns one page of traces, newest root span first.
	ListTraces(ctx context.Context, f TraceFilter) (TracePage, error)
	// TraceSpans returns the newest snapshot of every span of a trace without its
	// input, output, attributes, metadata and request context (errors included);
	// none when the trace is unknown.
	TraceSpans(ctx context.Context, traceID string) ([]*schema.Span, error)
	// Span returns one span with all its payloads, or nil when it is unknown.
	Span(ctx context.Context, traceID, spanID string) (*schema.Span, error)
	// Stats returns aggregates over time buckets.
	Stats(ctx context.Context, q StatsQuery) (*Stats, error)
}

// Status is a trace's outcome: error when any of its spans has an error, else
// running while its root span has not ended, else ok.
type Status string

// Statuses.
const (
	StatusOK      Status = "ok"
	StatusError   Status = "error"
	StatusRunning Status = "running"
)

// Limits on every parameter, so that no request can ask for an unbounded answer.
const (
	DefaultLimit   = 50
	MaxLimit       = 200
	MaxValueLen    = 256 // a filter value (service, user id, tag...)
	MaxSearchLen   = 200
	MaxTags        = 10
	MaxMetadata    = 5
	MaxStatsRange  = 31 * 24 * time.Hour
	MaxBuckets     = 500
	MinBucket      = time.Second
	DefaultBuckets = 60
	// MaxStatsRows bounds the per-entity and per-model tables of [Stats].
	MaxStatsRows = 50
)

// ErrInvalid marks errors that a bad request caused; the API answers them with 400.
var ErrInvalid = errors.New("invalid request")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// KV is a metadata key and the value it must have.
type KV struct{ Key, Value string }

// Cursor is the position after the last trace of a page: pages are ordered by root
// start time then trace id, both descending.
type Cursor struct {
	Start   time.Time
	TraceID string
}

// String encodes the cursor as an opaque URL-safe token.
func (c Cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.Start.UnixMicro(), 10) + ":" + c.TraceID))
}

// ParseCursor decodes [Cursor.String].
func ParseCursor(s string) (*Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(s) > 100 {
		return nil, invalidf("cursor: not a cursor this API returned")
	}
	us, id, ok := strings.Cut(string(b), ":")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil {
		return nil, invalidf("cursor: not a cursor this API returned")
	}
	id, err = TraceID(id)
	if err != nil {
		return nil, invalidf("cursor: not a cursor this API returned")
	}
	return &Cursor{Start: time.UnixMicro(n).UTC(), TraceID: id}, nil
}

// TraceFilter selects traces. Fields about the trace as a whole (service,
// environment, entity, user and the other context ids, tags, metadata) match its
// root span; SpanType and Search match when any span of the trace does.
type TraceFilter struct {
	// From and To bound the root span's start time: From <= start < To. Zero: open.
	From, To                    time.Time
	Service, Environment        string
	EntityType, EntityName      string
	SpanType                    string
	Status                      Status
	UserID, SessionID, ThreadID string
	ResourceID, RunID           string
	Tags                        []string // every tag must be on the root span
	Metadata                    []KV     // every key must have its value
	Search                      string   // case-insensitive substring of a span name
	Limit                       int      // 1..MaxLimit; 0 means DefaultLimit
	Cursor                      *Cursor
}

var metaKey = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// Validate checks the limits; errors match [ErrInvalid] and name the parameter.
func (f *TraceFilter) Validate() error {
	var errs []error
	if f.Limit == 0 {
		f.Limit = DefaultLimit
	}
	if f.Limit < 1 || f.Limit > MaxLimit {
		errs = append(errs, invalidf("limit must be 1 to %d, got %d", MaxLimit, f.Limit))
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		errs = append(errs, invalidf("from must be before to"))
	}
	for name, v := range map[string]string{"service": f.Service, "environment": f.Environment, "entityType": f.EntityType,
		"entityName": f.EntityName, "spanType": f.SpanType, "userId": f.UserID, "sessionId": f.SessionID,
		"threadId": f.ThreadID, "resourceId": f.ResourceID, "runId": f.RunID} {
		if len(v) > MaxValueLen {
			errs = append(errs, invalidf("%s: at most %d bytes, got %d", name, MaxValueLen, len(v)))
		}
	}
	switch f.Status {
	case "", StatusOK, StatusError, StatusRunning:
	default:
		errs = append(errs, invalidf("status must be ok, error or running, got %q", f.Status))
	}
	if len(f.Tags) > MaxTags {
		errs = append(errs, invalidf("tag: at most %d, got %d", MaxTags, len(f.Tags)))
	}
	for _, t := range f.Tags {
		if t == "" || len(t) > MaxValueLen {
			errs = append(errs, invalidf("tag: 1 to %d bytes, got %d", MaxValueLen, len(t)))
		}
	}
	if len(f.Metadata) > MaxMetadata {
		errs = append(errs, invalidf("meta: at most %d, got %d", MaxMetadata, len(f.Metadata)))
	}
	for _, kv := range f.Metadata {
		if !metaKey.MatchString(kv.Key) {
			errs = append(errs, invalidf("meta: key %q must be 1 to 64 of A-Z a-z 0-9 _ . : -", clip(kv.Key)))
		}
		if len(kv.Value) > MaxValueLen {
			errs = append(errs, invalidf("meta: value of %s: at most %d bytes", kv.Key, MaxValueLen))
		}
	}
	if len(f.Search) > MaxSearchLen {
		errs = append(errs, invalidf("q: at most %d bytes, got %d", MaxSearchLen, len(f.Search)))
	}
	return errors.Join(errs...)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// TraceSummary is one row of a trace list.
type TraceSummary struct {
	TraceID     string     `json:"traceId"`
	RootSpanID  string     `json:"rootSpanId"`
	Name        string     `json:"name"`
	SpanType    string     `json:"spanType"`
	EntityType  string     `json:"entityType,omitempty"`
	EntityName  string     `json:"entityName,omitempty"`
	ServiceName string     `json:"serviceName,omitempty"`
	Environment string     `json:"environment,omitempty"`
	UserID      string     `json:"userId,omitempty"`
	StartedAt   time.Time  `json:"startedAt"`
	EndedAt     *time.Time `json:"endedAt,omitempty"`
	DurationMS  *float64   `json:"durationMs,omitempty"`
	SpanCount   int        `json:"spanCount"`
	ErrorCount  int        `json:"errorCount"`
	Status      Status     `json:"status"`
}

// Finish sets the duration and the status from the other fields.
func (t *TraceSummary) Finish() {
	if t.EndedAt != nil {
		d := durationMS(t.StartedAt, *t.EndedAt)
		t.DurationMS = &d
	}
	switch {
	case t.ErrorCount > 0:
		t.Status = StatusError
	case t.EndedAt == nil:
		t.Status = StatusRunning
	default:
		t.Status = StatusOK
	}
}

func durationMS(a, b time.Time) float64 { return float64(b.Sub(a).Microseconds()) / 1000 }

// TracePage is a page of traces and the cursor of the next page ("" on the last).
type TracePage struct {
	Traces     []TraceSummary `json:"traces"`
	NextCursor string         `json:"nextCursor,omitempty"`
}

// Trim cuts a page read with limit+1 rows to limit, and sets NextCursor when there
// was more.
func (p *TracePage) Trim(limit int) {
	if len(p.Traces) > limit {
		p.Traces = p.Traces[:limit]
		last := p.Traces[limit-1]
		p.NextCursor = Cursor{Start: last.StartedAt, TraceID: last.TraceID}.String()
	}
}

// StatsQuery selects the spans aggregated by [Reader.Stats].
type StatsQuery struct {
	From, To             time.Time
	Bucket               time.Duration
	Service, Environment string
}

// Validate checks the limits and fills the default bucket; errors match [ErrInvalid].
func (q *StatsQuery) Validate() error {
	var errs []error
	switch {
	case q.From.IsZero() || q.To.IsZero():
		errs = append(errs, invalidf("from and to are required"))
	case !q.From.Before(q.To):
		errs = append(errs, invalidf("from must be before to"))
	case q.To.Sub(q.From) > MaxStatsRange:
		errs = append(errs, invalidf("to - from must be at most %s, got %s", MaxStatsRange, q.To.Sub(q.From)))
	default:
		if q.Bucket == 0 {
			q.Bucket = max(MinBucket, (q.To.Sub(q.From) / DefaultBuckets).Round(time.Second))
		}
		if q.Bucket < MinBucket || q.Bucket%time.Second != 0 {
			errs = append(errs, invalidf("bucket must be a whole number of seconds, at least 1s, got %s", q.Bucket))
		} else if n := q.To.Sub(q.From) / q.Bucket; n > MaxBuckets {
			errs = append(errs, invalidf("bucket: %s gives %d buckets, at most %d", q.Bucket, n, MaxBuckets))
		}
	}
	if len(q.Service) > MaxValueLen || len(q.Environment) > MaxValueLen {
		errs = append(errs, invalidf("service, environment: at most %d bytes", MaxValueLen))
	}
	return errors.Join(errs...)
}

// Stats are aggregates over [StatsQuery.From, To).
type Stats struct {
	From          time.Time        `json:"from"`
	To            time.Time        `json:"to"`
	BucketSeconds int64            `json:"bucketSeconds"`
	Series        []Bucket         `json:"series"`
	Durations     []EntityDuration `json:"durations"`
	Models        []ModelUsage     `json:"models"`
}

// Bucket counts what started in [Start, Start+bucket). Empty buckets are present.
type Bucket struct {
	Start       time.Time `json:"start"`
	Traces      int64     `json:"traces"`
	Spans       int64     `json:"spans"`
	ErrorSpans  int64     `json:"errorSpans"`
	ErrorTraces int64     `json:"errorTraces"`
	// ErrorRate is ErrorTraces / Traces (0 without traces).
	ErrorRate float64 `json:"errorRate"`
}

// EntityDuration is the duration distribution of the ended spans of one entity
// (the entity name, else the span name) and span type.
type EntityDuration struct {
	SpanType string  `json:"spanType"`
	Entity   string  `json:"entity"`
	Count    int64   `json:"count"`
	P50MS    float64 `json:"p50Ms"`
	P95MS    float64 `json:"p95Ms"`
	P99MS    float64 `json:"p99Ms"`
}

// ModelUsage sums what model_generation spans report in attributes.usage, and the
// estimated cost of metrics carrying the model.
type ModelUsage struct {
	Model        string   `json:"model"`
	Calls        int64    `json:"calls"`
	InputTokens  int64    `json:"inputTokens"`
	OutputTokens int64    `json:"outputTokens"`
	Cost         *float64 `json:"cost,omitempty"`
}

// FillSeries returns one bucket per interval of q, taking counts from got (keyed
// by bucket start) so that empty intervals show as zeros.
func FillSeries(q StatsQuery, got map[int64]Bucket) []Bucket {
	step := q.Bucket.Microseconds()
	first := q.From.UnixMicro() / step * step
	var out []Bucket
	for us := first; us < q.To.UnixMicro(); us += step {
		b := got[us]
		b.Start = time.UnixMicro(us).UTC()
		if b.Traces > 0 {
			b.ErrorRate = float64(b.ErrorTraces) / float64(b.Traces)
		}
		out = append(out, b)
	}
	return out
}

// TraceID normalises a trace id (1 to 32 hex digits, any case) to lower case.
func TraceID(s string) (string, error) { return hexID("trace id", s, 32) }

// SpanID normalises a span id (1 to 16 hex digits, any case) to lower case.
func SpanID(s string) (string, error) { return hexID("span id", s, 16) }

func hexID(what, s string, n int) (string, error) {
	ok := s != "" && len(s) <= n
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
	}
	if !ok {
		return "", invalidf("invalid %s %q: want 1 to %d hexadecimal digits", what, clip(s), n)
	}
	return strings.ToLower(s), nil
}
