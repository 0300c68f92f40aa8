package schema_test

import (
	stdjson "encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/spanpipe/spanpipe/schema"
)

// benchSpan is a realistic model_generation span_ended event as Mastra exports it
// (about 1.1 KB): model, provider and usage attributes, context ids in metadata, the
// input messages and the output text.
const benchSpan = `{"type":"span_ended","exportedSpan":{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736",` +
	`"id":"00f067aa0ba902b7","parentSpanId":"b7ad6b7169203331","name":"llm: 'gpt-4o-mini'","type":"model_generation",` +
	`"entityType":"agent","entityId":"support-agent","entityName":"Support Agent",` +
	`"startTime":"2025-03-01T12:00:00.120Z","endTime":"2025-03-01T12:00:02.845Z",` +
	`"attributes":{"model":"gpt-4o-mini","provider":"openai.chat","responseModel":"gpt-4o-mini-2024-07-18",` +
	`"responseId":"chatcmpl-AbC123xyz789","resultType":"response_generation","finishReason":"stop","streaming":true,` +
	`"temperature":0.2,"maxOutputTokens":1024,"usage":{"inputTokens":412,"outputTokens":96,` +
	`"inputDetails":{"text":412,"cacheRead":0},"outputDetails":{"text":96,"reasoning":0}}},` +
	`"metadata":{"userId":"user-8f3a2c","threadId":"thread-2b91e0","resourceId":"support-agent","runId":"run-5d7e1a",` +
	`"environment":"production","serviceName":"support-api"},` +
	`"input":{"messages":[{"role":"system","content":"You are a helpful support agent for Acme Corp. Answer briefly and politely."},` +
	`{"role":"user","content":"My order #48213 has not arrived yet. Can you check its status, please?"}]},` +
	`"output":{"text":"I checked order #48213: it shipped on 27 February and is due tomorrow. You will get a tracking email shortly."},` +
	`"isRootSpan":false}}`

// benchSpanLarge is the same span with about 100 KB of conversation history.
var benchSpanLarge = func() string {
	var msgs []string
	for size := 0; size < 100<<10; {
		m := fmt.Sprintf(`{"role":"user","content":"Message %d: %s"},{"role":"assistant","content":"%s"}`,
			len(msgs), strings.Repeat("the quick brown fox jumps over the lazy dog ", 8),
			strings.Repeat("Sure — here is what I found about your order. ", 6))
		msgs = append(msgs, m)
		size += len(m)
	}
	return strings.Replace(benchSpan, `{"messages":[`, `{"messages":[`+strings.Join(msgs, ",")+`,`, 1)
}()

var benchPayloads = []struct {
	name string
	data []byte
}{
	{"1KB", []byte(benchSpan)},
	{"100KB", []byte(benchSpanLarge)},
}

// reportSpans adds a spans/s metric (one span per op) next to ns/op and MB/s, and
// cpu-ns/op, the process's CPU time per op since cpu0 (GC included), which a busy
// machine inflates less than wall time.
func reportSpans(b *testing.B, cpu0 time.Duration) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "spans/s")
	}
	if cpu0 > 0 {
		b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkDecode measures schema.Decode: parsing with go-json-experiment, validation
// and normalisation (including the second pass over metadata for context ids).
func BenchmarkDecode(b *testing.B) {
	for _, p := range benchPayloads {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p.data)))
			cpu0 := processCPU()
			for b.Loop() {
				if _, err := schema.Decode(schema.CodecJSON, p.data); err != nil {
					b.Fatal(err)
				}
			}
			reportSpans(b, cpu0)
		})
	}
}

// BenchmarkUnmarshalV2 is go-json-experiment's Unmarshal alone into the same type,
// without validation or normalisation: the parsing share of BenchmarkDecode.
func BenchmarkUnmarshalV2(b *testing.B) {
	for _, p := range benchPayloads {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p.data)))
			cpu0 := processCPU()
			for b.Loop() {
				var ev schema.Event
				if err := json.Unmarshal(p.data, &ev); err != nil {
					b.Fatal(err)
				}
			}
			reportSpans(b, cpu0)
		})
	}
}

// BenchmarkDecodeStdlib decodes the same bytes into the same type with encoding/json,
// as a speed reference only: it neither validates nor normalises. (jsontext.Value
// implements json.Unmarshaler, so encoding/json can fill the raw payload fields.)
func BenchmarkDecodeStdlib(b *testing.B) {
	for _, p := range benchPayloads {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p.data)))
			cpu0 := processCPU()
			for b.Loop() {
				var ev schema.Event
				if err := stdjson.Unmarshal(p.data, &ev); err != nil {
					b.Fatal(err)
				}
			}
			reportSpans(b, cpu0)
		})
	}
}

// BenchmarkEncode measures schema.Encode into a reused buffer.
func BenchmarkEncode(b *testing.B) {
	for _, p := range benchPayloads {
		b.Run(p.name, func(b *testing.B) {
			ev, err := schema.Decode("", p.data)
			if err != nil {
				b.Fatal(err)
			}
			buf, _ := schema.Encode(nil, ev)
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			cpu0 := processCPU()
			for b.Loop() {
				if buf, err = schema.Encode(buf[:0], ev); err != nil {
					b.Fatal(err)
				}
			}
			reportSpans(b, cpu0)
		})
	}
}

