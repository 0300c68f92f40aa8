package schema_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/schema"
)

// Ids used throughout the tests: W3C trace-context sized, as Mastra generates them.
const (
	tid  = "4bf92f3577b34da6a3ce929d0e0e4736"
	sid  = "00f067aa0ba902b7"
	psid = "b7ad6b7169203331"
)

// validSamples are well-formed events of every type, shaped like Mastra's exported
// events. The fuzz target uses them as seeds.
var validSamples = []struct {
	name string
	json string
	want *schema.Event
}{
	{
		name: "span_started",
		json: `{"type":"span_started","exportedSpan":{` +
			`"traceId":"` + tid + `","id":"` + sid + `","parentSpanId":"` + psid + `",` +
			`"externalParentSpanId":"abcdef0123456789","name":"agent run: 'support'","type":"agent_run",` +
			`"entityType":"agent","entityId":"support","entityName":"Support",` +
			`"startTime":"2025-03-01T12:00:00.000Z",` +
			`"attributes":{"maxSteps":5,"availableTools":["search"]},` +
			`"metadata":{"tier":"gold"},` +
			`"input":[{"role":"user","content":"hi"}],` +
			`"requestContext":{"tenant":"t1"},` +
			`"tags":["prod","beta"],"isEvent":false,"isRootSpan":true}}`,
		want: &schema.Event{
			SchemaVersion: 1,
			Type:          schema.SpanStarted,
			Span: &schema.Span{
				TraceID:              tid,
				SpanID:               sid,
				ParentSpanID:         psid,
				ExternalParentSpanID: "abcdef0123456789",
				Name:                 "agent run: 'support'",
				Type:                 schema.AgentRun,
				Correlation: schema.Correlation{
					EntityType: "agent",
					EntityID:   "support",
					EntityName: "Support",
					Tags:       []string{"prod", "beta"},
				},
				StartTime:      ts("2025-03-01T12:00:00Z"),
				Attributes:     jsontext.Value(`{"maxSteps":5,"availableTools":["search"]}`),
				Metadata:       jsontext.Value(`{"tier":"gold"}`),
				Input:          jsontext.Value(`[{"role":"user","content":"hi"}]`),
				RequestContext: jsontext.Value(`{"tenant":"t1"}`),
				IsRootSpan:     true,
				Version:        1,
			},
		},
	},
	{
		name: "span_updated",
		json: `{"schemaVersion":1,"type":"span_updated","exportedSpan":{` +
			`"traceId":"` + tid + `","id":"` + sid + `","name":"chat","type":"model_generation",` +
			`"startTime":"2025-03-01T12:00:00.5+02:00",` +
			`"attributes":{"model":"gpt-4o","provider":"openai"},"isInternal":true,"version":7}}`,
		want: &schema.Event{
			SchemaVersion: 1,
			Type:          schema.SpanUpdated,
			Span: &schema.Span{
				TraceID:    tid,
				SpanID:     sid,
				Name:       "chat",
				Type:       schema.ModelGeneration,
				StartTime:  ts("2025-03-01T10:00:00.5Z"),
				Attributes: jsontext.Value(`{"model":"gpt-4o","provider":"openai"}`),
				IsInternal: true,
				Version:    7,
			},
		},
	},
	{
		name: "span_ended",
		json: `{"type":"span_ended","exportedSpan":{` +
			`"traceId":"` + tid + `","id":"` + sid + `","parentSpanId":"` + psid + `","name":"tool: search","type":"tool_call",` +
			`"startTime":"2025-03-01T12:00:00Z","endTime":"2025-03-01T12:00:01.250Z",` +
			`"output":{"hits":3},` +
			`"errorInfo":{"message":"boom","id":"TOOL_FAILED","name":"Error","stack":"at x","domain":"TOOL","category":"USER","details":{"code":7}}}}`,
		want: &schema.Event{
			SchemaVersion: 1,
			Type:          schema.SpanEnded,
			Span: &schema.Span{
				TraceID:      tid,
				SpanID:       sid,
				ParentSpanID: psid,
				Name:         "tool: search",
				Type:         schema.ToolCall,
				StartTime:    ts("2025-03-01T12:00:00Z"),
				EndTime:      ts("2025-03-01T12:00:01.25Z"),
				Output:       jsontext.Value(`{"hits":3}`),
				ErrorInfo: &schema.ErrorInfo{
					Message: "boom", ID: "TOOL_FAILED", Name: "Error", Stack: "at x",
					Domain: "TOOL", Category: "USER", Details: jsontext.Value(`{"code":7}`),
				},
				Version: 3,
			},
		},
	},
	{
		name: "event span",
		json: `{"type":"span_ended","exportedSpan":{` +
			`"traceId":"` + tid + `","id":"` + sid + `","name":"signal","type":"agent_signal",` +
			`"startTime":"2025-03-01T12:00:00Z","output":{"mode":"delta"},"isEvent":true,"isRootSpan":false}}`,
		want: &schema.Event{
			SchemaVersion: 1,
			Type:          schema.SpanEnded,
			Span: &schema.Span{
				TraceID:   tid,
				SpanID:    sid,
				Name:      "signal",
				Type:      schema.AgentSignal,
				StartTime: ts("2025-03-01T12:00:00Z"),
				Output:    jsontext.Value(`{"mode":"delta"}`),
				IsEvent:   true,
				Version:   3,
			},
		},
	},
	{
		name: "log",
		json: `{"type":"log","log":{"logId":"3f1c0a56-8f5e-4a55-9a43-1c3b5c0f6a10","timestamp":"2025-03-01T12:00:00.001Z",` +
			`"traceId":"` + tid + `","spanId":"` + sid + `","level":"warn","message":"retrying",` +
			`"data":{"attempt":2},"correlationContext":{"userId":"u1","parentEntityType":"workflow_run","tags":["a"]},` +
			`"metadata":{"k":"v"}}}`,
		want: &schema.Event{
			SchemaVersion: 1,
			Type:          schema.LogEvent,
			Log: &schema.Log{
				LogID:       "3f1c0a56-8f5e-4a55-9a43-1c3b5c0f6a10",
				Timestamp:   ts("2025-03-01T12:00:00.001Z"),
				TraceID:     tid,
				SpanID:      sid,
				Level:       "warn",
				Message:     "retrying",
				Data:        jsontext.Value(`{"attempt":2}`),
				Correlation: &schema.Correlation{UserID: "u1", ParentEntityType: "workflow_run", Tags: []string{"a"}},
				Metadata:    jsontext.Value(`{"k":"v"}`),
			},
		},
	},
	{
		name: "metric",
		json: `{"type":"metric","metric":{"metricId":"m-1","timestamp":"2025-03-01T12:00:00Z","traceId":"` + tid + `",` +
			`"name":"mastra_model_total_input_tokens","value":412.5,"labels":{"model":"gpt-4o","status":"ok"},` +
			`"correlationContext":{"serviceName":"api","rootEntityId":"r1"},` +
			`"costContext":{"provider":"openai","model":"gpt-4o","estimatedCost":0.00103,"costUnit":"usd","costMetadata":{"tier":1}}}}`,
		want: &schema.Event{
			SchemaVersion: 1,
			Type:          schema.MetricEvent,
			Metric: &schema.Metric{
				MetricID:    "m-1",
				Timestamp:   ts("2025-03-01T12:00:00Z"),
				TraceID:     tid,
				Name:        "mastra_model_total_input_tokens",
				Value:       412.5,
				Labels:      map[string]string{"model": "gpt-4o", "status": "ok"},
				Correlation: &schema.Correlation{ServiceName: "api", RootEntityID: "r1"},
				CostContext: &schema.CostContext{
					Provider: "openai", Model: "gpt-4o", EstimatedCost: ptr(0.00103), CostUnit: "usd",
					CostMetadata: jsontext.Value(`{"tier":1}`),
				},
			},
		},
	},
	{
		name: "score",
		json: `{"type":"score","score":{"scoreId":"s-1","timestamp":"2025-03-01T12:00:00Z","traceId":"` + tid + `","spanId":"` + sid + `",` +
			`"scoreTraceId":"` + strings.Repeat("a", 32) + `","scorerId":"relevance","scorerName":"Relevance","scorerVersion":"v2",` +
			`"scoreSource":"live","score":0.75,"reason":"mostly on topic","targetEntityType":"agent",` +
			`"correlationContext":{"experimentId":"exp-1"},"metadata":{"judge":"gpt-4o"}}}`,
		want: &schema.Event{
			SchemaVersion: 1,
			Type:          schema.ScoreEvent,
			Score: &schema.Score{
				ScoreID: "s-1", Timestamp: ts("2025-03-01T12:00:00Z"), TraceID: tid, SpanID: sid,
				ScoreTraceID: strings.Repeat("a", 32), ScorerID: "relevance", ScorerName: "Relevance",
				ScorerVersion: "v2", ScoreSource: "live", Score: 0.75, Reason: "mostly on topic",
				TargetEntityType: "agent", Correlation: &schema.Correlation{ExperimentID: "exp-1"},
				Metadata: jsontext.Value(`{"judge":"gpt-4o"}`),
			},
		},
	},
	{
		name: "feedback number",
		json: `{"type":"feedback","feedback":{"feedbackId":"f-1","timestamp":"2025-03-01T12:00:00Z","traceId":"` + tid + `",` +
			`"feedbackSource":"user","feedbackType":"rating","value":4,"comment":"good","sourceId":"src",` +
			`"feedbackUserId":"u9","correlationContext":{"threadId":"th"},"metadata":{"app":"web"}}}`,
		want: &schema.Event{
			SchemaVersion: 1,
			Type:          schema.FeedbackEvent,
			Feedback: &schema.Feedback{
				FeedbackID: "f-1", Timestamp: ts("2025-03-01T12:00:00Z"), TraceID: tid,
				FeedbackSource: "user", FeedbackType: "rating", Value: jsontext.Value(`4`),
				Comment: "good", SourceID: "src", FeedbackUserID: "u9",
				Correlation: &schema.Correlation{ThreadID: "th"},
				Metadata:    jsontext.Value(`{"app":"web"}`),
			},
		},
	},
	{
		name: "feedback string",
		json: `{"type":"feedback","feedback":{"feedbackId":"f-2","timestamp":"2025-03-01T12:00:00Z","feedbackType":"thumbs","value":"up"}}`,
		want: &schema.Event{
			SchemaVersion: 1,
			Type:          schema.FeedbackEvent,
			Feedback: &schema.Feedback{
				FeedbackID: "f-2", Timestamp: ts("2025-03-01T12:00:00Z"), FeedbackType: "thumbs",
				Value: jsontext.Value(`"up"`),
			},
		},
	},
}

