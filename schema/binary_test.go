package schema_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/schema"
)

// TestBinaryRoundTrip checks, on the pseudo-random events of TestRoundTrip, that the
// binary codec gives the event the JSON codec gives: Decode(EncodeBinary(ev)) is ev
// after Decode's normalisation, and so is the binary round trip of a JSON-decoded event.
func TestBinaryRoundTrip(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 200
	}
	g := &gen{r: rand.New(rand.NewPCG(2025, 3))}
	for i := range n {
		in, want := g.event(i)
		t.Run(fmt.Sprintf("%04d-%s", i, in.Type), func(t *testing.T) {
			b, err := schema.EncodeBinary(nil, in)
			if err != nil {
				t.Fatalf("EncodeBinary: %v", err)
			}
			got, err := schema.Decode(schema.CodecBinary, b)
			if err != nil {
				t.Fatalf("Decode(EncodeBinary(ev)): %v", err)
			}
			if !eventsEqual(got, want) {
				t.Fatalf("Decode(EncodeBinary(ev)) differs from ev:\n%s", diffEvents(got, want))
			}
			j, err := schema.Encode(nil, in)
			if err != nil {
				t.Fatal(err)
			}
			fromJSON, err := schema.Decode(schema.CodecJSON, j)
			if err != nil {
				t.Fatal(err)
			}
			checkBinaryRoundTrip(t, fromJSON)
		})
	}
}

// checkBinaryRoundTrip checks that a decoded event survives the binary codec unchanged.
func checkBinaryRoundTrip(t *testing.T, ev *schema.Event) {
	t.Helper()
	b, err := schema.EncodeBinary(nil, ev)
	if err != nil {
		t.Fatalf("EncodeBinary of a decoded event: %v", err)
	}
	got, err := schema.Decode(schema.CodecBinary, b)
	if err != nil {
		t.Fatalf("Decode(EncodeBinary(decoded event)): %v", err)
	}
	if !eventsEqual(got, ev) {
		t.Fatalf("binary round trip differs:\n%s", diffEvents(got, ev))
	}
}

// rec builds a binary record by hand: the format version, then fields.
type rec []byte

func newRec() rec { return rec{1} }

func (r rec) key(num, wt int) rec { return binary.AppendUvarint(r, uint64(num)<<2|uint64(wt)) }
func (r rec) bytes(num int, v []byte) rec {
	r = binary.AppendUvarint(r.key(num, 1), uint64(len(v)))
	return append(r, v...)
}
func (r rec) str(num int, s string) rec    { return r.bytes(num, []byte(s)) }
func (r rec) msg(num int, m rec) rec       { return r.bytes(num, m[1:]) } // m built with newRec
func (r rec) varint(num int, v uint64) rec { return binary.AppendUvarint(r.key(num, 0), v) }
func (r rec) float(num int, f float64) rec {
	return binary.LittleEndian.AppendUint64(r.key(num, 2), math.Float64bits(f))
}
func (r rec) time(num int, s int64, ns uint64) rec {
	b := binary.AppendUvarint(nil, uint64(s<<1)^uint64(s>>63))
	return r.bytes(num, binary.AppendUvarint(b, ns))
}

// goodSpan is a minimal valid span message; fields are appended to it.
func goodSpan() rec {
	return newRec().str(1, tid).str(2, sid).str(5, "llm").str(6, "model_generation").time(8, 1740830400, 0)
}

func spanRec(span rec) rec { return newRec().str(1, "span_ended").msg(3, span) }

