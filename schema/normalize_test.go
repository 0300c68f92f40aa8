package schema_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/schema"
)

// TestDecodeTimeRange: a time that one sink cannot store (ClickHouse's DateTime64(9)
// holds 1900-01-01 to 2262-04-11) is a per-record validation error, for every
// timestamp of every signal, so that it never reaches a batch insert.
func TestDecodeTimeRange(t *testing.T) {
	fields := []struct {
		name, typ, key, field string
		base                  func() map[string]any
		signal                schema.Signal
	}{
		{"span start", "span_started", "exportedSpan", "startTime", baseSpan, schema.SignalTracing},
		{"span end", "span_ended", "exportedSpan", "endTime", baseSpan, schema.SignalTracing},
		{"log", "log", "log", "timestamp", baseLog, schema.SignalLog},
		{"metric", "metric", "metric", "timestamp", baseMetric, schema.SignalMetric},
		{"score", "score", "score", "timestamp", baseScore, schema.SignalScore},
		{"feedback", "feedback", "feedback", "timestamp", baseFeedback, schema.SignalFeedback},
	}
	times := []struct {
		name string
		at   string
		ok   bool
	}{
		{"the day before 1900", "1899-12-31T00:00:00Z", false},
		{"1 ns before 1900", "1899-12-31T23:59:59.999999999Z", false},
		{"1900 in UTC, before it in UTC+1", "1900-01-01T00:30:00+01:00", false},
		{"year 1", "0001-01-02T00:00:00Z", false},
		{"first storable instant", "1900-01-01T00:00:00Z", true},
		{"last storable instant", "2262-04-11T23:47:16.854775807Z", true},
		{"1 ns after the last", "2262-04-11T23:47:16.854775808Z", false},
		{"2299", "2299-12-31T23:59:59Z", false},
		{"9999", "9999-12-31T23:59:59Z", false},
	}
	for _, f := range fields {
		for _, tm := range times {
			t.Run(f.name+"/"+tm.name, func(t *testing.T) {
				set := map[string]any{f.field: tm.at}
				if f.field == "endTime" {
					set["startTime"] = "1900-01-01T00:00:00Z"
				}
				in := doc(f.typ, f.key, f.base(), set)
				ev, err := schema.Decode("", in)
				if tm.ok {
					if err != nil {
						t.Fatalf("Decode(%s): %v, want ok", in, err)
					}
					return
				}
				var ve *schema.ValidationError
				if !errors.As(err, &ve) || ev != nil {
					t.Fatalf("Decode(%s): got %v, want a ValidationError", in, err)
				}
				if want := f.key + "." + f.field; ve.Field != want {
					t.Errorf("got field %q, want %q", ve.Field, want)
				}
				if !strings.Contains(ve.Reason, "outside the storable range") {
					t.Errorf("got reason %q, want it to say the time is outside the storable range", ve.Reason)
				}
				if got := schema.SignalOfError(err); got != f.signal {
					t.Errorf("SignalOfError = %q, want %q", got, f.signal)
				}
			})
		}
	}
}

