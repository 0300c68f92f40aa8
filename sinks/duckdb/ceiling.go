package duckdb

import (
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"time"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/spanpipe/spanpipe/schema"
)

// AppendSpans appends the spans' rows to the spans table with DuckDB's Appender on
// the write connection: the sink's own row conversion and nothing else (no stage
// table, no merge, no version check). It is the append ceiling `spanpipe bench`
// measures the drain against (issue 14), not a write path: a span already stored
// fails the append, and nothing is deduplicated.
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
	columns := append(slices.Concat(spansTable.cols, spansTable.extra), "created_at")
	if spansTable.updatedAt {
		columns = append(columns, "updated_at")
	}
	now := time.Now().UTC()
	err = conn.Raw(func(dc any) error {
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		app, err := duckdbdriver.NewAppenderWithColumns(dconn, "", "main", spansTable.name, columns)
		if err != nil {
			return err
		}
		for _, s := range spans {
			row, err := spanRow(w.row[:0], s)
			row = append(row, now) // created_at
			if spansTable.updatedAt {
				row = append(row, now)
			}
			w.row = row
			if err == nil {
				err = app.AppendRow(row...)
			}
			if err != nil {
				_ = app.Clear()
				_ = app.Close()
				return err
			}
		}
		return app.CloseWithCancel(ctx)
	})
	clear(w.row)
	if err != nil {
		return fmt.Errorf("duckdb: append %d spans: %w", len(spans), err)
	}
	return nil
}