func TestDecodeValid(t *testing.T) {
	for _, tc := range validSamples {
		t.Run(tc.name, func(t *testing.T) {
			got, err := schema.Decode(schema.CodecJSON, []byte(tc.json))
			if err != nil {
				t.Fatalf("Decode(%s): got error %v, want nil", tc.json, err)
			}
			if got.Span != nil && got.Span.Event != got.Type {
				t.Errorf("Decode(%s): Span.Event = %q, want the event type %q", tc.json, got.Span.Event, got.Type)
			}
			if want := tc.want; want.Span != nil {
				s := *want.Span
				s.Event = want.Type
				w := *want
				w.Span = &s
				tc.want = &w
			}
			if !eventsEqual(got, tc.want) {
				t.Errorf("Decode(%s): differs from want:\n%s", tc.json, diffEvents(got, tc.want))
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate of a decoded event: got %v, want nil", err)
			}
		})
	}
}

type deleteField struct{}

// del marks a field that doc and spanDoc remove from the base payload.
var del deleteField

func baseSpan() map[string]any {
	return map[string]any{
		"traceId": tid, "id": sid, "parentSpanId": psid, "name": "n", "type": "generic",
		"startTime": "2025-03-01T12:00:00Z",
	}
}

func baseLog() map[string]any {
	return map[string]any{"logId": "l1", "timestamp": "2025-03-01T12:00:00Z", "level": "info", "message": "m"}
}

func baseMetric() map[string]any {
	return map[string]any{"metricId": "m1", "timestamp": "2025-03-01T12:00:00Z", "name": "x", "value": 1}
}

func baseScore() map[string]any {
	return map[string]any{"scoreId": "s1", "timestamp": "2025-03-01T12:00:00Z", "scorerId": "sc", "score": 1}
}

func baseFeedback() map[string]any {
	return map[string]any{"feedbackId": "f1", "timestamp": "2025-03-01T12:00:00Z", "feedbackType": "thumbs", "value": "up"}
}

// doc builds an envelope of type typ whose payload, under key, is base with set
// applied (a del value removes the field).
func doc(typ, key string, base, set map[string]any) []byte {
	for k, v := range set {
		if v == del {
			delete(base, k)
			continue
		}
		base[k] = v
	}
	env := map[string]any{"type": typ}
	if key != "" {
		env[key] = base
	}
	b, err := json.Marshal(env, json.Deterministic(true))
	if err != nil {
		panic(err)
	}
	return b
}

func spanDoc(typ string, set map[string]any) []byte {
	return doc(typ, "exportedSpan", baseSpan(), set)
}

