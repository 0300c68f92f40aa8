package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

// ceilingChunk is about how many spans are generated, then appended, at a time.
const ceilingChunk = 10000

// chunkOf is how many spans the ceiling generates at a time for batches of
// batchSize: whole batches, at least ceilingChunk spans. A batch cut short by its
// chunk would commit fewer rows than the drain's, and DuckDB's cost per row depends
// on the commit's size (a commit of a whole row group or more took a third less CPU
// per row; README, Performance).
func chunkOf(batchSize int) int {
	return batchSize * ((ceilingChunk + batchSize - 1) / batchSize)
}

// appendCeiling measures DuckDB's append ceiling on the drain's own rows: the
// workload's spans (the same generator, no Kafka; the wire round trip that makes
// them the drain's rows is not timed), converted by the sink and appended with the
// Appender on one connection into a fresh database that the sink created with the
// drain's configuration, one Appender and one commit per batch of the drain's
// max_batch_size: the drain must make every batch durable before it commits the
// batch's offsets, and DuckDB's cost per row depends on the commit size (each
// commit writes its rows to the WAL). Only the appends are timed. It returns spans
// per second and the process's CPU milliseconds per span during the appends
// (DuckDB's threads included): the CPU floor of any drain into the same file.
func appendCeiling(ctx context.Context, o Options, name string) (rate, cpuMs float64, err error) {
	cfg := o.config().Sink.DuckDB
	cfg.Path = filepath.Join(o.DBDir, name+".duckdb")
	w, err := duckdb.Open(ctx, cfg)
	if err != nil {
		return 0, 0, fmt.Errorf("bench: append ceiling: %w", err)
	}
	defer func() {
		_ = w.Close()
		_ = os.Remove(cfg.Path)
		_ = os.Remove(cfg.Path + ".wal")
	}()
	batchSize := o.config().Pipeline.MaxBatchSize
	gen := newSpanGen(o.PayloadAvg, drainStream)
	chunk := chunkOf(batchSize)
	spans := make([]*schema.Span, 0, chunk)
	var took time.Duration
	var cpu float64
	for done := 0; done < o.Spans; done += len(spans) {
		spans = spans[:0]
		for range min(chunk, o.Spans-done) {
			s, _ := gen.next()
			row, err := stored(s, o.Lifecycle == "updates")
			if err != nil {
				return 0, 0, err
			}
			spans = append(spans, row)
		}
		start, cpu0 := time.Now(), cpuSeconds()
		for batch := range slices.Chunk(spans, batchSize) {
			if err := w.AppendSpans(ctx, batch); err != nil {
				return 0, 0, fmt.Errorf("bench: append ceiling: %w", err)
			}
		}
		took += time.Since(start)
		cpu += cpuSeconds() - cpu0
	}
	return float64(o.Spans) / took.Seconds(), cpu / float64(o.Spans) * 1000, nil
}