// BenchmarkEncodeStdlib encodes the same event with encoding/json, as a reference.
func BenchmarkEncodeStdlib(b *testing.B) {
	for _, p := range benchPayloads {
		b.Run(p.name, func(b *testing.B) {
			ev, err := schema.Decode("", p.data)
			if err != nil {
				b.Fatal(err)
			}
			out, _ := stdjson.Marshal(ev)
			b.ReportAllocs()
			b.SetBytes(int64(len(out)))
			cpu0 := processCPU()
			for b.Loop() {
				if _, err := stdjson.Marshal(ev); err != nil {
					b.Fatal(err)
				}
			}
			reportSpans(b, cpu0)
		})
	}
}

// TestBenchPayloads keeps the benchmark inputs honest: they decode, they are the
// advertised sizes, and encoding/json reads them into the same event.
func TestBenchPayloads(t *testing.T) {
	if n := len(benchSpan); n < 1000 || n > 1300 {
		t.Errorf("benchSpan is %d bytes, want about 1.1 KB", n)
	}
	if n := len(benchSpanLarge); n < 100<<10 || n > 110<<10 {
		t.Errorf("benchSpanLarge is %d bytes, want about 100 KB", n)
	}
	for _, p := range benchPayloads {
		ev, err := schema.Decode("", p.data)
		if err != nil {
			t.Fatalf("%s: Decode: %v", p.name, err)
		}
		if ev.Span.UserID != "user-8f3a2c" || ev.Span.Version != 3 {
			t.Errorf("%s: got userId %q version %d, want promotion and derivation", p.name, ev.Span.UserID, ev.Span.Version)
		}
		var std schema.Event
		if err := stdjson.Unmarshal(p.data, &std); err != nil {
			t.Fatalf("%s: encoding/json: %v", p.name, err)
		}
		// encoding/json does not normalise; apply what Decode adds before comparing.
		std.SchemaVersion, std.Span.Version, std.Span.Correlation, std.Span.Event = ev.SchemaVersion, ev.Span.Version, ev.Span.Correlation, ev.Span.Event
		if !eventsEqual(&std, ev) {
			t.Errorf("%s: encoding/json read a different event:\n%s", p.name, diffEvents(&std, ev))
		}
	}
}

// BenchmarkDecodeGoProducer decodes the span our Go producer writes for `spanpipe
// bench` (schemaVersion and version set, few fields, ~1 KB of prose in input and
// output): a shape where validating the payload strings is most of the work.
func BenchmarkDecodeGoProducer(b *testing.B) {
	data := goProducerSpan(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	cpu0 := processCPU()
	for b.Loop() {
		if _, err := schema.Decode(schema.CodecJSON, data); err != nil {
			b.Fatal(err)
		}
	}
	reportSpans(b, cpu0)
}

// goProducerSpan is the JSON of the span BenchmarkDecodeGoProducer decodes.
func goProducerSpan(b *testing.B) []byte {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	text := strings.Repeat("lorem ipsum dolor sit amet consectetur ", 26)
	data, err := schema.Encode(nil, &schema.Event{Type: schema.SpanEnded, Span: &schema.Span{
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", Name: "llm", Type: schema.ModelGeneration,
		StartTime: t0, EndTime: t0.Add(time.Second), Correlation: schema.Correlation{ServiceName: "bench"},
		Attributes: []byte(`{"model":"gpt-4o-mini","usage":{"inputTokens":1024}}`),
		Input:      []byte(`"` + text[:len(text)/3] + `"`), Output: []byte(`"` + text[len(text)/3:] + `"`), Version: 1,
	}})
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkDecodeBinary is BenchmarkDecode and BenchmarkDecodeGoProducer for the same
// events written with schema.CodecBinary.
func BenchmarkDecodeBinary(b *testing.B) {
	payloads := append(benchPayloads[:len(benchPayloads):len(benchPayloads)], struct {
		name string
		data []byte
	}{"GoProducer", goProducerSpan(b)})
	for _, p := range payloads {
		ev, err := schema.Decode(schema.CodecJSON, p.data)
		if err != nil {
			b.Fatal(err)
		}
		data, err := schema.EncodeBinary(nil, ev)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			cpu0 := processCPU()
			for b.Loop() {
				if _, err := schema.Decode(schema.CodecBinary, data); err != nil {
					b.Fatal(err)
				}
			}
			reportSpans(b, cpu0)
		})
	}
}

// BenchmarkEncodeBinary is BenchmarkEncode with schema.CodecBinary.
func BenchmarkEncodeBinary(b *testing.B) {
	for _, p := range benchPayloads {
		ev, err := schema.Decode(schema.CodecJSON, p.data)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				if buf, err = schema.EncodeBinary(buf[:0], ev); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}