func TestDecodeInvalid(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		field string
	}{
		{"missing traceId", spanDoc("span_started", map[string]any{"traceId": del}), "exportedSpan.traceId"},
		{"empty traceId", spanDoc("span_started", map[string]any{"traceId": ""}), "exportedSpan.traceId"},
		{"non-hex traceId", spanDoc("span_started", map[string]any{"traceId": "4bf92f3577b34da6a3ce929d0e0e473g"}), "exportedSpan.traceId"},
		{"traceId with dashes", spanDoc("span_started", map[string]any{"traceId": "4bf92f35-77b3-4da6-a3ce-929d0e0e"}), "exportedSpan.traceId"},
		{"traceId too long", spanDoc("span_started", map[string]any{"traceId": tid + "0"}), "exportedSpan.traceId"},
		{"missing span id", spanDoc("span_updated", map[string]any{"id": del}), "exportedSpan.id"},
		{"non-hex span id", spanDoc("span_updated", map[string]any{"id": "00f067aa0ba902bz"}), "exportedSpan.id"},
		{"span id too long", spanDoc("span_updated", map[string]any{"id": sid + "0"}), "exportedSpan.id"},
		{"non-hex parentSpanId", spanDoc("span_ended", map[string]any{"parentSpanId": "parent"}), "exportedSpan.parentSpanId"},
		{"parentSpanId too long", spanDoc("span_ended", map[string]any{"parentSpanId": psid + "00"}), "exportedSpan.parentSpanId"},
		{"empty name", spanDoc("span_started", map[string]any{"name": ""}), "exportedSpan.name"},
		{"missing name", spanDoc("span_started", map[string]any{"name": del}), "exportedSpan.name"},
		{"empty span type", spanDoc("span_started", map[string]any{"type": ""}), "exportedSpan.type"},
		{"missing startTime", spanDoc("span_started", map[string]any{"startTime": del}), "exportedSpan.startTime"},
		{"zero startTime", spanDoc("span_started", map[string]any{"startTime": "0001-01-01T00:00:00Z"}), "exportedSpan.startTime"},
		{"endTime before startTime", spanDoc("span_ended", map[string]any{"endTime": "2025-03-01T11:59:59.999Z"}), "exportedSpan.endTime"},
		{"event span with span_started", spanDoc("span_started", map[string]any{"isEvent": true}), "type"},
		{"event span with span_updated", spanDoc("span_updated", map[string]any{"isEvent": true}), "type"},
		{"span event without exportedSpan", doc("span_started", "", nil, nil), "exportedSpan"},
		{"exportedSpan null", []byte(`{"type":"span_ended","exportedSpan":null}`), "exportedSpan"},
		{"missing type", []byte(`{"exportedSpan":{}}`), "type"},
		{"empty type", spanDoc("", nil), "type"},
		{"unknown type", spanDoc("span_deleted", nil), "type"},
		{"drop meta-event", []byte(`{"type":"drop"}`), "type"},
		{"type case differs", spanDoc("Span_Started", nil), "type"},
		{"null document", []byte(`null`), "type"},
		{"empty object", []byte(`{}`), "type"},
		{"span event with stray log", strayDoc("span_started", "exportedSpan", baseSpan(), "log", baseLog()), "log"},
		{"span event with stray feedback", strayDoc("span_ended", "exportedSpan", baseSpan(), "feedback", baseFeedback()), "feedback"},
		{"log event with stray span", strayDoc("log", "log", baseLog(), "exportedSpan", baseSpan()), "exportedSpan"},
		{"metric event with stray score", strayDoc("metric", "metric", baseMetric(), "score", baseScore()), "score"},
		{"feedback event with stray metric", strayDoc("feedback", "feedback", baseFeedback(), "metric", baseMetric()), "metric"},

		{"missing log", doc("log", "", nil, nil), "log"},
		{"empty logId", doc("log", "log", baseLog(), map[string]any{"logId": ""}), "log.logId"},
		{"missing log timestamp", doc("log", "log", baseLog(), map[string]any{"timestamp": del}), "log.timestamp"},
		{"empty level", doc("log", "log", baseLog(), map[string]any{"level": del}), "log.level"},
		{"log traceId not hex", doc("log", "log", baseLog(), map[string]any{"traceId": "trace-1"}), "log.traceId"},
		{"log spanId too long", doc("log", "log", baseLog(), map[string]any{"spanId": sid + "1"}), "log.spanId"},

		{"missing metric", doc("metric", "", nil, nil), "metric"},
		{"empty metricId", doc("metric", "metric", baseMetric(), map[string]any{"metricId": del}), "metric.metricId"},
		{"missing metric timestamp", doc("metric", "metric", baseMetric(), map[string]any{"timestamp": del}), "metric.timestamp"},
		{"empty metric name", doc("metric", "metric", baseMetric(), map[string]any{"name": ""}), "metric.name"},
		{"metric traceId too long", doc("metric", "metric", baseMetric(), map[string]any{"traceId": tid + "a"}), "metric.traceId"},

		{"missing score", doc("score", "", nil, nil), "score"},
		{"empty scoreId", doc("score", "score", baseScore(), map[string]any{"scoreId": ""}), "score.scoreId"},
		{"missing score timestamp", doc("score", "score", baseScore(), map[string]any{"timestamp": del}), "score.timestamp"},
		{"empty scorerId", doc("score", "score", baseScore(), map[string]any{"scorerId": del}), "score.scorerId"},
		{"score spanId not hex", doc("score", "score", baseScore(), map[string]any{"spanId": "span"}), "score.spanId"},

		{"missing feedback", doc("feedback", "", nil, nil), "feedback"},
		{"empty feedbackId", doc("feedback", "feedback", baseFeedback(), map[string]any{"feedbackId": ""}), "feedback.feedbackId"},
		{"missing feedback timestamp", doc("feedback", "feedback", baseFeedback(), map[string]any{"timestamp": del}), "feedback.timestamp"},
		{"empty feedbackType", doc("feedback", "feedback", baseFeedback(), map[string]any{"feedbackType": ""}), "feedback.feedbackType"},
		{"missing feedback value", doc("feedback", "feedback", baseFeedback(), map[string]any{"value": del}), "feedback.value"},
		{"null feedback value", doc("feedback", "feedback", baseFeedback(), map[string]any{"value": nil}), "feedback.value"},
		{"bool feedback value", doc("feedback", "feedback", baseFeedback(), map[string]any{"value": true}), "feedback.value"},
		{"object feedback value", doc("feedback", "feedback", baseFeedback(), map[string]any{"value": map[string]any{"n": 1}}), "feedback.value"},
		{"feedback traceId not hex", doc("feedback", "feedback", baseFeedback(), map[string]any{"traceId": "xyz"}), "feedback.traceId"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := schema.Decode("", tc.in)
			if err == nil {
				t.Fatalf("Decode(%s): got nil error, want a validation error on %q", tc.in, tc.field)
			}
			if ev != nil {
				t.Errorf("Decode(%s): got event %+v with error, want nil", tc.in, ev)
			}
			var ve *schema.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Decode(%s): got %T %v, want *schema.ValidationError", tc.in, err, err)
			}
			if ve.Field != tc.field {
				t.Errorf("Decode(%s): got Field %q (%v), want %q", tc.in, ve.Field, err, tc.field)
			}
			if ve.Reason == "" {
				t.Errorf("Decode(%s): got empty Reason", tc.in)
			}
			if !errors.Is(err, schema.ErrInvalidEvent) {
				t.Errorf("errors.Is(%v, ErrInvalidEvent) = false, want true", err)
			}
			if errors.Is(err, schema.ErrUnsupportedVersion) || errors.Is(err, schema.ErrUnknownCodec) {
				t.Errorf("%v matches an unrelated sentinel", err)
			}
			if want := "schema: invalid event: " + tc.field + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("got error text %q, want prefix %q", err, want)
			}
		})
	}
}

