package schema_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/spanpipe/spanpipe/schema"
)

// FuzzDecode checks that Decode never panics, that every error it returns is one of
// the documented kinds, and that whatever it accepts is valid, encodes, and decodes
// back to an equal event whose encoding is a fixed point. (There is no consumed
// length to check: Decode takes whole record values and rejects trailing data.)
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(checkDecode)
}

// FuzzEventFields splices fuzzed JSON fragments into a span and a metric, so that
// the mutator spends its time on the values that carry semantics (times, ids, raw
// payloads, numbers, metadata for promotion) rather than on JSON punctuation.
func FuzzEventFields(f *testing.F) {
	f.Add("span_ended", `"`+tid+`"`, `"2025-03-01T12:00:00.000Z"`, `"2025-03-01T12:00:01+02:00"`, `{"userId":"u","a":[1,2.5e3]}`, `{"model":"gpt"}`, `7`, `1.5`)
	f.Add("span_started", `"A"`, `"0000-01-01T00:00:00+23:59"`, `null`, `[]`, `""`, `0`, `-0`)
	f.Add("span_updated", `"ab"`, `"9999-12-31T23:59:59.999999999-23:59"`, `"9999-12-31T23:59:59.999999999Z"`, `{"threadId":7}`, `{ }`, `18446744073709551615`, `1e308`)
	f.Fuzz(func(t *testing.T, typ, traceID, start, end, metadata, attributes, version, value string) {
		span := `{"type":"` + typ + `","exportedSpan":{"traceId":` + traceID + `,"id":"` + sid + `","name":"n","type":"generic",` +
			`"startTime":` + start + `,"endTime":` + end + `,"metadata":` + metadata + `,"attributes":` + attributes +
			`,"version":` + version + `}}`
		checkDecode(t, []byte(span))
		metric := `{"type":"metric","metric":{"metricId":"m","timestamp":` + start + `,"traceId":` + traceID +
			`,"name":"x","value":` + value + `,"metadata":` + metadata + `,"costContext":{"estimatedCost":` + value +
			`,"costMetadata":` + attributes + `}}}`
		checkDecode(t, []byte(metric))
	})
}

