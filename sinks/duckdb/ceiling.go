package duckdb

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
)

// AppendSpans appends the spans' rows to span_versions with DuckDB's Appender on
// the write connection: the sink's own row conversion and nothing else (no
// transaction of its own, no seq reservation, no compaction). It is the append
// ceiling `spanpipe bench` measures the drain against (issue 14), not a write path:
// its seq numbers are not reserved, so it must only be used on a file nothing else
// writes to.
func (w *Writer) AppendSpans(ctx context.Context, spans []*schema.Span) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	conn, err := w.writeConn(ctx)
	if err != nil {
		return err
	}
	if w.groups.size > 0 {
		w.fitMemoryLimit(ctx, conn, &pipeline.Batch{Spans: spans})
	}
	now := time.Now().UTC()
	// Commits and checkpoints fall where the drain's do (see rowGroups).
	for len(spans) > 0 {
		n := w.groups.take(len(spans))
		part := spans[:n]
		w.ceilingSeq += int64(n)
		first := w.ceilingSeq - int64(n) + 1
		// Like a write, and for the same spans (40 KB ones), it checkpoints when the
		// rows not yet checkpointed fill memory_limit: the appender commits on
		// close, and a failed commit leaves nothing behind.
		err = w.checkpointOnOOM(ctx, conn, func() error {
			return appendRows(ctx, w, conn, "", spanVersions, part, spanRow, func(row []driver.Value, i int) []driver.Value {
				return append(row, first+int64(i), now, now, w.spanKeyHash(part[i]))
			})
		})
		if err != nil {
			return fmt.Errorf("duckdb: append %d spans: %w", n, err)
		}
		w.appended(ctx, conn, part)
		spans = spans[n:]
	}
	return nil
}
