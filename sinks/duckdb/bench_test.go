package duckdb_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/pipeline"
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

func benchBatch(size int, traceID string) *pipeline.Batch {
	b := &pipeline.Batch{Strategy: pipeline.BatchWithUpdates, Spans: make([]*schema.Span, size)}
	for i := range b.Spans {
		b.Spans[i] = benchSpan(traceID, fmt.Sprintf("%016x", i))
	}
	return b
}

func batchBytes(b *pipeline.Batch) int64 {
	var n int
	for _, s := range b.Spans {
		n += len(s.Attributes) + len(s.Metadata) + len(s.Input) + len(s.Output) + len(s.Name) +
			len(s.TraceID) + len(s.SpanID) + len(s.ParentSpanID) + 200 // correlation, times, flags
	}
	return int64(n)
}

// BenchmarkWriteSpans writes batches of ended spans into a file database: "insert"
// writes new spans every iteration (unique ids), "update" re-writes the same spans
// with a higher version, so every row is replaced.
func BenchmarkWriteSpans(b *testing.B) {
	for _, size := range []int{100, 1000, 10000} {
		b.Run("insert/size="+strconv.Itoa(size), func(b *testing.B) {
			w := openWriter(b, dbPath(b))
			batch := benchBatch(size, "")
			b.SetBytes(batchBytes(batch))
			b.ReportAllocs()
			iter := 0
			for b.Loop() {
				b.StopTimer()
				traceID := fmt.Sprintf("%032x", iter)
				for _, s := range batch.Spans {
					s.TraceID = traceID
				}
				b.StartTimer()
				if err := w.Write(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
				iter++
			}
			reportSpansPerSecond(b, iter*size)
		})
		b.Run("update/size="+strconv.Itoa(size), func(b *testing.B) {
			w := openWriter(b, dbPath(b))
			batch := benchBatch(size, strings.Repeat("0", 32))
			if err := w.Write(b.Context(), batch); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(batchBytes(batch))
			b.ReportAllocs()
			iter := 0
			for b.Loop() {
				for _, s := range batch.Spans {
					s.Version++
				}
				if err := w.Write(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
				iter++
			}
			reportSpansPerSecond(b, iter*size)
		})
	}
}

func reportSpansPerSecond(b *testing.B, spans int) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(spans)/s, "spans/s")
	}
}