// TestDecodeLowercasesIDs: ids that differ only in case are one id; Decode stores
// them lower case so that keys compare equal in the pipeline and the sinks.
func TestDecodeLowercasesIDs(t *testing.T) {
	const (
		upT = "4BF92F3577B34DA6A3CE929D0E0E4736"
		upS = "00F067AA0BA902B7"
		upP = "B7AD6B7169203331"
	)
	lowT, lowS, lowP := strings.ToLower(upT), strings.ToLower(upS), strings.ToLower(upP)
	ids := map[string]any{"traceId": upT, "spanId": upS}
	tests := []struct {
		name string
		in   []byte
		got  func(*schema.Event) []string
		want []string
	}{
		{"span", spanDoc("span_started", map[string]any{"traceId": upT, "id": upS, "parentSpanId": upP}),
			func(e *schema.Event) []string { return []string{e.Span.TraceID, e.Span.SpanID, e.Span.ParentSpanID} },
			[]string{lowT, lowS, lowP}},
		{"mixed case span", spanDoc("span_ended", map[string]any{"traceId": "4bF92f3577B34da6a3ce929d0e0e4736", "id": "00f067AA0ba902b7"}),
			func(e *schema.Event) []string { return []string{e.Span.TraceID, e.Span.SpanID} },
			[]string{lowT, lowS}},
		{"log", doc("log", "log", baseLog(), ids),
			func(e *schema.Event) []string { return []string{e.Log.TraceID, e.Log.SpanID} }, []string{lowT, lowS}},
		{"metric", doc("metric", "metric", baseMetric(), ids),
			func(e *schema.Event) []string { return []string{e.Metric.TraceID, e.Metric.SpanID} }, []string{lowT, lowS}},
		{"score", doc("score", "score", baseScore(), map[string]any{"traceId": upT, "spanId": upS, "scoreTraceId": upP}),
			func(e *schema.Event) []string { return []string{e.Score.TraceID, e.Score.SpanID, e.Score.ScoreTraceID} },
			[]string{lowT, lowS, lowP}},
		{"score trace id that is not hex is kept", doc("score", "score", baseScore(), map[string]any{"scoreTraceId": "Run-7"}),
			func(e *schema.Event) []string { return []string{e.Score.ScoreTraceID} }, []string{"Run-7"}},
		{"feedback", doc("feedback", "feedback", baseFeedback(), ids),
			func(e *schema.Event) []string { return []string{e.Feedback.TraceID, e.Feedback.SpanID} }, []string{lowT, lowS}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := schema.Decode("", tc.in)
			if err != nil {
				t.Fatalf("Decode(%s): %v", tc.in, err)
			}
			if got := tc.got(ev); !slices.Equal(got, tc.want) {
				t.Errorf("Decode(%s): ids %q, want %q", tc.in, got, tc.want)
			}
			if ev.TraceID() != strings.ToLower(ev.TraceID()) {
				t.Errorf("TraceID() = %q, the record key must be lower case", ev.TraceID())
			}
		})
	}
}

// TestDecodeLoneSurrogates: JSON.stringify writes a JavaScript string cut inside a
// surrogate pair as a lone \uD83D escape. Decode accepts it, replaces each lone
// surrogate with U+FFFD in fields and payloads, and reports the repair.
func TestDecodeLoneSurrogates(t *testing.T) {
	span := func(name, input string) []byte {
		return []byte(`{"type":"span_ended","exportedSpan":{"traceId":"` + tid + `","id":"` + sid +
			`","name":"` + name + `","type":"model_chunk","startTime":"2025-03-01T12:00:00Z","input":` + input + `}}`)
	}
	tests := []struct {
		name      string
		in        []byte
		wantName  string
		wantInput string // the raw payload as stored
		repaired  bool
	}{
		{"high surrogate at the end of a name", span(`chunk \ud83d`, `1`), "chunk \ufffd", `1`, true},
		{"low surrogate alone", span(`\ude00 tail`, `1`), "\ufffd tail", `1`, true},
		{"high followed by a non-surrogate escape", span(`\ud83d\u0041`, `1`), "\ufffdA", `1`, true},
		{"high, then a valid pair", span(`\ud83d\ud83d\ude00`, `1`), "\ufffd😀", `1`, true},
		{"two highs", span(`\uD83D\uD83D`, `1`), "\ufffd\ufffd", `1`, true},
		{"in a payload", span(`n`, `{"text":"I am \ud83d"}`), "n", `{"text":"I am \ufffd"}`, true},
		{"in a payload key", span(`n`, `{"\udc00":1}`), "n", `{"\ufffd":1}`, true},
		{"valid pair, no repair", span(`\ud83d\ude00`, `"\ud83d\ude00"`), "😀", `"\ud83d\ude00"`, false},
		{"escaped backslash, not an escape", span(`\\ud83d`, `"\\ud800"`), `\ud83d`, `"\\ud800"`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig := string(tc.in)
			ev, err := schema.Decode("", tc.in)
			if err != nil {
				t.Fatalf("Decode(%s): %v", tc.in, err)
			}
			if ev.Span.Name != tc.wantName {
				t.Errorf("name = %q, want %q", ev.Span.Name, tc.wantName)
			}
			if string(ev.Span.Input) != tc.wantInput {
				t.Errorf("input = %s, want %s", ev.Span.Input, tc.wantInput)
			}
			if !jsontext.Value(ev.Span.Input).IsValid() {
				t.Errorf("input %s is not valid JSON", ev.Span.Input)
			}
			want := []schema.Repair(nil)
			if tc.repaired {
				want = []schema.Repair{schema.RepairLoneSurrogate}
			}
			if !slices.Equal(ev.Repairs, want) {
				t.Errorf("Repairs = %v, want %v", ev.Repairs, want)
			}
			if string(tc.in) != orig {
				t.Errorf("Decode modified its input: the dead letter must keep the original bytes")
			}
			// The repaired event encodes to strict JSON that decodes without repair.
			b, err := schema.Encode(nil, ev)
			if err != nil {
				t.Fatal(err)
			}
			ev2, err := schema.Decode("", b)
			if err != nil || ev2.Repairs != nil || ev2.Span.Name != tc.wantName {
				t.Errorf("Decode(Encode(repaired)) = %v, %v: want the same name and no repair", ev2, err)
			}
		})
	}
}