// strayDoc builds a valid envelope of type typ that also carries a second payload.
func strayDoc(typ, key string, payload map[string]any, strayKey string, stray map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"type": typ, key: payload, strayKey: stray}, json.Deterministic(true))
	if err != nil {
		panic(err)
	}
	return b
}

// TestValidate covers what JSON cannot express (NaN, ±Inf, negative versions) by
// building events directly.
func TestValidate(t *testing.T) {
	metric := func(v float64) *schema.Event {
		return &schema.Event{Type: schema.MetricEvent, Metric: &schema.Metric{
			MetricID: "m", Timestamp: ts("2025-03-01T12:00:00Z"), Name: "x", Value: v,
		}}
	}
	score := func(v float64) *schema.Event {
		return &schema.Event{Type: schema.ScoreEvent, Score: &schema.Score{
			ScoreID: "s", Timestamp: ts("2025-03-01T12:00:00Z"), ScorerID: "sc", Score: v,
		}}
	}
	span := func(mut func(*schema.Event)) *schema.Event {
		ev := &schema.Event{Type: schema.SpanStarted, Span: &schema.Span{
			TraceID: tid, SpanID: sid, Name: "n", Type: schema.Generic, StartTime: ts("2025-03-01T12:00:00Z"),
		}}
		mut(ev)
		return ev
	}
	tests := []struct {
		name    string
		ev      *schema.Event
		field   string // want a *ValidationError on this field
		version bool   // want ErrUnsupportedVersion
	}{
		{name: "metric ok", ev: metric(1.5)},
		{name: "metric zero", ev: metric(0)},
		{name: "metric max float", ev: metric(math.MaxFloat64)},
		{name: "metric NaN", ev: metric(math.NaN()), field: "metric.value"},
		{name: "metric +Inf", ev: metric(math.Inf(1)), field: "metric.value"},
		{name: "metric -Inf", ev: metric(math.Inf(-1)), field: "metric.value"},
		{name: "score NaN", ev: score(math.NaN()), field: "score.score"},
		{name: "score -Inf", ev: score(math.Inf(-1)), field: "score.score"},
		{name: "score negative", ev: score(-1)},
		{name: "span ok", ev: span(func(*schema.Event) {})},
		{name: "one-digit ids", ev: span(func(e *schema.Event) { e.Span.TraceID, e.Span.SpanID = "a", "0" })},
		{name: "upper-case hex ids", ev: span(func(e *schema.Event) { e.Span.TraceID, e.Span.SpanID = strings.ToUpper(tid), strings.ToUpper(sid) })},
		{name: "endTime equal to startTime", ev: span(func(e *schema.Event) { e.Type, e.Span.EndTime = schema.SpanEnded, e.Span.StartTime })},
		{name: "event span ended", ev: span(func(e *schema.Event) { e.Type, e.Span.IsEvent = schema.SpanEnded, true })},
		{name: "unknown span type", ev: span(func(e *schema.Event) { e.Span.Type = "my_custom_type" })},
		{name: "non-ASCII id", ev: span(func(e *schema.Event) { e.Span.SpanID = "00f067aa0ba902é" }), field: "exportedSpan.id"},
		{name: "schema version 0", ev: span(func(e *schema.Event) { e.SchemaVersion = 0 })},
		{name: "schema version 1", ev: span(func(e *schema.Event) { e.SchemaVersion = 1 })},
		{name: "schema version 2", ev: span(func(e *schema.Event) { e.SchemaVersion = 2 }), version: true},
		{name: "schema version -1", ev: span(func(e *schema.Event) { e.SchemaVersion = -1 }), version: true},
		{name: "version checked before payload", ev: &schema.Event{SchemaVersion: 9}, version: true},
		{name: "stray log on span", ev: span(func(e *schema.Event) { e.Log = &schema.Log{} }), field: "log"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ev.Validate()
			switch {
			case tc.version:
				if !errors.Is(err, schema.ErrUnsupportedVersion) {
					t.Fatalf("Validate: got %v, want ErrUnsupportedVersion", err)
				}
				if errors.Is(err, schema.ErrInvalidEvent) {
					t.Errorf("Validate: %v also matches ErrInvalidEvent", err)
				}
			case tc.field != "":
				var ve *schema.ValidationError
				if !errors.As(err, &ve) || ve.Field != tc.field {
					t.Fatalf("Validate: got %v, want a *ValidationError on %q", err, tc.field)
				}
				if !errors.Is(err, schema.ErrInvalidEvent) {
					t.Errorf("errors.Is(%v, ErrInvalidEvent) = false", err)
				}
			default:
				if err != nil {
					t.Fatalf("Validate: got %v, want nil", err)
				}
			}
		})
	}
}

func TestDecodeUnsupportedVersion(t *testing.T) {
	for _, v := range []int{2, 3, 1000, -1} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			in := []byte(fmt.Sprintf(`{"schemaVersion":%d,"type":"log","log":{"logId":"l","timestamp":"2025-03-01T12:00:00Z","level":"info","message":"m"}}`, v))
			ev, err := schema.Decode("", in)
			if !errors.Is(err, schema.ErrUnsupportedVersion) {
				t.Fatalf("Decode(%s): got %v, want ErrUnsupportedVersion", in, err)
			}
			if ev != nil {
				t.Errorf("Decode(%s): got non-nil event with error", in)
			}
			if errors.Is(err, schema.ErrInvalidEvent) {
				t.Errorf("Decode(%s): %v also matches ErrInvalidEvent", in, err)
			}
		})
	}
}

func TestDecodeCodec(t *testing.T) {
	in := []byte(validSamples[0].json)
	tests := []struct {
		name    string
		codec   string
		wantErr error
	}{
		{name: "empty means json", codec: ""},
		{name: "json", codec: schema.CodecJSON},
		{name: "upper-case JSON", codec: "JSON", wantErr: schema.ErrUnknownCodec},
		{name: "avro", codec: "avro", wantErr: schema.ErrUnknownCodec},
		{name: "protobuf", codec: "protobuf", wantErr: schema.ErrUnknownCodec},
		{name: "json with space", codec: "json ", wantErr: schema.ErrUnknownCodec},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := schema.Decode(tc.codec, in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Decode(%q, …): got %v, want %v", tc.codec, err, tc.wantErr)
			}
			if (ev == nil) != (tc.wantErr != nil) {
				t.Errorf("Decode(%q, …): got event %v with error %v", tc.codec, ev, err)
			}
			if tc.wantErr != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.codec)) {
				t.Errorf("error %q does not name the codec %q", err, tc.codec)
			}
		})
	}
	if schema.HeaderCodec != "spanpipe-codec" {
		t.Errorf("HeaderCodec = %q, want spanpipe-codec (it is a wire name)", schema.HeaderCodec)
	}
}

