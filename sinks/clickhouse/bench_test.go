package clickhouse

import (
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/compress"
	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/schema"
)

// benchSpan returns an ended model_generation span of about 1 KB: ids, correlation,
// tags and JSON payloads as an agent run produces them.
func benchSpan(traceID, spanID string) *schema.Span {
	return &schema.Span{
		TraceID:      traceID,
		SpanID:       spanID,
		ParentSpanID: "a1b2c3d4e5f60718",
		Name:         "llm: 'gpt-4o-mini'",
		Type:         schema.ModelGeneration,
		Correlation: schema.Correlation{
			EntityType:     "agent",
			EntityID:       "weather-agent",
			EntityName:     "Weather Agent",
			RootEntityType: "workflow",
			RootEntityID:   "trip-planner",
			UserID:         "user-4711",
			OrganizationID: "org-acme",
			ResourceID:     "resource-42",
			RunID:          "run-0f9e8d7c",
			ThreadID:       "thread-5a4b3c",
			Environment:    "production",
			ServiceName:    "planner-api",
			Tags:           []string{"prod", "eu-west-1"},
		},
		StartTime: time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC),
		EndTime:   time.Date(2026, 3, 14, 15, 9, 27, 250000000, time.UTC),
		Attributes: jsontext.Value(`{"model":"gpt-4o-mini","provider":"openai","streaming":false,` +
			`"parameters":{"temperature":0.2,"maxOutputTokens":512},"usage":{"inputTokens":412,` +
			`"outputTokens":88,"inputDetails":{"cacheRead":256}},"finishReason":"stop"}`),
		Metadata: jsontext.Value(`{"userId":"user-4711","threadId":"thread-5a4b3c","runId":"run-0f9e8d7c","region":"eu-west-1"}`),
		Input: jsontext.Value(`{"messages":[{"role":"system","content":"You are a helpful travel assistant. ` +
			`Answer briefly and cite the forecast source."},{"role":"user","content":"What will the weather ` +
			`be like in Lisbon tomorrow afternoon, and should I bring an umbrella?"}]}`),
		Output: jsontext.Value(`{"text":"Tomorrow afternoon in Lisbon: partly cloudy, 19°C, 10% chance of rain ` +
			`(source: IPMA). No umbrella needed.","toolCalls":[]}`),
		Version: 3,
	}
}

func benchSpans(n int) ([]*schema.Span, int64) {
	spans := make([]*schema.Span, n)
	var bytes int64
	for i := range spans {
		spans[i] = benchSpan(fmt.Sprintf("%032x", i/8), fmt.Sprintf("%016x", i))
		_, size := spanMeta(spans[i])
		bytes += int64(size)
	}
	return spans, bytes
}

// BenchmarkSpanColumns measures the client-side cost of inserting spans, without
// network: "convert" fills the writer's native columns with the spans (what Write
// does per insert); "write" adds writing them as the Native block of an uncompressed
// connection (the loopback default: small values copied into the connection's
// buffer, payloads written in place); "encode" instead encodes the whole block into
// the buffer, as for a compressed connection, and "encode+LZ4" adds the compression
// used across a network (these payloads repeat, so it is cheaper here
// than on LLM text: `spanpipe bench` measures that). The columns and the buffer are
// reused, as the writer reuses them. SetBytes is the estimated uncompressed row size.
func BenchmarkSpanColumns(b *testing.B) {
	for _, size := range []int{100, 1000, 10000} {
		spans, bytes := benchSpans(size)
		b.Run("convert/size="+strconv.Itoa(size), func(b *testing.B) {
			var c spanCols
			b.SetBytes(bytes)
			b.ReportAllocs()
			for b.Loop() {
				_ = convert(b, &c, spans)
			}
			reportRowsPerSecond(b, size)
		})
		b.Run("write/size="+strconv.Itoa(size), func(b *testing.B) {
			var c spanCols
			w := chproto.NewWriter(io.Discard, new(chproto.Buffer))
			b.SetBytes(bytes)
			b.ReportAllocs()
			for b.Loop() {
				in := convert(b, &c, spans)
				blk := chproto.Block{Columns: len(in), Rows: size}
				if err := blk.WriteBlock(w, chproto.Version, in); err != nil {
					b.Fatal(err)
				}
				if _, err := w.Flush(); err != nil {
					b.Fatal(err)
				}
			}
			reportRowsPerSecond(b, size)
		})
		for _, method := range []compress.Method{compress.None, compress.LZ4} {
			name := "encode"
			if method != compress.None {
				name += "+" + method.String()
			}
			b.Run(name+"/size="+strconv.Itoa(size), func(b *testing.B) {
				var (
					c   spanCols
					buf chproto.Buffer
				)
				cw := compress.NewWriter(compress.LevelZero, method)
				b.SetBytes(bytes)
				b.ReportAllocs()
				for b.Loop() {
					in := convert(b, &c, spans)
					buf.Reset()
					blk := chproto.Block{Columns: len(in), Rows: size}
					if err := blk.EncodeBlock(&buf, chproto.Version, in); err != nil {
						b.Fatal(err)
					}
					if method != compress.None {
						if err := cw.Compress(buf.Buf); err != nil {
							b.Fatal(err)
						}
					}
				}
				reportRowsPerSecond(b, size)
			})
		}
	}
}

// convert fills c with spans, as Write does for one insert, and returns its columns.
func convert(b *testing.B, c *spanCols, spans []*schema.Span) chproto.Input {
	c.reset(len(spans))
	for _, s := range spans {
		if err := c.add(s); err != nil {
			b.Fatal(err)
		}
	}
	return c.input()
}

func reportRowsPerSecond(b *testing.B, rows int) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(rows)*float64(b.N)/s, "rows/s")
	}
}
