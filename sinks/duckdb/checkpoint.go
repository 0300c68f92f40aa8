package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spanpipe/spanpipe/schema"
)

// rowGroups is where span_versions' last row group stands, so that the writer
// checkpoints when a write fills it.
//
// A checkpoint compresses the table's last, partly filled row group whole, and does
// it again at the next checkpoint once more rows went into it. Checkpoints that
// DuckDB takes on its own (when the write-ahead log passes checkpoint_threshold) fall
// anywhere in a row group, so every row was compressed a few times: with 1 KB spans,
// the cost per span depended on the commit size more than on anything else (writer
// alone, commits of 1,000 / 3,000 / 4,000 / 6,000 spans: 0.021 / 0.030 / 0.017 /
// 0.023–0.034 ms), and with 8 KB spans the checkpoint inside a row group took longer
// the more of it was filled (0.1 s to 4.5 s). Ending a commit exactly where the row
// group fills, then checkpointing, compresses each row once: 0.018–0.020 ms per span
// at every commit size above, 0.13 ms at 8 KB instead of 0.36.
type rowGroups struct {
	size    int  // rows per row group; 0 leaves checkpoints to DuckDB (":memory:")
	filled  int  // rows in the last row group, 0 to size-1
	pending bool // the checkpoint of a filled row group failed; retried after the next commit
	// deleted says a compaction deleted rows since the last checkpoint, which may
	// then merge row groups: the next one reads the last group's rows from the file.
	// DuckDB left the last group full where a test made it merge, but nothing says it
	// always does; reading costs 20–40 ms at 600k spans, too much after every one.
	deleted bool
	// wal is the write-ahead log's path and walSize its size after the last commit:
	// a log that shrank without a checkpoint of the writer's is one DuckDB took on
	// its own, inside a row group (warned about once).
	wal     string
	walSize int64
	warned  bool
	// bytes estimates what the rows of the last row group hold in DuckDB's memory
	// until its checkpoint; budget is half of memory_limit. A row group above it is
	// logged once (hinted), with the row_group_size that fits. The writer does not
	// checkpoint at the budget: checkpoints inside a row group cost more than the
	// rows spilled out of memory_limit meanwhile (writer alone, 20 KB spans in row
	// groups of 2,048 and a 64MB limit: 0.62 against 0.21 ms per span, 10.9 against
	// 7.2 KB on disk). A write that runs out of memory checkpoints and tries again.
	bytes, budget int64
	hinted        bool
}

// take returns how many of n spans the next commit appends: those that fit in the last
// row group, all of them when the writer does not checkpoint.
func (g *rowGroups) take(n int) int {
	if g.size == 0 {
		return n
	}
	return min(n, g.size-g.filled)
}

// duckDBRowGroupSize is DuckDB's row group size, used when Config.RowGroupSize is 0.
const duckDBRowGroupSize = 122880

// lastRowGroupRows counts the rows of span_versions' last row group, from the file's
// storage layout (a checkpoint that vacuums deleted rows may merge row groups).
const lastRowGroupRows = `
SELECT coalesce(sum(count), 0) FROM (
  SELECT row_group_id, count FROM pragma_storage_info('span_versions')
  WHERE column_id = 0 AND column_path = '[0]'
) WHERE row_group_id = (SELECT max(row_group_id) FROM pragma_storage_info('span_versions') WHERE column_id = 0)`

// loadRowGroups reads where the last row group stands.
func (w *Writer) loadRowGroups(ctx context.Context, conn *sql.Conn) error {
	if w.groups.size == 0 {
		return nil
	}
	var n int64
	if err := conn.QueryRowContext(ctx, lastRowGroupRows).Scan(&n); err != nil {
		return fmt.Errorf("duckdb: read span_versions' row groups: %w", err)
	}
	w.groups.filled = int(n % int64(w.groups.size))
	return nil
}