func TestDecodeSyntaxError(t *testing.T) {
	valid := validSamples[2].json
	const (
		none    = schema.Signal("")
		tracing = schema.SignalTracing
	)
	tests := []struct {
		name   string
		in     string
		signal schema.Signal // what the drop event names: the type, when it was read
	}{
		{"empty", "", none},
		{"whitespace", " \n\t", none},
		{"garbage", "\x00\xff\xfe garbage", none},
		{"not an object", `"span_started"`, none},
		{"array", `[{"type":"log"}]`, none},
		{"truncated", valid[:len(valid)/2], tracing},
		{"truncated by one byte", valid[:len(valid)-1], tracing},
		{"valid followed by garbage", valid + "garbage", tracing},
		{"two documents", valid + valid, tracing},
		{"trailing comma", `{"type":"log",}`, schema.SignalLog},
		{"single quotes", `{'type':'log'}`, none},
		{"wrong field type", `{"type":"span_started","exportedSpan":{"startTime":5}}`, tracing},
		{"bad time", `{"type":"span_started","exportedSpan":{"startTime":"yesterday"}}`, tracing},
		{"bad time before the type", `{"exportedSpan":{"startTime":"yesterday"},"type":"span_ended"}`, tracing},
		{"schemaVersion as string", `{"schemaVersion":"1","type":"log"}`, schema.SignalLog},
		{"schemaVersion fraction", `{"schemaVersion":1.5,"type":"log"}`, schema.SignalLog},
		{"negative span version", strings.Replace(valid, `"name"`, `"version":-1,"name"`, 1), tracing},
		{"duplicate member", `{"type":"log","type":"metric"}`, schema.SignalLog},
		{"duplicate member in raw payload", strings.Replace(valid, `"output":{"hits":3}`, `"output":{"hits":3,"hits":4}`, 1), tracing},
		{"invalid UTF-8 in string", "{\"type\":\"log\xff\"}", none},
		{"invalid UTF-8 in a payload", "{\"type\":\"score\",\"score\":{\"reason\":\"\xff\"}}", schema.SignalScore},
		{"lone surrogate and a syntax error", `{"type":"feedback","feedback":{"comment":"\ud800"},}`, schema.SignalFeedback},
		{"unknown type", `{"type":"trace","x":}`, none},
		{"number out of range", `{"type":"metric","metric":{"value":1e400}}`, schema.SignalMetric},
		{"unterminated raw payload", strings.TrimSuffix(valid, "}}}"), tracing},
		{"nesting too deep", `{"type":"span_started","exportedSpan":{"attributes":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}}`, tracing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := schema.Decode("", []byte(tc.in))
			var se *schema.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Decode(%.80q): got %T %v, want *schema.SyntaxError", tc.in, err, err)
			}
			if ev != nil {
				t.Errorf("Decode(%.80q): got non-nil event with error", tc.in)
			}
			if se.Codec != schema.CodecJSON || se.Err == nil || se.Unwrap() != se.Err {
				t.Errorf("got SyntaxError{Codec: %q, Err: %v}, want codec json and a wrapped cause", se.Codec, se.Err)
			}
			if !strings.HasPrefix(err.Error(), "schema: decode json: ") {
				t.Errorf("got error text %q, want prefix %q", err, "schema: decode json: ")
			}
			if errors.Is(err, schema.ErrInvalidEvent) {
				t.Errorf("a syntax error matches ErrInvalidEvent: %v", err)
			}
			if got := schema.SignalOfError(err); got != tc.signal {
				t.Errorf("SignalOfError(%v) = %q, want %q", err, got, tc.signal)
			}
		})
	}
}

func TestDecodeIgnoresUnknownFields(t *testing.T) {
	in := `{"type":"span_started","future":{"x":[1,2]},"exportedSpan":{"traceId":"` + tid + `","id":"` + sid +
		`","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","links":null,"scope":{"name":"x"}}}`
	ev, err := schema.Decode("", []byte(in))
	if err != nil {
		t.Fatalf("Decode(%s): got %v, want nil: a newer producer may add fields", in, err)
	}
	if ev.Span.Name != "n" {
		t.Errorf("got name %q, want n", ev.Span.Name)
	}
}

func TestDecodeFieldNamesAreCaseSensitive(t *testing.T) {
	// Mastra's names are matched exactly; "TraceId" is an unknown field, so the
	// trace id is missing.
	in := `{"type":"span_started","exportedSpan":{"TraceId":"` + tid + `","id":"` + sid +
		`","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z"}}`
	_, err := schema.Decode("", []byte(in))
	var ve *schema.ValidationError
	if !errors.As(err, &ve) || ve.Field != "exportedSpan.traceId" {
		t.Fatalf("Decode(%s): got %v, want a validation error on exportedSpan.traceId", in, err)
	}
}

func TestUnknownSpanTypeIsKept(t *testing.T) {
	for _, typ := range []string{"my_custom_type", "model_generation_v2", "ÜNÏCØDÉ", "x"} {
		t.Run(typ, func(t *testing.T) {
			ev, err := schema.Decode("", spanDoc("span_started", map[string]any{"type": typ}))
			if err != nil {
				t.Fatalf("Decode with span type %q: got %v, want nil", typ, err)
			}
			if got := ev.Span.Type; got != schema.SpanType(typ) {
				t.Errorf("got span type %q, want %q", got, typ)
			}
			if ev.Span.Type.Known() {
				t.Errorf("SpanType(%q).Known() = true, want false", typ)
			}
			b, err := schema.Encode(nil, ev)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if want := fmt.Sprintf(`"type":%q`, typ); !bytes.Contains(b, []byte(want)) {
				t.Errorf("Encode: got %s, want it to contain %s", b, want)
			}
		})
	}
}

// mastraSpanTypes is §1.2 of the Mastra reference, transcribed independently of
// spantype.go.
var mastraSpanTypes = strings.Fields(`
	agent_run scorer_run scorer_step classifier_evaluation generic
	model_generation model_step model_inference model_chunk
	tool_call client_tool_call provider_tool_call mcp_tool_call mcp_server_request
	processor_run
	workflow_run workflow_step workflow_conditional workflow_conditional_eval workflow_parallel
	workflow_loop workflow_sleep workflow_wait_event
	memory_operation workspace_action
	rag_ingestion rag_embedding rag_vector_operation rag_action graph_action
	mapping skill_action agent_signal skill_resolution`)

