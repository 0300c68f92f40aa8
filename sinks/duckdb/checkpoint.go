package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
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

// appended records that a commit appended n span rows, and checkpoints when they
// filled the last row group (or when an earlier such checkpoint failed). A failed
// checkpoint is logged, not returned: the rows are committed, and DuckDB still
// checkpoints on its own past checkpoint_threshold.
func (w *Writer) appended(ctx context.Context, conn *sql.Conn, n int) {
	if w.groups.size == 0 {
		return
	}
	w.noticeOwnCheckpoint()
	w.groups.filled += n
	if w.groups.filled < w.groups.size && !w.groups.pending {
		return
	}
	w.groups.filled %= w.groups.size
	if _, err := conn.ExecContext(ctx, "CHECKPOINT"); err != nil {
		if invalidatedDB(err) || diskFull(err) {
			_ = w.storeDown(err) // the rows are committed: the log holds them
		} else if !w.groups.pending {
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
