package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

// BenchmarkDuckDBSettings writes the workload's spans (1 KB payloads that compress
// like text) through the DuckDB sink's Write, in batches of the drain's
// max_batch_size, under memory_limit / checkpoint_threshold / row_group_size: the
// trade-off behind the defaults (issue 14). One iteration is one batch; run enough of them to
// cross a row group (122,880 rows) and several checkpoints, e.g.
//
//	go test -run '^$' -bench DuckDBSettings -benchtime 150x ./internal/bench/
//
// cpu_ms/span is the process's CPU (DuckDB's threads included) per span, Close (the
// final checkpoint) included; peak_rss_MB the highest RSS seen, sampled (memory a
// previous setting freed may stay resident: run one setting per process, with its
// full name as -bench, to compare RSS); max_write_ms the longest Write, which is the
// one that ran an automatic checkpoint.
func BenchmarkDuckDBSettings(b *testing.B) {
	for _, s := range []struct {
		memory, checkpoint string
		rowGroup           int
		threads            int // 0: the default config's
	}{
		{"128MB", "32MB", 0, 0}, {"128MB", "128MB", 0, 0}, {"128MB", "256MB", 0, 0}, {"64MB", "128MB", 0, 0}, {"256MB", "256MB", 0, 0},
		{"128MB", "128MB", 16384, 0}, {"128MB", "128MB", 32768, 0}, {"128MB", "128MB", 61440, 0}, {"128MB", "128MB", 122880, 0},
		{"128MB", "32MB", 16384, 0}, {"128MB", "32MB", 32768, 0}, {"128MB", "64MB", 32768, 0}, {"128MB", "32MB", 122880, 0},
		{"128MB", "32MB", 32768, 1}, {"128MB", "32MB", 32768, 2}, {"64MB", "32MB", 32768, 1},
	} {
		name := fmt.Sprintf("memory_limit=%s/checkpoint_threshold=%s/row_group_size=%d", s.memory, s.checkpoint, s.rowGroup)
		if s.threads > 0 {
			name += fmt.Sprintf("/threads=%d", s.threads)
		}
		b.Run(name, func(b *testing.B) {
			cfg := duckdb.DefaultConfig()
			cfg.Path = filepath.Join(b.TempDir(), "settings.duckdb")
			cfg.MemoryLimit, cfg.CheckpointThreshold, cfg.RowGroupSize = s.memory, s.checkpoint, s.rowGroup
			if s.threads > 0 {
				cfg.Threads = s.threads
			}
			w, err := duckdb.Open(b.Context(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			rs := &rssSampler{}
			ctx, stop := context.WithCancel(b.Context())
			var wg sync.WaitGroup
			wg.Go(func() { rs.run(ctx) })
			defer func() { stop(); wg.Wait() }()

			gen := newSpanGen(1024, drainStream)
			size := app.DefaultConfig().Pipeline.MaxBatchSize
			batch := &pipeline.Batch{Strategy: pipeline.InsertOnly, Spans: make([]*schema.Span, size)}
			var cpu float64
			var longest time.Duration
			spans := 0
			for b.Loop() {
				b.StopTimer()
				for i := range batch.Spans {
					s, _ := gen.next()
					if batch.Spans[i], err = stored(s, false); err != nil {
						b.Fatal(err)
					}
				}
				cpu0, t0 := cpuSeconds(), time.Now()
				b.StartTimer()
				if err := w.Write(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				longest = max(longest, time.Since(t0))
				cpu += cpuSeconds() - cpu0
				spans += size
				b.StartTimer()
			}
			cpu0 := cpuSeconds()
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			cpu += cpuSeconds() - cpu0
			st, err := os.Stat(cfg.Path)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(cpu*1000/float64(spans), "cpu_ms/span")
			b.ReportMetric(float64(spans)/b.Elapsed().Seconds(), "spans/s")
			b.ReportMetric(float64(rs.peak.Load())/(1<<20), "peak_rss_MB")
			b.ReportMetric(float64(st.Size())/float64(spans), "B/span")
			b.ReportMetric(float64(longest.Milliseconds()), "max_write_ms")
		})
	}
}