// TestDecodeDeprecatedNames: Mastra still emits score source/experimentId,
// feedback source/userId/experimentId and log tags; they fill the current fields,
// which the sinks store (score_source, experiment_id, feedback_source,
// feedback_user_id, tags).
func TestDecodeDeprecatedNames(t *testing.T) {
	ev, err := schema.Decode("", doc("score", "score", baseScore(), map[string]any{"source": "live", "experimentId": "exp-1"}))
	if err != nil {
		t.Fatal(err)
	}
	if s := ev.Score; s.ScoreSource != "live" || s.Correlation == nil || s.Correlation.ExperimentID != "exp-1" {
		t.Errorf("score: scoreSource %q, correlation %+v; want live and experimentId exp-1", s.ScoreSource, s.Correlation)
	}
	ev, err = schema.Decode("", doc("score", "score", baseScore(), map[string]any{
		"source": "old", "scoreSource": "trace", "experimentId": "old",
		"correlationContext": map[string]any{"experimentId": "exp-2"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if s := ev.Score; s.ScoreSource != "trace" || s.Correlation.ExperimentID != "exp-2" {
		t.Errorf("score: the current names must win: got %q, %q", s.ScoreSource, s.Correlation.ExperimentID)
	}
	ev, err = schema.Decode("", doc("feedback", "feedback", baseFeedback(), map[string]any{
		"source": "ui", "userId": "u-1", "experimentId": "exp-3",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if f := ev.Feedback; f.FeedbackSource != "ui" || f.FeedbackUserID != "u-1" || f.Correlation.ExperimentID != "exp-3" {
		t.Errorf("feedback: got source %q, user %q, correlation %+v", f.FeedbackSource, f.FeedbackUserID, f.Correlation)
	}
	ev, err = schema.Decode("", doc("log", "log", baseLog(), map[string]any{"tags": []string{"prod"}}))
	if err != nil {
		t.Fatal(err)
	}
	if l := ev.Log; l.Correlation == nil || !slices.Equal(l.Correlation.Tags, []string{"prod"}) {
		t.Errorf("log: deprecated tags not kept in the correlation: %+v", l.Correlation)
	}
}

// TestSignalOfError: every decode error names the record's signal once its type
// was read, so that drop events say "tracing" rather than "unknown".
func TestSignalOfError(t *testing.T) {
	tests := []struct {
		name  string
		codec string
		in    []byte
		want  schema.Signal
	}{
		{"validation error of a span", "", spanDoc("span_started", map[string]any{"name": del}), schema.SignalTracing},
		{"validation error of a log", "", doc("log", "log", baseLog(), map[string]any{"level": del}), schema.SignalLog},
		{"unsupported version", "", []byte(`{"schemaVersion":9,"type":"metric","metric":{}}`), schema.SignalMetric},
		{"unknown type", "", []byte(`{"type":"trace"}`), ""},
		{"unknown codec", "avro", []byte(`{"type":"log"}`), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := schema.Decode(tc.codec, tc.in)
			var de *schema.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode(%s): got %T %v, want a *schema.DecodeError", tc.in, err, err)
			}
			if got := schema.SignalOfError(err); got != tc.want {
				t.Errorf("SignalOfError(%v) = %q, want %q", err, got, tc.want)
			}
		})
	}
	if got := schema.SignalOfError(errors.New("other")); got != "" {
		t.Errorf("SignalOfError(other) = %q, want empty", got)
	}
}