func TestKnownSpanTypes(t *testing.T) {
	if got := len(schema.KnownSpanTypes); got != 34 {
		t.Errorf("len(KnownSpanTypes) = %d, want 34", got)
	}
	seen := make(map[schema.SpanType]bool)
	for _, st := range schema.KnownSpanTypes {
		if seen[st] {
			t.Errorf("KnownSpanTypes lists %q twice", st)
		}
		seen[st] = true
		if !st.Known() {
			t.Errorf("SpanType(%q).Known() = false, want true", st)
		}
	}
	want := make(map[schema.SpanType]bool)
	for _, s := range mastraSpanTypes {
		want[schema.SpanType(s)] = true
	}
	if len(want) != 34 {
		t.Fatalf("test table has %d span types, want 34", len(want))
	}
	for st := range want {
		if !seen[st] {
			t.Errorf("Mastra span type %q is missing from KnownSpanTypes", st)
		}
	}
	for st := range seen {
		if !want[st] {
			t.Errorf("KnownSpanTypes has %q, which is not a Mastra span type", st)
		}
	}
	for _, st := range []schema.SpanType{"", "AGENT_RUN", "agent_run ", "drop", "my_custom_type"} {
		if st.Known() {
			t.Errorf("SpanType(%q).Known() = true, want false", st)
		}
	}
}

func TestSpanVersionFallback(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		set     map[string]any
		version uint64
	}{
		{name: "started", typ: "span_started", version: 1},
		{name: "updated", typ: "span_updated", version: 2},
		{name: "ended", typ: "span_ended", set: map[string]any{"endTime": "2025-03-01T12:00:01Z"}, version: 3},
		{name: "event span", typ: "span_ended", set: map[string]any{"isEvent": true}, version: 3},
		{name: "explicit zero is absent", typ: "span_updated", set: map[string]any{"version": 0}, version: 2},
		{name: "explicit kept on started", typ: "span_started", set: map[string]any{"version": 9}, version: 9},
		{name: "explicit kept on updated", typ: "span_updated", set: map[string]any{"version": 1}, version: 1},
		{name: "explicit kept on ended", typ: "span_ended", set: map[string]any{"version": 42}, version: 42},
		{name: "max uint64", typ: "span_ended", set: map[string]any{"version": uint64(math.MaxUint64)}, version: math.MaxUint64},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := spanDoc(tc.typ, tc.set)
			ev, err := schema.Decode("", in)
			if err != nil {
				t.Fatalf("Decode(%s): %v", in, err)
			}
			if ev.Span.Version != tc.version {
				t.Errorf("Decode(%s): got version %d, want %d", in, ev.Span.Version, tc.version)
			}
		})
	}
}

func TestSchemaVersionDefault(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"missing", `{"type":"log","log":{"logId":"l","timestamp":"2025-03-01T12:00:00Z","level":"info","message":"m"}}`},
		{"zero", `{"schemaVersion":0,"type":"log","log":{"logId":"l","timestamp":"2025-03-01T12:00:00Z","level":"info","message":"m"}}`},
		{"null", `{"schemaVersion":null,"type":"log","log":{"logId":"l","timestamp":"2025-03-01T12:00:00Z","level":"info","message":"m"}}`},
		{"one", `{"schemaVersion":1,"type":"log","log":{"logId":"l","timestamp":"2025-03-01T12:00:00Z","level":"info","message":"m"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := schema.Decode("", []byte(tc.in))
			if err != nil {
				t.Fatalf("Decode(%s): %v", tc.in, err)
			}
			if ev.SchemaVersion != schema.Version {
				t.Errorf("Decode(%s): got schemaVersion %d, want %d", tc.in, ev.SchemaVersion, schema.Version)
			}
		})
	}
}

// promotedFields are the context ids read from string values in span metadata.
var promotedFields = []struct {
	key string
	get func(*schema.Correlation) string
}{
	{"userId", func(c *schema.Correlation) string { return c.UserID }},
	{"organizationId", func(c *schema.Correlation) string { return c.OrganizationID }},
	{"resourceId", func(c *schema.Correlation) string { return c.ResourceID }},
	{"runId", func(c *schema.Correlation) string { return c.RunID }},
	{"sessionId", func(c *schema.Correlation) string { return c.SessionID }},
	{"threadId", func(c *schema.Correlation) string { return c.ThreadID }},
	{"requestId", func(c *schema.Correlation) string { return c.RequestID }},
	{"environment", func(c *schema.Correlation) string { return c.Environment }},
	{"source", func(c *schema.Correlation) string { return c.Source }},
	{"serviceName", func(c *schema.Correlation) string { return c.ServiceName }},
	{"experimentId", func(c *schema.Correlation) string { return c.ExperimentID }},
	{"entityVersionId", func(c *schema.Correlation) string { return c.EntityVersionID }},
}

func TestPromotion(t *testing.T) {
	for _, f := range promotedFields {
		t.Run("promotes "+f.key, func(t *testing.T) {
			in := spanDoc("span_started", map[string]any{"metadata": map[string]any{f.key: "v-" + f.key, "other": 1}})
			ev, err := schema.Decode("", in)
			if err != nil {
				t.Fatalf("Decode(%s): %v", in, err)
			}
			if got, want := f.get(&ev.Span.Correlation), "v-"+f.key; got != want {
				t.Errorf("Decode(%s): got %s %q, want %q", in, f.key, got, want)
			}
		})
		t.Run("explicit "+f.key+" wins", func(t *testing.T) {
			in := spanDoc("span_started", map[string]any{f.key: "explicit", "metadata": map[string]any{f.key: "from-metadata"}})
			ev, err := schema.Decode("", in)
			if err != nil {
				t.Fatalf("Decode(%s): %v", in, err)
			}
			if got := f.get(&ev.Span.Correlation); got != "explicit" {
				t.Errorf("Decode(%s): got %s %q, want the explicit value", in, f.key, got)
			}
		})
	}

	tests := []struct {
		name     string
		metadata any
		userID   string
	}{
		{"number not promoted", map[string]any{"userId": 42}, ""},
		{"bool not promoted", map[string]any{"userId": true}, ""},
		{"null not promoted", map[string]any{"userId": nil}, ""},
		{"object not promoted", map[string]any{"userId": map[string]any{"id": "u"}}, ""},
		{"array not promoted", map[string]any{"userId": []any{"u"}}, ""},
		{"empty string not promoted", map[string]any{"userId": ""}, ""},
		{"case differs", map[string]any{"UserId": "u", "userid": "u"}, ""},
		{"nested not promoted", map[string]any{"ctx": map[string]any{"userId": "u"}}, ""},
		{"metadata is an array", []any{map[string]any{"userId": "u"}}, ""},
		{"metadata is a string", `{"userId":"u"}`, ""},
		{"metadata is null", nil, ""},
		{"unicode string", map[string]any{"userId": "用户-😀"}, "用户-😀"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := spanDoc("span_started", map[string]any{"metadata": tc.metadata})
			ev, err := schema.Decode("", in)
			if err != nil {
				t.Fatalf("Decode(%s): %v", in, err)
			}
			if ev.Span.UserID != tc.userID {
				t.Errorf("Decode(%s): got userId %q, want %q", in, ev.Span.UserID, tc.userID)
			}
		})
	}

	t.Run("metadata is left as it is", func(t *testing.T) {
		const meta = `{"userId":"\u00e9l\u00e8ve \"1\"", "threadId":"t1","n":[1, 2]}`
		in := `{"type":"span_started","exportedSpan":{"traceId":"` + tid + `","id":"` + sid +
			`","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","metadata":` + meta + `}}`
		ev, err := schema.Decode("", []byte(in))
		if err != nil {
			t.Fatalf("Decode(%s): %v", in, err)
		}
		if string(ev.Span.Metadata) != meta {
			t.Errorf("got metadata %s, want %s unchanged", ev.Span.Metadata, meta)
		}
		if ev.Span.UserID != `élève "1"` || ev.Span.ThreadID != "t1" {
			t.Errorf("got userId %q threadId %q, want %q t1", ev.Span.UserID, ev.Span.ThreadID, `élève "1"`)
		}
	})

	t.Run("entity hierarchy and tags are not promoted", func(t *testing.T) {
		// Mastra's span record builder never fills parent*/root* entity columns
		// from metadata, and tags come only from the span itself.
		in := spanDoc("span_started", map[string]any{"metadata": map[string]any{
			"entityId": "e", "entityType": "agent", "parentEntityType": "agent", "rootEntityId": "r", "tags": "x",
		}})
		ev, err := schema.Decode("", in)
		if err != nil {
			t.Fatalf("Decode(%s): %v", in, err)
		}
		if c := ev.Span.Correlation; !reflect.DeepEqual(c, schema.Correlation{}) {
			t.Errorf("Decode(%s): got correlation %+v, want none promoted", in, c)
		}
	})

	t.Run("only spans are promoted", func(t *testing.T) {
		in := doc("log", "log", baseLog(), map[string]any{"metadata": map[string]any{"userId": "u"}})
		ev, err := schema.Decode("", in)
		if err != nil {
			t.Fatalf("Decode(%s): %v", in, err)
		}
		if ev.Log.Correlation != nil {
			t.Errorf("Decode(%s): got correlationContext %+v, want nil", in, ev.Log.Correlation)
		}
	})
}

