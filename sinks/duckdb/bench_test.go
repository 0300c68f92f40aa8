package duckdb_test

import (
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
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

// BenchmarkWriteVsAppendCeiling measures the writer against DuckDB's own ceiling in
// the same run: every iteration writes a batch of new spans through Writer.Write
// into one file, then appends the same rows, built beforehand, with a bare appender
// into a key-less table of the same shape in another file (same settings). The two
// alternate, so that a shared, noisy machine slows both alike; share_of_ceiling is
// the writer's rows/s over the appender's. "updates" writes three snapshots of every
// span (started, updated, ended), in three batches, as batch-with-updates does.
func BenchmarkWriteVsAppendCeiling(b *testing.B) {
	for _, lifecycle := range []string{"insert-only", "updates"} {
		b.Run(lifecycle, func(b *testing.B) {
			const size = 1000
			w := openWriter(b, dbPath(b))
			ceiling := openWriter(b, dbPath(b))
			if _, err := ceiling.DB().ExecContext(b.Context(), "CREATE TABLE ceiling AS SELECT * FROM span_versions LIMIT 0"); err != nil {
				b.Fatal(err)
			}
			conn, err := ceiling.DB().Conn(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			events := []schema.EventType{schema.SpanEnded}
			if lifecycle == "updates" {
				events = []schema.EventType{schema.SpanStarted, schema.SpanUpdated, schema.SpanEnded}
			}
			var writerTime, ceilingTime time.Duration
			rows, iter := 0, 0
			for b.Loop() {
				traceID := fmt.Sprintf("%032x", iter)
				var built [][]driver.Value
				var batches []*pipeline.Batch
				for v, ev := range events {
					batch := benchBatch(size, traceID)
					for _, s := range batch.Spans {
						s.Version, s.Event = uint64(v+1), ev
						row, err := duckdb.SpanVersionRow(s, int64(len(built)), time.Now().UTC())
						if err != nil {
							b.Fatal(err)
						}
						built = append(built, row)
					}
					batches = append(batches, batch)
				}
				start := time.Now()
				for _, batch := range batches {
					if err := w.Write(b.Context(), batch); err != nil {
						b.Fatal(err)
					}
				}
				writerTime += time.Since(start)
				start = time.Now()
				err := conn.Raw(func(dc any) error {
					app, err := duckdbdriver.NewAppender(dc.(driver.Conn), "", "main", "ceiling")
					if err != nil {
						return err
					}
					for _, row := range built {
						if err := app.AppendRow(row...); err != nil {
							return err
						}
					}
					return app.Close()
				})
				if err != nil {
					b.Fatal(err)
				}
				ceilingTime += time.Since(start)
				rows += len(built)
				iter++
			}
			b.ReportMetric(float64(rows)/writerTime.Seconds(), "writer_rows/s")
			b.ReportMetric(float64(rows)/ceilingTime.Seconds(), "ceiling_rows/s")
			b.ReportMetric(ceilingTime.Seconds()/writerTime.Seconds(), "share_of_ceiling")
		})
	}
}