// TestDecodeBinaryErrors is the binary codec's error table: every bad record is a
// *DecodeError of the documented kind, with the signal once the type was read.
func TestDecodeBinaryErrors(t *testing.T) {
	var (
		syntax = func(err error) bool {
			var se *schema.SyntaxError
			return errors.As(err, &se) && se.Codec == schema.CodecBinary
		}
		invalid    = func(err error) bool { return errors.Is(err, schema.ErrInvalidEvent) }
		version    = func(err error) bool { return errors.Is(err, schema.ErrUnsupportedVersion) }
		hugeLength = binary.AppendUvarint(newRec().key(1, 1), 1<<62)
	)
	for _, tc := range []struct {
		name   string
		data   []byte
		is     func(error) bool
		signal schema.Signal
		msg    string
	}{
		{"empty", nil, syntax, "", "empty record"},
		{"format version 0", []byte{0}, syntax, "", "format version 0"},
		{"newer format version", []byte{2, 1, 2}, version, "", "format version 2"},
		{"JSON under the binary header", []byte(`{"type":"span_ended"}`), version, "", "format version 123"},
		{"truncated key", []byte{1, 0x80}, syntax, "", "truncated field key"},
		{"hostile length", hugeLength, syntax, "", "exceeds the 0 bytes left"},
		{"length past the end", append(newRec().key(1, 1), 5, 'a'), syntax, "", "length 5 exceeds the 1 bytes left"},
		{"unknown wire type", newRec().key(1, 3), syntax, "", "unknown wire type 3"},
		{"wrong wire type", newRec().varint(1, 7), syntax, "", "wire type 0, want 1"},
		{"repeated field", newRec().str(1, "log").str(1, "log"), syntax, "log", "field 1 repeated"},
		{"truncated float", newRec().str(1, "metric").bytes(5, []byte{6<<2 | 2, 1, 2, 3}), syntax, "metric", "field 6: truncated float"},
		{"string not UTF-8", spanRec(goodSpan().str(4, "\xff")), syntax, "tracing", "not valid UTF-8"},
		{"payload not JSON", spanRec(goodSpan().str(12, `{"a":`)), syntax, "tracing", "field 12: payload is not a valid JSON value"},
		{"payload with a duplicate name", spanRec(goodSpan().str(10, `{"a":1,"a":2}`)), syntax, "tracing", "not a valid JSON value"},
		{"payload with two values", spanRec(goodSpan().str(10, `1 2`)), syntax, "tracing", "not a valid JSON value"},
		{"time nanoseconds ≥ 1e9", spanRec(goodSpan().time(9, 1740830400, 1e9)), syntax, "tracing", "malformed time"},
		{"time with trailing bytes", spanRec(goodSpan().bytes(9, []byte{2, 0, 0})), syntax, "tracing", "malformed time"},
		{"list length past its end", newRec().str(1, "log").msg(4, newRec().bytes(10, []byte{5, 'a'})), syntax, "log", "malformed list"},
		{"labels without a value", newRec().str(1, "metric").msg(5, newRec().bytes(7, []byte{1, 'k'})), syntax, "metric", "a key without a value"},
		{"labels with a repeated key", newRec().str(1, "metric").msg(5, newRec().bytes(7, []byte{1, 'k', 0, 1, 'k', 0})), syntax, "metric", `key "k" repeated`},
		{"estimatedCost NaN", newRec().str(1, "metric").msg(5, newRec().msg(9, newRec().float(3, math.NaN()))), syntax, "metric", "not a finite number"},
		{"span without traceId", spanRec(newRec().str(2, sid).str(5, "n").str(6, "generic").time(8, 1740830400, 0)), invalid, "tracing", "exportedSpan.traceId: empty"},
		{"span time out of range", spanRec(goodSpan().time(9, -1e11, 0)), invalid, "tracing", "outside the storable range"},
		{"end before start", spanRec(goodSpan().time(9, 1740830399, 0)), invalid, "tracing", "before startTime"},
		{"metric value NaN", newRec().str(1, "metric").msg(5, newRec().str(1, "m").time(2, 1740830400, 0).str(5, "x").float(6, math.Inf(1))), invalid, "metric", "not a finite number"},
		{"unknown event type", newRec().str(1, "nope"), invalid, "", `unknown event type "nope"`},
		{"schema version too new", newRec().str(1, "span_ended").varint(2, 4).msg(3, goodSpan()), version, "tracing", "unsupported schema version: 2"},
		{"stray payload", spanRec(goodSpan()).msg(4, newRec()), invalid, "tracing", "log: unexpected for span_ended"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := schema.Decode(schema.CodecBinary, tc.data)
			if err == nil {
				t.Fatalf("Decode accepted it: %+v", ev)
			}
			var de *schema.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *schema.DecodeError", err, err)
			}
			if !tc.is(err) {
				t.Errorf("error %v is not of the expected kind", err)
			}
			if de.Signal != tc.signal {
				t.Errorf("signal %q, want %q", de.Signal, tc.signal)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

// TestDecodeBinaryAccepts covers what a valid record may hold beyond what EncodeBinary
// writes: unknown fields, fields in any order, repairable payloads.
func TestDecodeBinaryAccepts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		data  []byte
		check func(*testing.T, *schema.Event)
	}{
		{"unknown fields of every wire type are skipped", spanRec(goodSpan().varint(40, 1).str(41, "x").float(42, 1)).varint(30, 9),
			func(t *testing.T, ev *schema.Event) {
				if ev.Span.Name != "llm" {
					t.Errorf("name %q", ev.Span.Name)
				}
			}},
		{"fields in any order", newRec().msg(3, newRec().time(8, 1740830400, 5).str(6, "tool_call").str(5, "n").str(2, "00F067AA0BA902B7").str(1, tid)).str(1, "span_started"),
			func(t *testing.T, ev *schema.Event) {
				s := ev.Span
				if s.SpanID != "00f067aa0ba902b7" || s.Version != 1 || s.Event != schema.SpanStarted || s.StartTime.Nanosecond() != 5 {
					t.Errorf("not normalised as JSON is: %+v", s)
				}
			}},
		{"payload whitespace dropped", spanRec(goodSpan().str(10, " {\"a\":1}\n")),
			func(t *testing.T, ev *schema.Event) {
				if string(ev.Span.Attributes) != `{"a":1}` {
					t.Errorf("attributes %q", ev.Span.Attributes)
				}
			}},
		{"lone surrogate repaired", spanRec(goodSpan().str(12, `"cut \ud83d"`)),
			func(t *testing.T, ev *schema.Event) {
				if string(ev.Span.Input) != `"cut \ufffd"` || len(ev.Repairs) != 1 || ev.Repairs[0] != schema.RepairLoneSurrogate {
					t.Errorf("input %q, repairs %v", ev.Span.Input, ev.Repairs)
				}
			}},
		{"context ids promoted from metadata", spanRec(goodSpan().str(11, `{"userId":"u","threadId":"t"}`).msg(7, newRec().str(18, "mine"))),
			func(t *testing.T, ev *schema.Event) {
				if c := ev.Span.Correlation; c.UserID != "u" || c.ThreadID != "mine" {
					t.Errorf("userId %q (want u), threadId %q (want the explicit mine)", c.UserID, c.ThreadID)
				}
			}},
		{"empty tags and correlation stay present", newRec().str(1, "log").msg(4, newRec().str(1, "l").time(2, 1740830400, 0).str(5, "info").msg(8, newRec()).bytes(10, nil)),
			func(t *testing.T, ev *schema.Event) {
				if ev.Log.Tags == nil || ev.Log.Correlation == nil {
					t.Errorf("tags %#v, correlation %#v", ev.Log.Tags, ev.Log.Correlation)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := schema.Decode(schema.CodecBinary, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, ev)
		})
	}
}

// TestEncodeBinaryRejects: what JSON cannot carry, the binary codec does not write.
func TestEncodeBinaryRejects(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	span := func(f func(*schema.Span)) *schema.Event {
		s := &schema.Span{TraceID: tid, SpanID: sid, Name: "n", Type: schema.Generic, StartTime: t0}
		f(s)
		return &schema.Event{Type: schema.SpanEnded, Span: s}
	}
	nan := math.NaN()
	for name, ev := range map[string]*schema.Event{
		"invalid UTF-8":     span(func(s *schema.Span) { s.Name = "\xff" }),
		"invalid payload":   span(func(s *schema.Span) { s.Input = []byte(`{`) }),
		"invalid tag":       span(func(s *schema.Span) { s.Tags = []string{"\xfe"} }),
		"NaN metric value":  {Type: schema.MetricEvent, Metric: &schema.Metric{MetricID: "m", Value: nan}},
		"NaN estimatedCost": {Type: schema.MetricEvent, Metric: &schema.Metric{CostContext: &schema.CostContext{EstimatedCost: &nan}}},
	} {
		if _, err := schema.EncodeBinary(nil, ev); err == nil {
			t.Errorf("%s: EncodeBinary accepted it", name)
		}
		if _, err := schema.Encode(nil, ev); err == nil {
			t.Errorf("%s: Encode (JSON) accepted it: the codecs should agree", name)
		}
	}
	if _, err := schema.EncodeAs(nil, "nope", span(func(*schema.Span) {})); !errors.Is(err, schema.ErrUnknownCodec) {
		t.Errorf("EncodeAs with an unknown codec: %v", err)
	}
}

// TestDecodeBinaryBoundedAllocation: a record that claims huge lengths or counts
// makes Decode allocate in proportion to the record, not to the claim.
func TestDecodeBinaryBoundedAllocation(t *testing.T) {
	many := newRec().str(1, "log").msg(4, newRec().bytes(10, make([]byte, 4096))) // 4096 empty tags
	for name, data := range map[string][]byte{
		"length 2^62":       binary.AppendUvarint(newRec().key(3, 1), 1<<62),
		"nested 2^40":       spanRec(binary.AppendUvarint(goodSpan().key(12, 1), 1<<40)),
		"max varint":        append(newRec().key(1, 1), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"4096 empty tags":   many,
		"field number 2^60": binary.AppendUvarint(rec{1}, 1<<62),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 10 {
			_, _ = schema.Decode(schema.CodecBinary, data)
		}
		runtime.ReadMemStats(&after)
		if per := (after.TotalAlloc - before.TotalAlloc) / 10; per > uint64(64*len(data))+16<<10 {
			t.Errorf("%s: %d bytes allocated per decode of a %d-byte record", name, per, len(data))
		}
	}
}

// TestDecodeBinaryAllocs: a span from the Go producer costs two allocations, the
// event with its span and one string for all its string fields.
func TestDecodeBinaryAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts mean nothing under the race detector")
	}
	data, err := schema.EncodeBinary(nil, &schema.Event{Type: schema.SpanEnded, Span: &schema.Span{
		TraceID: tid, SpanID: sid, Name: "llm", Type: schema.ModelGeneration, Version: 1,
		StartTime: time.Unix(1740830400, 0), EndTime: time.Unix(1740830401, 0),
		Correlation: schema.Correlation{ServiceName: "bench"}, Input: []byte(`"hello"`), Attributes: []byte(`{"model":"m"}`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := schema.Decode(schema.CodecBinary, data); err != nil {
			t.Fatal(err)
		}
	}); n > 2 {
		t.Errorf("%.0f allocations per decode, want at most 2", n)
	}
}

// FuzzDecodeBinary feeds arbitrary bytes to the binary decoder: it never panics,
// every error is a documented kind, and what it accepts is valid and survives a round
// trip. The seeds are the binary forms of the JSON fuzz seeds that decode, and
// truncations and bit flips of them.
func FuzzDecodeBinary(f *testing.F) {
	for _, s := range fuzzSeeds() {
		ev, err := schema.Decode(schema.CodecJSON, s)
		if err != nil {
			continue
		}
		b, err := schema.EncodeBinary(nil, ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		if len(b) > 10 {
			c := append([]byte(nil), b...)
			c[10] ^= 0x40
			f.Add(c)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sniffed := schema.SniffCodecSignal(schema.CodecBinary, data)
		ev, err := schema.Decode(schema.CodecBinary, data)
		if err != nil {
			var (
				de *schema.DecodeError
				se *schema.SyntaxError
				ve *schema.ValidationError
			)
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *schema.DecodeError", err, err)
			}
			if !errors.As(err, &se) && !errors.As(err, &ve) && !errors.Is(err, schema.ErrUnsupportedVersion) {
				t.Fatalf("unclassified error %T %v", err, err)
			}
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("Decode accepted an event that Validate rejects: %v", err)
		}
		if sniffed != ev.Signal() {
			t.Fatalf("SniffCodecSignal says %q, Decode read %q", sniffed, ev.Signal())
		}
		checkBinaryRoundTrip(t, ev)
	})
}

// FuzzBinaryRoundTrip: every JSON record the JSON codec accepts gives, through the
// binary codec, the same event.
func FuzzBinaryRoundTrip(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := schema.Decode(schema.CodecJSON, data)
		if err != nil {
			return
		}
		checkBinaryRoundTrip(t, ev)
	})
}

// TestSniffCodecSignal: a record too large to decode still names its signal, in
// either codec.
func TestSniffCodecSignal(t *testing.T) {
	logBin := newRec().str(1, "log").msg(4, newRec())
	for _, tc := range []struct {
		codec string
		data  []byte
		want  schema.Signal
	}{
		{schema.CodecBinary, spanRec(goodSpan()), schema.SignalTracing},
		{schema.CodecBinary, newRec().varint(2, 2).msg(4, newRec()).str(1, "log"), schema.SignalLog},
		{schema.CodecBinary, logBin[:3], ""},
		{schema.CodecBinary, []byte(`{"type":"log"}`), ""},
		{schema.CodecJSON, []byte(`{"type":"log"`), schema.SignalLog},
		{"", []byte(`{"type":"metric"}`), schema.SignalMetric},
		{"avro", []byte(`{"type":"log"}`), ""},
	} {
		if got := schema.SniffCodecSignal(tc.codec, tc.data); got != tc.want {
			t.Errorf("SniffCodecSignal(%q, %q) = %q, want %q", tc.codec, tc.data, got, tc.want)
		}
	}
}

// TestBinaryPayloadsCannotOverwriteTheRecord: a decoded payload is a subslice of the
// record whose capacity ends with it, so appending to it copies.
func TestBinaryPayloadsCannotOverwriteTheRecord(t *testing.T) {
	data := spanRec(goodSpan().str(10, "{} ").str(12, `"x"`))
	ev, err := schema.Decode(schema.CodecBinary, data)
	if err != nil {
		t.Fatal(err)
	}
	before := string(data)
	_ = append(ev.Span.Attributes, "XXXXXXXX"...)
	if string(data) != before {
		t.Fatal("appending to a decoded payload wrote into the record")
	}
}

// TestEncodeBinaryIsDeterministic: labels are written in key order.
func TestEncodeBinaryIsDeterministic(t *testing.T) {
	ev := &schema.Event{Type: schema.MetricEvent, Metric: &schema.Metric{MetricID: "m", Name: "x", Timestamp: time.Unix(1, 0),
		Labels: map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6"}}}
	first, err := schema.EncodeBinary(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if b, _ := schema.EncodeBinary(nil, ev); string(b) != string(first) {
			t.Fatal("two encodings of one event differ")
		}
	}
}

// FuzzJSONCheck: the binary codec's fast payload check accepts nothing jsontext
// rejects (what it is unsure of, jsontext decides), and it does accept the common
// shapes, or it would not be fast.
func FuzzJSONCheck(f *testing.F) {
	for _, s := range []string{`{"model":"gpt-4o-mini","usage":{"inputTokens":12}}`, `"plain prose"`, `"tab\there é ✓"`,
		`[1,-2.5e+3,0,true,false,null,{},[]]`, `{"a":1,"a":2}`, `{"a":{"a":1},"b":[{"a":1},{"a":2}]}`, `"\ud800"`, `"\u00e9"`,
		`01`, `1.`, `-`, `"a` + "\x01" + `"`, "\"\xff\"", `{"a" : [ 1 , 2 ] }`, `[1,]`, `{"a":1,}`, `{,}`, `tru`, `nul`, `"\q"`,
		"\"\xed\xa0\x80\"", `{"\n":1,"\u000a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if schema.JSONCheck(v) && !jsontext.Value(v).IsValid() {
			t.Fatalf("the fast check accepted %q, which jsontext rejects", v)
		}
	})
}

func TestJSONCheckAcceptsCommonShapes(t *testing.T) {
	for _, s := range []string{`{"model":"gpt-4o-mini","usage":{"inputTokens":12,"cost":1.5e-3}}`, `"plain prose, with \"quotes\"\n"`,
		`{"messages":[{"role":"user","content":"héllo ✓"}],"n":null,"ok":true}`, `[]`, `{}`, `-0.5`, `" "`} {
		if !schema.JSONCheck([]byte(s)) {
			t.Errorf("the fast check is unsure of %s", s)
		}
	}
	for _, s := range []string{`{"a":1,"a":2}`, `"\ud800"`, `[1,]`, `{"a":1,}`, `01`, `"x`, `{"a" 1}`, `[1 2]`, `{"a":1]`, `[}`} {
		if schema.JSONCheck([]byte(s)) {
			t.Errorf("the fast check accepted %s", s)
		}
	}
}
