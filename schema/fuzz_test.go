package schema_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

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

// checkDecode is the property both fuzz targets check, FuzzDecodeTiers' included.
func checkDecode(t *testing.T, data []byte) {
	checkTiers(t, data)
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

// FuzzFastDecode checks the fast decoder against the reflection decoder it stands in
// for: whatever the fast one decodes, the reflection one decodes to the same event,
// field for field (raw payloads byte for byte, nil and empty apart), context ids
// promoted from metadata included (the fast one promotes as it reads). It may
// give up on anything, as Decode then takes the reflection path.
func FuzzFastDecode(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameAsReflect(t, "fast", schema.DecodeFast, data) })
}

// sameAsReflect fails t when decode, a faster decoder named name, accepts data and
// the reflection decoder rejects it or decodes another event. The faster decoders
// also promote context ids from metadata, which Decode otherwise does after
// validation: the reflection event gets them the way promote used to.
func sameAsReflect(t *testing.T, name string, decode func([]byte) (*schema.Event, error), data []byte) {
	got, err := decode(data)
	if err != nil {
		return
	}
	ref, err := schema.DecodeReflect(data)
	if err != nil {
		t.Fatalf("%s decoder accepted what the reflection decoder rejects (%v):\n%q", name, err, data)
	}
	if s := ref.Span; s != nil && len(s.Metadata) > 0 && s.Metadata.Kind() == '{' {
		schema.PromoteReflect(&s.Correlation, s.Metadata)
	}
	if !reflect.DeepEqual(got, ref) {
		t.Fatalf("%s and reflection decoders differ:\n%s %#v\nref  %#v\n%s\ninput: %q", name, name, got, ref, diffEvents(got, ref), data)
	}
}

// FuzzScanDecode is FuzzFastDecode for the scan decoder, the first of Decode's
// three: whatever it decodes, the reflection decoder decodes to the same event.
func FuzzScanDecode(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameAsReflect(t, "scan", schema.DecodeScan, data) })
}

// FuzzDecodeTiers checks Decode, with its scan and fast paths, against Decode by the
// reflection decoder alone on arbitrary bytes: the same event, or the same error
// (message, kind and signal), so that the faster paths change nothing a drop event
// or a sink sees.
func FuzzDecodeTiers(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkTiers)
}

// checkTiers is FuzzDecodeTiers' property.
func checkTiers(t *testing.T, data []byte) {
	got, gotErr := schema.Decode(schema.CodecJSON, data)
	want, wantErr := schema.DecodeReference(data)
	switch {
	case (gotErr == nil) != (wantErr == nil):
		t.Fatalf("Decode error %v, reference error %v\ninput: %q", gotErr, wantErr, data)
	case gotErr != nil:
		if gotErr.Error() != wantErr.Error() || schema.SignalOfError(gotErr) != schema.SignalOfError(wantErr) ||
			errorKind(gotErr) != errorKind(wantErr) {
			t.Fatalf("Decode error %v (%s, %q), reference error %v (%s, %q)\ninput: %q", gotErr, errorKind(gotErr),
				schema.SignalOfError(gotErr), wantErr, errorKind(wantErr), schema.SignalOfError(wantErr), data)
		}
	case !reflect.DeepEqual(got, want):
		t.Fatalf("Decode and the reference differ:\n%s\ninput: %q", diffEvents(got, want), data)
	}
}

// errorKind names the documented kind of a Decode error.
func errorKind(err error) string {
	var (
		ve *schema.ValidationError
		se *schema.SyntaxError
	)
	switch {
	case errors.As(err, &ve):
		return "validation"
	case errors.As(err, &se):
		return "syntax"
	case errors.Is(err, schema.ErrUnsupportedVersion):
		return "version"
	}
	return "other"
}

// scanSeeds are shapes at the scan decoder's edges: whitespace everywhere, escapes it
// decodes (and \u ones it leaves), duplicate names it must catch without jsontext,
// tags, odd numbers and literals, payload values of every kind.
var scanSeeds = []string{
	" \t\r\n{ \"type\" : \"span_started\" , \"exportedSpan\" : { \"traceId\" : \"" + tid + "\" , \"id\" : \"" + sid +
		"\" , \"name\" : \"n\" , \"type\" : \"generic\" , \"startTime\" : \"2025-03-01T12:00:00Z\" , \"tags\" : [ \"a\" , \"b\" ] , " +
		"\"metadata\" : { \"userId\" : \"u\" , \"x\" : [ 1 , { } ] } , \"input\" : [ ] } } \n",
	`{"type":"span_started","exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"a\"b\\c\/d\b\f\n\r\te","type":"generic",` +
		`"startTime":"2025-03-01T12:00:00Z","tags":["x\ty",""],"metadata":{"threadId":"t\n","runId":"\u0041"},"output":"\u00e9"}}`,
	`{"type":"span_started","exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","tags":[]}}`,
	`{"type":"span_started","exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","x":1,"y":2,"x":3}}`,
	`{"type":"span_started","x":{},"exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z"},"x":[]}`,
	`{"type":"span_started","exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","metadata":{"a":1,"a":2}}}`,
	`{"type":"span_started","exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","attributes":{"a":1,"a":2}}}`,
	`{"type":"span_started","exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","userId":"a","userId":"b"}}`,
	`{"type":"span_started","exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","isEvent":false,"isRootSpan":true,"isInternal":false,` +
		`"version":7,"attributes":-1.5e+3,"requestContext":true,"input":false,"output":"é"}}`,
	`{"type":"span_started","exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","version":007,"output":"` + "\xff" + `"}}`,
	`{"type":"span_started","exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","errorInfo":{"message":"m"}}}`,
	`{"type":"span_ended","schemaVersion":1,"schemaVersion":1,"exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z"}}`,
	`{"type":"span_ended","exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"é` + "\xe2\x82" + `","type":"generic","startTime":"2025-03-01T12:00:00Z"}}`,
	`{"type":"span_ended","exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z"},}`,
	`{"type":"span_ended","exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z",}}`,
}