// checkDecode is the property both fuzz targets check.
func checkDecode(t *testing.T, data []byte) {
	ev, err := schema.Decode(schema.CodecJSON, data)
	if err != nil {
		var (
			ve *schema.ValidationError
			se *schema.SyntaxError
			de *schema.DecodeError
		)
		if !errors.As(err, &de) {
			t.Fatalf("Decode: error %T %v is not a *schema.DecodeError", err, err)
		}
		if !errors.As(err, &ve) && !errors.As(err, &se) && !errors.Is(err, schema.ErrUnsupportedVersion) {
			t.Fatalf("Decode: unclassified error %T %v", err, err)
		}
		if errors.As(err, &ve) != errors.Is(err, schema.ErrInvalidEvent) {
			t.Fatalf("Decode: %v: ValidationError and ErrInvalidEvent disagree", err)
		}
		if ev != nil {
			t.Fatalf("Decode: got an event with error %v", err)
		}
		return
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("Decode accepted an event that Validate rejects: %v", err)
	}
	if ev.SchemaVersion != schema.Version {
		t.Fatalf("Decode left schemaVersion %d", ev.SchemaVersion)
	}
	if ev.Span != nil && ev.Span.Version == 0 {
		t.Fatalf("Decode left span version 0")
	}
	b, err := schema.Encode(nil, ev)
	if err != nil {
		t.Fatalf("Encode of a decoded event: %v", err)
	}
	ev2, err := schema.Decode(schema.CodecJSON, b)
	if err != nil {
		t.Fatalf("Decode(Encode(x)): %v\nencoded: %s", err, b)
	}
	if !eventsEqual(ev2, ev) {
		t.Fatalf("Decode(Encode(x)) != x:\n%s\nencoded: %s", diffEvents(ev2, ev), b)
	}
	b2, err := schema.Encode(nil, ev2)
	if err != nil {
		t.Fatalf("Encode(Decode(Encode(x))): %v", err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("encoding is not a fixed point:\nfirst  %s\nsecond %s", b, b2)
	}
}

// fuzzSeeds follows the house seed mix: valid events of every type, empty input,
// truncated input, valid input followed by garbage, maximum lengths, huge strings
// and deep nesting.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	add := func(s string) { seeds = append(seeds, []byte(s)) }
	for _, s := range validSamples {
		add(s.json)
		add(s.json[:len(s.json)/2])
		add(s.json[:len(s.json)-1])
		add(s.json + "garbage")
		add(s.json + "\x00")
		add(s.json + " {}")
		add(strings.Replace(s.json, `"type":"`, `"schemaVersion":2,"type":"`, 1))
	}
	for _, s := range []string{"", " ", "{}", "null", "[]", `""`, "0", "\x00\xff\xfe", "{", `{"type":`} {
		add(s)
	}
	// Maximum and one-past-maximum id lengths, upper-case hex.
	add(string(spanDoc("span_started", map[string]any{"traceId": strings.Repeat("f", 32), "id": strings.Repeat("F", 16)})))
	add(string(spanDoc("span_started", map[string]any{"traceId": strings.Repeat("f", 33)})))
	add(string(spanDoc("span_started", map[string]any{"id": strings.Repeat("0", 17)})))
	// Lone surrogates (repaired), in a field, in a payload, at the very end.
	add(string(spanDoc("span_started", map[string]any{"name": "x"})))
	add(strings.Replace(string(spanDoc("span_started", map[string]any{"name": "x", "input": "y"})), `"x"`, `"\ud83d"`, 1))
	add(strings.Replace(string(spanDoc("span_started", map[string]any{"input": "y"})), `"y"`, `"\udc00\ud83d\ude00\ud83d"`, 1))
	add(`{"type":"log","log":{"message":"\ud800`)
	// Times at the edges of the storable range.
	add(string(spanDoc("span_ended", map[string]any{"startTime": "1900-01-01T00:00:00Z", "endTime": "2262-04-11T23:47:16.854775807Z"})))
	add(string(spanDoc("span_started", map[string]any{"startTime": "1899-12-31T23:59:59.999999999Z"})))
	// Promotion, time zones, custom span types, empty payloads.
	add(string(spanDoc("span_ended", map[string]any{
		"metadata": map[string]any{"userId": "u", "threadId": 7, "serviceName": nil},
		"endTime":  "2025-03-01T14:00:00.123456789+02:00", "type": "my_custom_type",
		"attributes": map[string]any{}, "input": []any{}, "output": "", "requestContext": nil, "tags": []any{},
	})))
	add(string(doc("metric", "metric", baseMetric(), map[string]any{
		"labels": map[string]any{}, "correlationContext": map[string]any{}, "costContext": map[string]any{},
	})))
	// Huge strings.
	add(string(spanDoc("span_started", map[string]any{"name": strings.Repeat("n", 64<<10)})))
	add(string(spanDoc("span_started", map[string]any{"attributes": map[string]any{"prompt": strings.Repeat("é", 128<<10)}})))
	// Deep nesting: at and beyond the decoder's depth limit.
	for _, depth := range []int{100, 9990, 10001} {
		add(`{"type":"span_started","exportedSpan":{"traceId":"` + tid + `","id":"` + sid +
			`","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","attributes":` +
			strings.Repeat(`{"a":[`, depth/2) + strings.Repeat(`]}`, depth/2) + `}}`)
	}
	return seeds
}

// TestFuzzSeeds runs the seed corpus through the property in ordinary test runs, and
// makes sure the seeds exercise both outcomes.
func TestFuzzSeeds(t *testing.T) {
	var ok, failed int
	for _, s := range fuzzSeeds() {
		if _, err := schema.Decode("", s); err != nil {
			failed++
		} else {
			ok++
		}
	}
	if ok < len(validSamples) || failed == 0 {
		t.Errorf("seed corpus: %d decode, %d fail; want every valid sample to decode and some failures", ok, failed)
	}
}
