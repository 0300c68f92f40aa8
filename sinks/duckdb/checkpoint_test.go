package duckdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

// rowGroup is one row group of span_versions as the file's storage shows it.
type rowGroup struct {
	rows       int64
	persistent bool // checkpointed: written to the file, not held in memory
}

func rowGroups(t *testing.T, w *duckdb.Writer) []rowGroup {
	t.Helper()
	rs, err := w.DB().QueryContext(t.Context(), `
		SELECT sum(count), bool_and(persistent) FROM pragma_storage_info('span_versions')
		WHERE column_id = 0 AND column_path = '[0]' GROUP BY row_group_id ORDER BY row_group_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []rowGroup
	for rs.Next() {
		var g rowGroup
		if err := rs.Scan(&g.rows, &g.persistent); err != nil {
			t.Fatal(err)
		}
		out = append(out, g)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// countCommits makes w count its commits into *n.
func countCommits(w *duckdb.Writer, n *int) { w.SetBeforeCommit(func() { *n++ }) }

// TestCheckpointAtRowGroupBoundaries: a write whose spans fill span_versions' last row
// group commits them in two parts, the first ending where the group fills, and the
// writer checkpoints between them; DuckDB's own threshold is far away. Each filled
// row group is then in the file, and the rows after it are not yet.
func TestCheckpointAtRowGroupBoundaries(t *testing.T) {
	for _, tt := range []struct {
		name    string
		batches []int
		commits int
		groups  []rowGroup
	}{
		{"below a group", []int{1000, 1000}, 2, []rowGroup{{2000, false}}},
		{"exactly a group", []int{2048}, 1, []rowGroup{{2048, true}}},
		{"across a boundary", []int{1500, 1500}, 3, []rowGroup{{2048, true}, {952, false}}},
		{"across two boundaries", []int{5000}, 3, []rowGroup{{2048, true}, {2048, true}, {904, false}}},
		{"odd sizes", []int{700, 700, 700, 3000, 100}, 7,
			[]rowGroup{{2048, true}, {2048, true}, {1104, false}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := duckdb.DefaultConfig()
			cfg.Path, cfg.RowGroupSize, cfg.CheckpointThreshold = dbPath(t), 2048, "1GB"
			w := openConfig(t, cfg)
			w.SetCompaction(1<<40, nil)
			commits := 0
			countCommits(w, &commits)
			for i, n := range tt.batches {
				write(t, w, benchBatch(n, fmt.Sprintf("%032x", i+1)))
			}
			if commits != tt.commits {
				t.Errorf("commits = %d, want %d", commits, tt.commits)
			}
			if got := rowGroups(t, w); fmt.Sprint(got) != fmt.Sprint(tt.groups) {
				t.Errorf("row groups (rows, checkpointed) = %v, want %v", got, tt.groups)
			}
			total := 0
			for _, n := range tt.batches {
				total += n
			}
			if n, err := w.CountSpans(t.Context()); err != nil || n != int64(total) {
				t.Errorf("CountSpans = %d, %v; want %d", n, err, total)
			}
		})
	}
}

// TestCheckpointBoundaryAfterReopen: a reopened file's partly filled row group is
// filled before the next checkpoint, not a whole row group more.
func TestCheckpointBoundaryAfterReopen(t *testing.T) {
	cfg := duckdb.DefaultConfig()
	cfg.Path, cfg.RowGroupSize, cfg.CheckpointThreshold = dbPath(t), 2048, "1GB"
	w, err := duckdb.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, benchBatch(1000, strings.Repeat("1", 32)))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openConfig(t, cfg)
	commits := 0
	countCommits(w, &commits)
	write(t, w, benchBatch(1500, strings.Repeat("2", 32)))
	if commits != 2 {
		t.Errorf("commits of 1,500 spans after 1,000 of a 2,048-row group = %d, want 2", commits)
	}
	want := []rowGroup{{2048, true}, {452, false}}
	if got := rowGroups(t, w); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("row groups (rows, checkpointed) = %v, want %v", got, want)
	}
}

// TestCheckpointBesideATransactionThatDeletes: a compaction's open transaction
// (it deletes rows) does not keep the writer from checkpointing a filled row group.
func TestCheckpointBesideATransactionThatDeletes(t *testing.T) {
	cfg := duckdb.DefaultConfig()
	cfg.Path, cfg.RowGroupSize, cfg.CheckpointThreshold = dbPath(t), 2048, "1GB"
	w := openConfig(t, cfg)
	w.SetCompaction(1<<40, nil)
	write(t, w, benchBatch(100, strings.Repeat("1", 32)))
	other, err := w.DB().Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for _, q := range []string{"BEGIN TRANSACTION", "DELETE FROM span_versions WHERE seq = (SELECT min(seq) FROM span_versions)"} {
		if _, err := other.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	write(t, w, benchBatch(2000, strings.Repeat("2", 32)))
	if got := rowGroups(t, w); len(got) != 2 || !got[0].persistent || got[0].rows != 2048 {
		t.Errorf("row groups (rows, checkpointed) = %v, want the first full and checkpointed", got)
	}
	if _, err := other.ExecContext(t.Context(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if n, err := w.CountSpans(t.Context()); err != nil || n != 2100 {
		t.Errorf("CountSpans = %d, %v; want 2100", n, err)
	}
}

// TestWarnsWhenDuckDBCheckpointsInsideARowGroup: rows so large that
// checkpoint_threshold fills before a row group are logged once, with what to change.
func TestWarnsWhenDuckDBCheckpointsInsideARowGroup(t *testing.T) {
	var logs bytes.Buffer
	cfg := duckdb.DefaultConfig()
	cfg.Path, cfg.CheckpointThreshold = dbPath(t), "1MB"
	w := openConfig(t, cfg, duckdb.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	w.SetCompaction(1<<40, nil)
	for i := range 8 {
		write(t, w, benchBatch(1000, fmt.Sprintf("%032x", i+1)))
	}
	if got := strings.Count(logs.String(), "checkpointed inside a row group"); got != 1 {
		t.Errorf("warnings about DuckDB's own checkpoints = %d, want 1; logs:\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "row_group_size=16384") {
		t.Errorf("the warning does not name the row group size; logs:\n%s", logs.String())
	}
}

// TestRowGroupFillFollowsCompactions: rows a compaction deletes let a checkpoint
// merge row groups (here three into two: 1,348 and 2,048 rows; DuckDB left the last
// one full); the writer's count of the last group's rows stays the file's, so that
// its commits go on ending where a group fills.
func TestRowGroupFillFollowsCompactions(t *testing.T) {
	cfg := duckdb.DefaultConfig()
	cfg.Path, cfg.RowGroupSize, cfg.CheckpointThreshold = dbPath(t), 2048, "1GB"
	w := openConfig(t, cfg)
	w.SetCompaction(1<<40, nil)
	check := func(step string) {
		t.Helper()
		gs := rowGroups(t, w)
		last := gs[len(gs)-1].rows % 2048
		if got := w.RowGroupFill(); int64(got) != last {
			t.Fatalf("%s: the writer counts %d rows in the last row group, the file has %d (row groups %v)", step, got, last, gs)
		}
	}
	// Version v of the first n spans of one trace.
	versions := func(n int, v uint64) *pipeline.Batch {
		b := benchBatch(n, strings.Repeat("a", 32))
		for _, s := range b.Spans {
			s.Version = v
		}
		return b
	}
	compact := func() {
		t.Helper()
		if _, err := w.Compact(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	write(t, w, versions(2048, 1)) // the first row group
	write(t, w, versions(1400, 2))
	write(t, w, versions(648, 3)) // the second
	compact()
	write(t, w, versions(700, 4))
	write(t, w, versions(700, 5))
	compact() // deletes rows of the third group, still being filled
	write(t, w, benchBatch(648, strings.Repeat("b", 32)))
	// That filled the third group: its checkpoint merged the three into fewer.
	check("the checkpoint after the compactions")
	for i := range 3 {
		write(t, w, benchBatch(1500, fmt.Sprintf("%032x", i+1)))
		check(fmt.Sprintf("write %d after it", i+1))
	}
}

// TestRowGroupSizeHint: spans so large that a row group of them holds more than half
// of memory_limit until its checkpoint are logged once, with a row_group_size that
// fits; 1 KB spans under the defaults are not.
func TestRowGroupSizeHint(t *testing.T) {
	for _, tt := range []struct {
		name        string
		memory      string
		rowGroup    int
		output      int // bytes of each span's output
		want        int // warnings
		wantSuggest string
	}{
		{"1 KB spans, defaults", "96MB", 16384, 1000, 0, ""},
		{"3 KB spans, row groups of 8192 in 32MB", "32MB", 8192, 2000, 1, "suggested_row_group_size=4096"},
		// Row groups as small as DuckDB allows: memory_limit is raised instead.
		{"20 KB spans, row groups of 2048 in 64MB", "64MB", 2048, 19000, 0, "raised memory_limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg := duckdb.DefaultConfig()
			cfg.Path, cfg.MemoryLimit, cfg.RowGroupSize = dbPath(t), tt.memory, tt.rowGroup
			w := openConfig(t, cfg, duckdb.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			w.SetCompaction(1<<40, nil)
			for i := range 3 * tt.rowGroup / 1000 {
				b := benchBatch(1000, fmt.Sprintf("%032x", i+1))
				for _, s := range b.Spans {
					s.Output = jsontext.Value(`"` + strings.Repeat("x", tt.output) + `"`)
				}
				write(t, w, b)
			}
			out := logs.String()
			if got := strings.Count(out, "holds more than half of memory_limit"); got != tt.want {
				t.Fatalf("row group size warnings = %d, want %d; logs:\n%s", got, tt.want, out)
			}
			if !strings.Contains(out, tt.wantSuggest) {
				t.Errorf("the warning does not say %q; logs:\n%s", tt.wantSuggest, out)
			}
		})
	}
}

// TestWriteOutOfMemoryCheckpointsAndRetries: rows not yet checkpointed that fill
// memory_limit (large spans in a row group that is far from full) make a write fail
// with "failed to pin block"; the writer checkpoints and writes again instead.
func TestWriteOutOfMemoryCheckpointsAndRetries(t *testing.T) {
	// The bench's append ceiling takes the same path as a write: with 40 KB spans it
	// failed the run where the drain had succeeded.
	for _, tt := range []struct {
		name  string
		write func(*testing.T, *duckdb.Writer, *pipeline.Batch)
	}{
		{"Write", func(t *testing.T, w *duckdb.Writer, b *pipeline.Batch) { write(t, w, b) }},
		{"AppendSpans", func(t *testing.T, w *duckdb.Writer, b *pipeline.Batch) {
			if err := w.AppendSpans(t.Context(), b.Spans); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := duckdb.DefaultConfig()
			cfg.Path, cfg.MemoryLimit = dbPath(t), "48MB"
			w := openConfig(t, cfg)
			w.SetCompaction(1<<40, nil)
			const batches = 12
			for i := range batches {
				b := benchBatch(500, fmt.Sprintf("%032x", i+1))
				for _, s := range b.Spans {
					s.Output = jsontext.Value(`"` + strings.Repeat(fmt.Sprintf("%x", i), 20000) + `"`)
				}
				tt.write(t, w, b)
			}
			if n, err := w.CountSpans(t.Context()); err != nil || n != batches*500 {
				t.Errorf("CountSpans = %d, %v; want %d", n, err, batches*500)
			}
		})
	}
}

// TestWriteOutgrowingMemoryLimitRaisesIt: values that outgrow what a checkpoint can
// hold in memory_limit (it holds a column's values for 2,048 rows at once) failed
// every write after a few hundred of them, checkpoint or not, until the batches were
// dead-lettered; logs of that size ended DuckDB with a FATAL error (a rollback that
// ran out of memory). The writer raises the limit before such a batch instead, up
// to its ceiling.
func TestWriteOutgrowingMemoryLimitRaisesIt(t *testing.T) {
	big := func(i int) string { return strings.Repeat(fmt.Sprintf("%x", i%16), 200000) }
	spanBatch := func(i int) *pipeline.Batch {
		b := benchBatch(20, fmt.Sprintf("%032x", i+1))
		for _, s := range b.Spans {
			s.Output = jsontext.Value(`"` + big(i) + `"`)
		}
		return b
	}
	nameBatch := func(i int) *pipeline.Batch {
		b := benchBatch(20, fmt.Sprintf("%032x", i+1))
		for _, s := range b.Spans {
			s.Name = big(i)
		}
		return b
	}
	logBatch := func(i int) *pipeline.Batch {
		b := &pipeline.Batch{}
		for j := range 20 {
			b.Logs = append(b.Logs, &schema.Log{LogID: fmt.Sprintf("log-%d-%d", i, j), Timestamp: time.Now(),
				Level: "info", Message: big(i + j)})
		}
		return b
	}
	for _, tt := range []struct {
		name    string
		batch   func(i int) *pipeline.Batch
		ceiling int64
		stored  bool
		broken  bool // DuckDB ends with a FATAL error (a rollback out of memory)
	}{
		{"spans", spanBatch, 1 << 30, true, false},
		{"span names", nameBatch, 1 << 30, true, false},
		{"logs", logBatch, 1 << 30, true, false},
		{"spans, ceiling below the limit", spanBatch, 40 << 20, false, false},
		{"logs, ceiling below the limit", logBatch, 40 << 20, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg := duckdb.DefaultConfig()
			cfg.Path, cfg.MemoryLimit = dbPath(t), "48MB"
			reg := prometheus.NewRegistry()
			w := openConfig(t, cfg, duckdb.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), duckdb.WithRegisterer(reg))
			w.SetCompaction(1<<40, nil)
			w.SetMemoryCeiling(tt.ceiling)
			const batches = 16
			var failed error
			retried := 0
			for i := range batches {
				b := tt.batch(i)
				// A checkpoint that failed invalidates the database: that write fails,
				// and the pipeline's retry attaches it again.
				var err error
				for try := range 3 {
					if err = w.Write(t.Context(), b); err == nil {
						break
					}
					retried = max(retried, try+1)
				}
				if err != nil {
					failed = err
					break
				}
			}
			if !tt.stored {
				if failed == nil {
					t.Fatal("every write succeeded at a memory_limit of 48MB; the test needs larger values")
				}
				if err := w.Broken(); (err != nil) != tt.broken {
					t.Fatalf("Broken() = %v, want broken %v; the write failed with %v", err, tt.broken, failed)
				}
				if tt.broken {
					return
				}
				if !strings.Contains(logs.String(), "at or above the ceiling") {
					t.Errorf("no error says memory_limit is at the ceiling; logs:\n%s", logs.String())
				}
				return
			}
			if failed != nil || retried > 0 {
				t.Fatalf("write: %v (%d writes needed a retry); logs:\n%s", failed, retried, logs.String())
			}
			var limit string
			var spans, stored int64
			err := w.DB().QueryRowContext(t.Context(), `SELECT current_setting('memory_limit'),
				(SELECT count(*) FROM spans), (SELECT count(*) FROM logs)`).Scan(&limit, &spans, &stored)
			if err != nil {
				t.Fatal(err)
			}
			if stored += spans; stored != batches*20 {
				t.Errorf("stored %d rows, want %d", stored, batches*20)
			}
			got, ok := duckdb.DuckDBSize(limit)
			if !ok || got <= 48e6 {
				t.Errorf("memory_limit = %s, want it raised above 48MB", limit)
			}
			if g := memoryLimitMetric(t, reg); math.Abs(g-float64(got)) > 0.1*(1<<20) { // DuckDB prints it rounded
				t.Errorf("spanpipe_duckdb_memory_limit_bytes = %v, want %d", g, got)
			}
			if !strings.Contains(logs.String(), "raised memory_limit") {
				t.Errorf("no warning names the raised memory_limit; logs:\n%s", logs.String())
			}
		})
	}
}

// memoryLimitMetric returns the value of the one series of
// spanpipe_duckdb_memory_limit_bytes in reg.
func memoryLimitMetric(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "spanpipe_duckdb_memory_limit_bytes" && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("spanpipe_duckdb_memory_limit_bytes: not one series in %v", mfs)
	return 0
}

// TestDuckDBSize: sizes as current_setting('memory_limit') prints them.
func TestDuckDBSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"91.5 MiB", 95944704, true},
		{"1.0 GiB", 1 << 30, true},
		{"512 bytes", 512, true},
		{"16 MB", 16e6, true},
		{"  2 KiB ", 2048, true},
		{"91.5MiB", 0, false},
		{"lots MiB", 0, false},
		{"1 parsecs", 0, false},
		{"-1 MiB", 0, false},
		{"", 0, false},
	} {
		got, ok := duckdb.DuckDBSize(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("duckDBSize(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestBrokenAfterFatalError: DuckDB's FATAL error ends the instance, which attaching
// the file again cannot repair; Broken says so (spanpipe consume's /livez fails on
// it), and only for that error.
func TestBrokenAfterFatalError(t *testing.T) {
	for _, tt := range []struct {
		name   string
		err    string
		broken bool
	}{
		{"rollback out of memory", "duckdb: commit batch of 30 rows: FATAL Error: Failed to rollback transaction. Cannot continue operation.", true},
		{"instance ended", `duckdb: prepare spans table: FATAL Error: Failed: database has been invalidated because of a previous fatal error. The database must be restarted prior to being used again.`, true},
		{"checkpoint failed", `IO Error: Database "spanpipe" has been invalidated because checkpointing failed. Detach and reattach it before using it again.`, false},
		{"out of memory", "Out of Memory Error: failed to pin block of size 256.0 KiB (45.6 MiB/45.7 MiB used)", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := openWriter(t, dbPath(t))
			if err := w.Broken(); err != nil {
				t.Fatalf("Broken() of a new writer = %v", err)
			}
			w.NoteInvalidated(errors.New(tt.err))
			err := w.Broken()
			if (err != nil) != tt.broken {
				t.Fatalf("Broken() = %v, want broken %v", err, tt.broken)
			}
			if err != nil && !strings.Contains(err.Error(), "FATAL Error") {
				t.Errorf("Broken() = %q does not carry DuckDB's error", err)
			}
		})
	}
}

// TestOneLargeValueKeepsMemoryLimit: what a checkpoint holds at once is the values of
// 2,048 rows, so one large value among small ones needs little, and the writer
// leaves memory_limit as configured.
func TestOneLargeValueKeepsMemoryLimit(t *testing.T) {
	var logs bytes.Buffer
	cfg := duckdb.DefaultConfig()
	cfg.Path = dbPath(t)
	w := openConfig(t, cfg, duckdb.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	for i := range 3 {
		b := benchBatch(1000, fmt.Sprintf("%032x", i+1))
		b.Spans[500].Output = jsontext.Value(`"` + strings.Repeat("x", 3<<20) + `"`)
		write(t, w, b)
	}
	var limit string
	if err := w.DB().QueryRowContext(t.Context(), "SELECT current_setting('memory_limit')").Scan(&limit); err != nil {
		t.Fatal(err)
	}
	if limit != "91.5 MiB" || strings.Contains(logs.String(), "raised memory_limit") {
		t.Errorf("memory_limit = %s, want the configured 96MB (91.5 MiB); logs:\n%s", limit, logs.String())
	}
	if n, err := w.CountSpans(t.Context()); err != nil || n != 3000 {
		t.Errorf("CountSpans = %d, %v; want 3000", n, err)
	}
}