// fastSeeds are shapes the fast decoder hands to reflection or must get exactly right:
// nulls and wrong kinds in every field kind, escapes in names and values, other
// signals, odd times.
var fastSeeds = []string{
	`{"type":"span_ended","exportedSpan":{"traceId":null,"id":"` + sid + `","name":"n","type":null,"startTime":null,"endTime":null,` +
		`"attributes":null,"metadata":null,"input":null,"output":null,"requestContext":null,"errorInfo":null,"isEvent":null,` +
		`"isRootSpan":null,"isInternal":null,"version":null,"tags":null,"userId":null},"schemaVersion":null}`,
	`{"type":"span_ended","exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"n\u00e9\ud83d\ude00","type":"gen\u0065ric",` +
		`"start\u0054ime":"2025-03-01T12:00:00\u002e5Z","endTime":"2025-03-01T12:00:01+02:00","errorInfo":{"message":"m","details":{}},` +
		`"isEvent":true,"version":7,"tags":[],"metadata":{"user\u0049d":"u\"1","threadId":7,"serviceName":"s"},"serviceName":"own"}}`,
	`{"exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"n","type":"x","startTime":"2025-03-01T1:00:00Z"},"type":"span_started"}`,
	`{"type":"span_started","exportedSpan":{"traceId":"` + tid + `","startTime":"2025-03-01T12:00:00,5Z","name":1}}`,
	`{"type":"span_started","exportedSpan":{"traceId":"` + tid + `","startTime":"2025-03-01T12:00:00+24:00","endTime":"2025-03-01T12:00:00+01:60"}}`,
	`{"type":"span_started","exportedSpan":{"TraceId":"` + tid + `","traceid":"x","isEvent":"true","version":"1","tags":"a"}}`,
	`{"type":"log","log":{"logId":"l","timestamp":"2025-03-01T12:00:00Z","level":"info","message":"m","data":{"a":1},"metadata":null}}`,
	`{"type":"metric","metric":{"metricId":"m","timestamp":"2025-03-01T12:00:00Z","name":"x","value":1,"labels":{"a":"b"}}}`,
	`{"type":"span_started","exportedSpan":{},"exportedSpan":{}}`,
	`{"type":"span_started","exportedSpan":[]}`,
	`{"type":"span_started","exportedSpan":null,"log":null}`,
	`{"type":1}`,
	`{"type":null,"exportedSpan":{"traceId":"` + tid + `"},"schemaVersion":1}`,
	`{"type":"span_started","exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z",` +
		`"metadata":{"userId":"m","runId":"r","threadId":"","source":null},"userId":"","runId":"own","threadId":"t"}}`,
	`{"type":"span_started","exportedSpan":{"metadata" : {"userId":"m"} ,"metadata":{}}}`,
	`{"schemaVersion":1,"type":"span_started","exportedSpan":{"traceId":"` + tid + `","id":"` + sid + `","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","version":123456789012345678}}`,
	`{"schemaVersion":-0,"type":"span_started","exportedSpan":{"version":1.0}}`,
	`{"schemaVersion":1e0,"type":"span_started","exportedSpan":{"version":18446744073709551616}}`,
	`{"schemaVersion":"1","type":"span_started","exportedSpan":{"version":-1}}`,
	`{"type":"span_started","unknown":{"deep":[1,{"x":null}]},"schemaVersion":1}  `,
}

// FuzzPromote checks promote against the reflection-driven promotion it replaced, on
// any metadata and with some context ids already set.
func FuzzPromote(f *testing.F) {
	f.Add(`{"userId":"u","threadId":7,"serviceName":null,"source":"s"}`, false)
	f.Add(`{"user\u0049d":"\u00e9","runId":"r","runId":"r2"}`, true)
	f.Add(`{"userId":"u"} x`, false)
	f.Add(`[{"userId":"u"}]`, false)
	f.Add(`{"a":{"userId":"nested"},"environment":"","experimentId":"e","entityVersionId":"v","organizationId":"o"}`, true)
	f.Fuzz(func(t *testing.T, metadata string, preset bool) {
		var fast, ref schema.Correlation
		if preset {
			fast.UserID, fast.Environment = "set", "set"
			ref = fast
		}
		schema.Promote(&fast, jsontext.Value(metadata))
		schema.PromoteReflect(&ref, jsontext.Value(metadata))
		if !reflect.DeepEqual(fast, ref) {
			t.Fatalf("promote differs from the reflection promotion on %s:\nfast %+v\nref  %+v", metadata, fast, ref)
		}
	})
}

// TestFastDecodeTakesSpans makes sure the scan and fast paths are the ones spans take: a span the
// fast decoder gave up on would still decode, by reflection, and only be slow.
func TestFastDecodeTakesSpans(t *testing.T) {
	n := 0
	for _, s := range append(validSamples, struct {
		name string
		json string
		want *schema.Event
	}{"bench", benchSpan, nil}) {
		if !strings.Contains(s.json, `"exportedSpan"`) {
			continue
		}
		n++
		if _, err := schema.DecodeFast([]byte(s.json)); err != nil {
			t.Errorf("%s: the fast decoder gave up: %v", s.name, err)
		}
		if _, err := schema.DecodeScan([]byte(s.json)); err != nil {
			t.Errorf("%s: the scan decoder gave up: %v", s.name, err)
		}
	}
	if n < 3 {
		t.Fatalf("only %d span samples", n)
	}
}
