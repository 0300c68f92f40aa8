package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
)

// textGen writes prose-like payloads that compress about as well as LLM text (zstd
// 3-4x): words drawn from a vocabulary of 4096 random ones. A repeated phrase would
// compress 20x and understate what a consumer decompresses and holds per fetch.
type textGen struct {
	rnd   *rand.Rand
	words []string
	b     strings.Builder
}

func newTextGen(rnd *rand.Rand) *textGen {
	g := &textGen{rnd: rnd}
	const letters = "etaoinshrdlcumwfgypbvkjxqz"
	for range 4096 {
		w := make([]byte, 2+rnd.IntN(9))
		for i := range w {
			// Skewed towards frequent letters, as in English.
			w[i] = letters[min(rnd.IntN(len(letters)), rnd.IntN(len(letters)))]
		}
		g.words = append(g.words, string(w))
	}
	return g
}

func (g *textGen) next(n int) string {
	g.b.Reset()
	g.b.Grow(n + 16)
	for g.b.Len() < n {
		g.b.WriteString(g.words[g.rnd.IntN(len(g.words))])
		g.b.WriteByte(' ')
	}
	return g.b.String()[:n]
}

// spanGen is the workload: every run draws the same spans in the same order, so that
// the append ceiling stores the rows the drain stores.
type spanGen struct {
	rnd        *rand.Rand
	text       *textGen
	payloadAvg int
	i          int
}

// The phases' span streams. The drain and the ceiling share one, so that the
// ceiling stores the drain's rows; the latency phase has its own, so that its spans
// are new rather than newer versions of the drain's first spans, whose older
// versions compaction would delete while the latency phase is measured.
const (
	drainStream   uint64 = 2
	latencyStream uint64 = 3
)

// newSpanGen returns a deterministic generator of the given stream.
func newSpanGen(payloadAvg int, stream uint64) *spanGen {
	rnd := rand.New(rand.NewPCG(1, stream))
	return &spanGen{rnd: rnd, text: newTextGen(rnd), payloadAvg: payloadAvg}
}

// next returns the next span as its ended snapshot (version set by the caller) and
// its payload bytes.
func (g *spanGen) next() (schema.Span, int) {
	// Sizes spread from 0.25x to 1.75x the average, like mixed tool and LLM spans.
	size := g.payloadAvg/4 + g.rnd.IntN(g.payloadAvg*3/2+1)
	in, out := size/3, size-size/3
	now := time.Now()
	s := schema.Span{
		TraceID: fmt.Sprintf("%016x%016x", g.rnd.Uint64(), uint64(g.i)/5), SpanID: fmt.Sprintf("%016x", g.rnd.Uint64()),
		Name: "llm", Type: schema.ModelGeneration, StartTime: now, EndTime: now,
		Correlation: schema.Correlation{ServiceName: benchService},
		Attributes:  producer.JSON(map[string]any{"model": "gpt-4o-mini", "usage": map[string]int{"inputTokens": size}}),
		Input:       producer.JSON(g.text.next(in)),
		Output:      producer.JSON(g.text.next(out)),
	}
	g.i++
	return s, size
}

// benchService is the producer's service name, set on the spans too so that the
// ceiling's rows carry what the producer would have stamped.
const benchService = "bench"

// stored returns the span as the drain's sink receives its ended snapshot: encoded
// and decoded by the wire codec (which sets the event and normalises), outside
// anything timed.
func stored(ended schema.Span, updates bool) (*schema.Span, error) {
	evs := lifecycle(ended, updates)
	data, err := schema.Encode(nil, &evs[len(evs)-1])
	if err != nil {
		return nil, fmt.Errorf("bench: encode span: %w", err)
	}
	ev, err := schema.Decode(schema.CodecJSON, data)
	if err != nil {
		return nil, fmt.Errorf("bench: decode span: %w", err)
	}
	return ev.Span, nil
}

// lifecycle returns the snapshots the producer emits for one span: the ended one
// alone (insert-only), or started, updated and ended with rising versions.
func lifecycle(ended schema.Span, updates bool) []schema.Event {
	if !updates {
		ended.Version = 1
		return []schema.Event{{Type: schema.SpanEnded, Span: &ended}}
	}
	running := ended
	running.EndTime, running.Output = time.Time{}, nil
	started, updated := running, running
	started.Version, updated.Version, ended.Version = 1, 2, 3
	return []schema.Event{
		{Type: schema.SpanStarted, Span: &started},
		{Type: schema.SpanUpdated, Span: &updated},
		{Type: schema.SpanEnded, Span: &ended},
	}
}

// produce emits n spans of the stream (each with its lifecycle) at rate spans/s
// (0 = unlimited).
// The ended snapshot's end time is stamped at Emit: the latency phase measures from it.
func produce(ctx context.Context, o Options, topic string, stream uint64, n int, rate float64) (records int, bytes int64, dur time.Duration, err error) {
	cfg := producer.DefaultConfig()
	cfg.Brokers, cfg.Topic, cfg.ServiceName = o.Brokers, topic, benchService
	cfg.OnBufferFull, cfg.BlockTimeout = producer.OnFullBlock, time.Minute
	cfg.Redact.Disabled = true // measured separately (producer benchmarks)
	if o.Codec != "" {
		cfg.Codec = o.Codec
	}
	var failed atomic.Int64
	var firstDrop sync.Once
	var firstErr error
	p, err := producer.New(cfg, producer.WithOnDrop(func(d producer.Drop) {
		failed.Add(1)
		firstDrop.Do(func() { firstErr = fmt.Errorf("%s: %w", d.Reason, d.Err) })
	}))
	if err != nil {
		return 0, 0, 0, err
	}
	gen := newSpanGen(o.PayloadAvg, stream)
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		s, size := gen.next()
		for _, e := range lifecycle(s, o.Lifecycle == "updates") {
			if e.Type == schema.SpanEnded {
				e.Span.EndTime = time.Now()
			}
			if err := p.Emit(&e); err == nil {
				records++
				bytes += int64(size)
			}
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := p.Close(fctx); err != nil {
		return 0, 0, 0, err
	}
	if f := failed.Load(); f > 0 {
		return 0, 0, 0, fmt.Errorf("bench: producer dropped %d records (first: %v)", f, firstErr)
	}
	return records, bytes, time.Since(start), ctx.Err()
}