// appended records that a commit appended spans, and checkpoints when they
// filled the last row group (or when an earlier such checkpoint failed). A failed
// checkpoint is logged, not returned: the rows are committed, and DuckDB still
// checkpoints on its own past checkpoint_threshold.
func (w *Writer) appended(ctx context.Context, conn *sql.Conn, spans []*schema.Span) {
	if w.groups.size == 0 {
		return
	}
	w.noticeOwnCheckpoint()
	w.groups.filled += len(spans)
	for _, s := range spans {
		w.groups.bytes += heldBytes(s)
	}
	if w.groups.filled < w.groups.size && !w.groups.pending {
		return
	}
	if w.groups.filled >= w.groups.size {
		w.hintRowGroupSize()
		w.groups.bytes = 0
	}
	w.groups.filled %= w.groups.size
	if _, err := conn.ExecContext(ctx, "CHECKPOINT"); err != nil {
		w.noteInvalidated(err) // the rows are committed: the log holds them
		if !w.groups.pending {
			w.log.Debug("duckdb: checkpoint of a filled row group deferred", "err", err)
		}
		w.groups.pending = true
		return
	}
	w.groups.pending, w.groups.walSize = false, 0
	if !w.groups.deleted {
		return
	}
	w.groups.deleted = false
	if err := w.loadRowGroups(ctx, conn); err != nil {
		w.log.Warn("duckdb: row groups unknown after a checkpoint; assuming the last is full", "err", err)
		w.groups.filled = 0
	}
}

// noticeOwnCheckpoint warns, once, when DuckDB checkpointed on its own since the last
// commit while the last row group was partly filled: rows of that size fill
// checkpoint_threshold before a row group, and every row is compressed again at each
// such checkpoint (0.36 instead of 0.13 ms per 8 KB span).
func (w *Writer) noticeOwnCheckpoint() {
	var size int64
	if st, err := os.Stat(w.groups.wal); err == nil {
		size = st.Size()
	}
	shrank := size < w.groups.walSize
	w.groups.walSize = size
	if !shrank || w.groups.warned || w.groups.filled == 0 {
		return
	}
	w.groups.warned = true
	w.log.Warn("duckdb checkpointed inside a row group of span_versions: checkpoint_threshold was reached "+
		"before the row group filled, and each such checkpoint compresses the rows of the group again; "+
		"raise sink.duckdb.checkpoint_threshold or lower sink.duckdb.row_group_size",
		"rows_in_group", w.groups.filled, "row_group_size", w.groups.size,
		"checkpoint_threshold", w.cfg.CheckpointThreshold)
}

// heldBytes estimates what a span's row takes in DuckDB's memory before a checkpoint
// compresses it: its strings, and about 350 bytes for the other columns.
func heldBytes(s *schema.Span) int64 {
	return int64(len(s.Input) + len(s.Output) + len(s.Attributes) + len(s.Metadata) + len(s.Name) +
		len(s.TraceID) + len(s.SpanID) + len(s.ParentSpanID) + 350)
}

// hintRowGroupSize warns, once, when the row group that just filled held more than
// the budget: spans that large make each row group's rows spill out of memory_limit
// before its checkpoint: with 8 KB spans, 16,384 of them against 4,096 cost 0.186
// against 0.121 ms per span, a p99 of 2.0 against 0.6 s and 276 against 242 MB of
// RSS (README, Performance, "Larger spans"). It names the row_group_size that fits,
// or memory_limit when the row groups are as small as DuckDB allows.
func (w *Writer) hintRowGroupSize() {
	g := &w.groups
	if g.hinted || g.bytes <= g.budget {
		return
	}
	g.hinted = true
	fit := max(int(int64(g.size)*g.budget/g.bytes)/2048*2048, 2048)
	if fit >= g.size {
		w.log.Warn("duckdb: a row group of span_versions holds more than half of memory_limit before its checkpoint; "+
			"raise sink.duckdb.memory_limit", "row_group_size", g.size, "row_group_mb", g.bytes>>20,
			"memory_limit", w.limit.get(), "avg_span_bytes", g.bytes/int64(g.size))
		return
	}
	w.log.Warn("duckdb: a row group of span_versions holds more than half of memory_limit before its checkpoint; "+
		"set sink.duckdb.row_group_size to the suggested size (a file takes it on the next start)",
		"row_group_size", g.size, "row_group_mb", g.bytes>>20, "memory_limit", w.limit.get(),
		"avg_span_bytes", g.bytes/int64(g.size), "suggested_row_group_size", fit)
}

// duckDBSize parses a size as DuckDB prints it ("91.5 MiB", "1.0 GiB", "512 bytes").
func duckDBSize(s string) (int64, bool) {
	num, unit, ok := strings.Cut(strings.TrimSpace(s), " ")
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || f < 0 {
		return 0, false
	}
	mult := map[string]float64{"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
	if mult == 0 {
		return 0, false
	}
	return int64(f * mult), true
}
