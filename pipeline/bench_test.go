package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kgo"
)

type nullSink struct{ caps pipeline.Capabilities }

func (s nullSink) Name() string                                 { return "null" }
func (s nullSink) Capabilities() pipeline.Capabilities          { return s.caps }
func (s nullSink) Write(context.Context, *pipeline.Batch) error { return nil }

// benchRecords builds n ~1 KB span records: each span as started then ended, the mix
// batch-with-updates coalesces and insert-only half skips.
func benchRecords(b *testing.B, n int) []*kgo.Record {
	recs := make([]*kgo.Record, 0, n)
	attrs := []byte(`{"model":"gpt-4o-mini","provider":"openai","usage":{"inputTokens":812,"outputTokens":96}}`)
	input := []byte(`[{"role":"user","content":"` + strings.Repeat("where is my order ", 30) + `"}]`)
	for i := 0; len(recs) < n; i++ {
		for _, typ := range []schema.EventType{schema.SpanStarted, schema.SpanEnded} {
			s := &schema.Span{TraceID: fmt.Sprintf("%032x", i/5), SpanID: fmt.Sprintf("%016x", i), Name: "llm", Type: schema.ModelGeneration,
				StartTime: t0, Attributes: attrs, Input: input, Version: 1,
				Correlation: schema.Correlation{ServiceName: "bench", UserID: "u1"}}
			if typ == schema.SpanEnded {
				s.EndTime, s.Version, s.Output = t0.Add(time.Second), 2, []byte(`{"text":"tomorrow"}`)
			}
			v, err := schema.Encode(nil, &schema.Event{Type: typ, Span: s})
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, &kgo.Record{Topic: "spans", Partition: int32(i % 4), Offset: int64(len(recs)), Key: []byte(s.TraceID), Value: v})
		}
	}
	return recs[:n]
}

// BenchmarkAddFlush measures the consumer's side of the pipeline per record: decode,
// validate, route, coalesce, seal and a no-op sink write.
func BenchmarkAddFlush(b *testing.B) {
	for _, st := range []pipeline.Strategy{pipeline.BatchWithUpdates, pipeline.InsertOnly} {
		for _, size := range []int{1, 10, 100, 1000, 10000} {
			b.Run(fmt.Sprintf("%s/batch=%d", st, size), func(b *testing.B) {
				cfg := pipeline.DefaultConfig()
				cfg.Strategy, cfg.MaxBatchSize, cfg.MaxBufferSize = st, size, max(size, 10000)
				p := newPipeline(b, cfg, nullSink{allCaps()}, &fakeDrops{})
				recs := benchRecords(b, 10000)
				var bytes int64
				for _, r := range recs {
					bytes += int64(len(r.Value))
				}
				b.SetBytes(bytes / int64(len(recs)))
				b.ReportAllocs()
				ctx := context.Background()
				i := 0
				for b.Loop() {
					if u := p.Add(recs[i%len(recs)]); u != nil {
						if err := p.Write(ctx, u); err != nil {
							b.Fatal(err)
						}
					}
					i++
				}
				b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}