func TestEncode(t *testing.T) {
	minimal := func() *schema.Event {
		return &schema.Event{Type: schema.SpanStarted, Span: &schema.Span{
			TraceID: tid, SpanID: sid, Name: "n", Type: schema.Generic,
			StartTime: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), Version: 1,
		}}
	}
	t.Run("writes schemaVersion and omits zero fields", func(t *testing.T) {
		ev := minimal()
		got, err := schema.Encode(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"schemaVersion":1,"type":"span_started","exportedSpan":{"traceId":"` + tid + `","id":"` + sid +
			`","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","version":1}}`
		if string(got) != want {
			t.Errorf("Encode:\ngot  %s\nwant %s", got, want)
		}
		if ev.SchemaVersion != 0 {
			t.Errorf("Encode modified the caller's event: SchemaVersion = %d", ev.SchemaVersion)
		}
	})
	t.Run("explicit schemaVersion", func(t *testing.T) {
		ev := minimal()
		ev.SchemaVersion = 1
		got, err := schema.Encode(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(got, []byte(`{"schemaVersion":1,`)) {
			t.Errorf("Encode: got %s, want schemaVersion 1 first", got)
		}
	})
	t.Run("every sample writes schemaVersion", func(t *testing.T) {
		for _, s := range validSamples {
			var probe struct {
				SchemaVersion *int `json:"schemaVersion"`
			}
			b, err := schema.Encode(nil, s.want)
			if err != nil {
				t.Fatalf("%s: Encode: %v", s.name, err)
			}
			if err := json.Unmarshal(b, &probe); err != nil || probe.SchemaVersion == nil || *probe.SchemaVersion != schema.Version {
				t.Errorf("%s: Encode wrote %s, want schemaVersion %d", s.name, b, schema.Version)
			}
		}
	})
	t.Run("appends to dst", func(t *testing.T) {
		dst := make([]byte, 0, 1024)
		dst = append(dst, "prefix|"...)
		got, err := schema.Encode(dst, minimal())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(got, []byte("prefix|{")) {
			t.Errorf("Encode: got %s, want it appended to prefix|", got)
		}
		if &got[0] != &dst[0] {
			t.Errorf("Encode did not reuse the capacity of dst")
		}
	})
	t.Run("keeps present but empty payloads", func(t *testing.T) {
		ev := minimal()
		ev.Span.Metadata = jsontext.Value(`{}`)
		ev.Span.Attributes = jsontext.Value(`[]`)
		ev.Span.Input = jsontext.Value(`""`)
		ev.Span.Output = jsontext.Value(`null`)
		ev.Span.Tags = []string{}
		got, err := schema.Encode(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"metadata":{}`, `"attributes":[]`, `"input":""`, `"output":null`, `"tags":[]`} {
			if !bytes.Contains(got, []byte(want)) {
				t.Errorf("Encode: got %s, want it to contain %s", got, want)
			}
		}
	})
	t.Run("error on an unencodable event", func(t *testing.T) {
		tests := []struct {
			name string
			mut  func(*schema.Event)
		}{
			{"invalid UTF-8", func(e *schema.Event) { e.Span.Name = "bad\xff" }},
			{"year beyond 9999", func(e *schema.Event) { e.Span.StartTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
			{"invalid raw payload", func(e *schema.Event) { e.Span.Attributes = jsontext.Value(`{"a":`) }},
		}
		for _, tc := range tests {
			ev := minimal()
			tc.mut(ev)
			dst := []byte("keep")
			got, err := schema.Encode(dst, ev)
			if err == nil {
				t.Errorf("%s: Encode: got %s, want an error", tc.name, got)
				continue
			}
			if !strings.HasPrefix(err.Error(), "schema: encode span_started event: ") {
				t.Errorf("%s: got error %q, want the operation prefix", tc.name, err)
			}
			if string(got) != "keep" {
				t.Errorf("%s: Encode returned %q on error, want dst unchanged", tc.name, got)
			}
		}
	})
}

// TestEncodeRawValueFormatting records what Encode does to raw JSON payloads: it
// removes insignificant whitespace and rewrites string escapes to their minimal
// form, but keeps member order and number spelling. Decode keeps them verbatim.
func TestEncodeRawValueFormatting(t *testing.T) {
	const attrs = `{ "z" : "\u0041\/<>&é" ,
		"a" : [ 1.0e2, -0.0, 100000000000000000000000000001 ] }`
	in := `{"type":"span_started","exportedSpan":{"traceId":"` + tid + `","id":"` + sid +
		`","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","attributes":` + attrs + `}}`
	ev, err := schema.Decode("", []byte(in))
	if err != nil {
		t.Fatalf("Decode(%s): %v", in, err)
	}
	if string(ev.Span.Attributes) != attrs {
		t.Errorf("Decode: got attributes %s, want them verbatim %s", ev.Span.Attributes, attrs)
	}
	b, err := schema.Encode(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	const want = `"attributes":{"z":"A/<>&é","a":[1.0e2,-0.0,100000000000000000000000000001]}`
	if !bytes.Contains(b, []byte(want)) {
		t.Errorf("Encode: got %s, want it to contain %s", b, want)
	}
}

func TestEventAccessors(t *testing.T) {
	tests := []struct {
		name   string
		ev     schema.Event
		signal schema.Signal
		trace  string
	}{
		{"span_started", schema.Event{Type: schema.SpanStarted, Span: &schema.Span{TraceID: "a"}}, schema.SignalTracing, "a"},
		{"span_updated", schema.Event{Type: schema.SpanUpdated, Span: &schema.Span{TraceID: "b"}}, schema.SignalTracing, "b"},
		{"span_ended", schema.Event{Type: schema.SpanEnded, Span: &schema.Span{TraceID: "c"}}, schema.SignalTracing, "c"},
		{"log", schema.Event{Type: schema.LogEvent, Log: &schema.Log{TraceID: "d"}}, schema.SignalLog, "d"},
		{"log without trace", schema.Event{Type: schema.LogEvent, Log: &schema.Log{}}, schema.SignalLog, ""},
		{"metric", schema.Event{Type: schema.MetricEvent, Metric: &schema.Metric{TraceID: "e"}}, schema.SignalMetric, "e"},
		{"score", schema.Event{Type: schema.ScoreEvent, Score: &schema.Score{TraceID: "f"}}, schema.SignalScore, "f"},
		{"feedback", schema.Event{Type: schema.FeedbackEvent, Feedback: &schema.Feedback{TraceID: "0"}}, schema.SignalFeedback, "0"},
		{"unknown", schema.Event{Type: "drop"}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.ev.Signal(); got != tc.signal {
				t.Errorf("Signal() = %q, want %q", got, tc.signal)
			}
			if got := tc.ev.TraceID(); got != tc.trace {
				t.Errorf("TraceID() = %q, want %q", got, tc.trace)
			}
		})
	}
	if got := len(schema.AllSignals); got != 5 {
		t.Errorf("len(AllSignals) = %d, want 5", got)
	}

	ended := []struct {
		name string
		span schema.Span
		want bool
	}{
		{"running", schema.Span{StartTime: ts("2025-03-01T12:00:00Z")}, false},
		{"ended", schema.Span{StartTime: ts("2025-03-01T12:00:00Z"), EndTime: ts("2025-03-01T12:00:01Z")}, true},
		{"event span", schema.Span{StartTime: ts("2025-03-01T12:00:00Z"), IsEvent: true}, true},
	}
	for _, tc := range ended {
		if got := tc.span.Ended(); got != tc.want {
			t.Errorf("%s: Ended() = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestErrorText(t *testing.T) {
	ve := &schema.ValidationError{Field: "log.level", Reason: "empty"}
	if got, want := ve.Error(), "schema: invalid event: log.level: empty"; got != want {
		t.Errorf("ValidationError.Error() = %q, want %q", got, want)
	}
	cause := errors.New("boom")
	se := &schema.SyntaxError{Codec: "json", Err: cause}
	if got, want := se.Error(), "schema: decode json: boom"; got != want {
		t.Errorf("SyntaxError.Error() = %q, want %q", got, want)
	}
	if !errors.Is(se, cause) {
		t.Errorf("SyntaxError does not unwrap to its cause")
	}
	if errors.Is(se, schema.ErrInvalidEvent) {
		t.Errorf("SyntaxError matches ErrInvalidEvent")
	}
}

// ---- helpers shared by the test files of this package ----

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func ptr[T any](v T) *T { return &v }

// eventsEqual reports whether a and b are the same event up to representation:
// instants are compared in UTC, and raw JSON payloads after the formatting Encode
// applies (insignificant whitespace and string escapes).
func eventsEqual(a, b *schema.Event) bool {
	return reflect.DeepEqual(canonical(a), canonical(b))
}

// diffEvents lists the fields on which a and b differ, for failure messages.
func diffEvents(a, b *schema.Event) string {
	var out []string
	diffValues("Event", reflect.ValueOf(canonical(a)), reflect.ValueOf(canonical(b)), &out)
	if len(out) == 0 {
		return "(no difference)"
	}
	return strings.Join(out, "\n")
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[jsontext.Value]()
)

func diffValues(path string, a, b reflect.Value, out *[]string) {
	if len(*out) > 20 {
		return
	}
	switch {
	case a.Type() == timeType, a.Type() == rawType:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, fmt.Sprintf("%s: got %.200v, want %.200v", path, fmtValue(a), fmtValue(b)))
		}
		return
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				*out = append(*out, fmt.Sprintf("%s: got nil=%v, want nil=%v", path, a.IsNil(), b.IsNil()))
			}
			return
		}
		diffValues(path, a.Elem(), b.Elem(), out)
	case reflect.Struct:
		for i := range a.NumField() {
			diffValues(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i), out)
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, fmt.Sprintf("%s: got %#.200v, want %#.200v", path, a.Interface(), b.Interface()))
		}
	}
}

func fmtValue(v reflect.Value) string {
	if r, ok := v.Interface().(jsontext.Value); ok {
		if r == nil {
			return "<nil>"
		}
		return fmt.Sprintf("%q", string(r))
	}
	return fmt.Sprint(v.Interface())
}

// canonical returns a deep copy of ev in the form eventsEqual compares.
func canonical(ev *schema.Event) *schema.Event {
	if ev == nil {
		return nil
	}
	c := *ev
	c.Repairs = nil // a repaired event encodes to strict JSON, which needs none
	if s := ev.Span; s != nil {
		n := *s
		n.StartTime, n.EndTime = n.StartTime.UTC(), n.EndTime.UTC()
		n.Attributes, n.Metadata, n.Input, n.Output = raw(n.Attributes), raw(n.Metadata), raw(n.Input), raw(n.Output)
		n.RequestContext = raw(n.RequestContext)
		if n.ErrorInfo != nil {
			e := *n.ErrorInfo
			e.Details = raw(e.Details)
			n.ErrorInfo = &e
		}
		c.Span = &n
	}
	if l := ev.Log; l != nil {
		n := *l
		n.Timestamp = n.Timestamp.UTC()
		n.Data, n.Metadata = raw(n.Data), raw(n.Metadata)
		c.Log = &n
	}
	if m := ev.Metric; m != nil {
		n := *m
		n.Timestamp = n.Timestamp.UTC()
		n.Metadata = raw(n.Metadata)
		if n.CostContext != nil {
			cc := *n.CostContext
			cc.CostMetadata = raw(cc.CostMetadata)
			n.CostContext = &cc
		}
		c.Metric = &n
	}
	if s := ev.Score; s != nil {
		n := *s
		n.Timestamp = n.Timestamp.UTC()
		n.Metadata = raw(n.Metadata)
		c.Score = &n
	}
	if f := ev.Feedback; f != nil {
		n := *f
		n.Timestamp = n.Timestamp.UTC()
		n.Value, n.Metadata = raw(n.Value), raw(n.Metadata)
		c.Feedback = &n
	}
	return &c
}

// raw formats v as Encode writes raw payloads; an invalid value is kept as it is.
func raw(v jsontext.Value) jsontext.Value {
	if v == nil {
		return nil
	}
	c := v.Clone()
	if err := c.Format(); err != nil {
		return v
	}
	return c
}
