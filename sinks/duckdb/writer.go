package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
)

// ErrClosed is returned by [Writer.Write] after [Writer.Close].
var ErrClosed = errors.New("duckdb: writer closed")

// Writer is the DuckDB [pipeline.Sink]. It stores every signal in one database file,
// one row per span (the newest snapshot) and one row per log, metric, score and
// feedback id. Create it with [Open].
type Writer struct {
	cfg Config
	db  *sql.DB
	log *slog.Logger

	mu     sync.Mutex // serialises Write and Close
	closed bool
	// conn is the dedicated write connection; it owns the TEMP stage tables. It is
	// nil after a failed rollback left it in an unknown state, and is replaced by the
	// next Write.
	conn *sql.Conn
	row  []driver.Value // reused by every appended row
}

// Open opens (creating if needed) the database named by cfg, applies the pending
// migrations and prepares the write connection. It starts no goroutines. The caller
// must call [Writer.Close].
//
// A file can be opened read-write by one process at a time; a second process fails
// here with DuckDB's lock error. Within one process, Writers on the same path share
// one database instance.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	connector, err := duckdbdriver.NewConnector(cfg.dsn(), nil)
	if err != nil {
		return nil, fmt.Errorf("duckdb: open %s: %w", cfg.Path, err)
	}
	db := sql.OpenDB(connector)
	w := &Writer{
		cfg: cfg,
		db:  db,
		log: o.logger.With("component", "duckdb"),
	}
	applied, err := migrate(ctx, db)
	if err == nil {
		_, err = w.writeConn(ctx)
	}
	if err != nil {
		w.closeConn()
		return nil, errors.Join(err, db.Close())
	}
	w.log.Info("duckdb sink open", "path", cfg.Path, "migrations_applied", applied)
	return w, nil
}

// Name returns "duckdb".
func (w *Writer) Name() string { return "duckdb" }

// Capabilities declares batch-with-updates as preferred (the table keeps one row per
// span, upserted by version), realtime and insert-only as supported, and every signal.
func (w *Writer) Capabilities() pipeline.Capabilities {
	return pipeline.Capabilities{
		Preferred: pipeline.BatchWithUpdates,
		Supported: []pipeline.Strategy{pipeline.Realtime, pipeline.BatchWithUpdates, pipeline.InsertOnly},
		Signals:   slices.Clone(schema.AllSignals),
	}
}

// Write stores the batch in one transaction: each signal's rows are appended to a
// TEMP stage table, then merged into their table by one statement. A span's row is
// replaced only by a snapshot that does not rank below it ([schema.Span.Supersedes],
// or equal); logs and metrics keep the first row written for an id; scores and
// feedback keep the one with the latest timestamp. Writing the
// same batch twice therefore leaves the store as writing it once.
//
// Errors that retrying cannot fix (a constraint, conversion or type error caused by
// the data, or a schema mismatch) are wrapped with [pipeline.Permanent]. Write is
// safe for concurrent use, but calls are serialised.
func (w *Writer) Write(ctx context.Context, b *pipeline.Batch) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if b == nil || b.Len() == 0 {
		return nil
	}
	start := time.Now()
	if err := w.write(ctx, b); err != nil {
		return err
	}
	w.log.Debug("duckdb batch written", "batch_size", b.Len(), "spans", len(b.Spans),
		"duration", time.Since(start))
	return nil
}

func (w *Writer) write(ctx context.Context, b *pipeline.Batch) (err error) {
	conn, err := w.writeConn(ctx)
	if err != nil {
		return classify(ctx, err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return classify(ctx, fmt.Errorf("duckdb: begin batch of %d rows: %w", b.Len(), err))
	}
	defer func() {
		if err == nil {
			return
		}
		// Roll back even when ctx is done; the stage tables are emptied with it.
		_, rbErr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		var de *duckdbdriver.Error
		if rbErr == nil || (errors.As(rbErr, &de) && de.Type == duckdbdriver.ErrorTypeTransaction) {
			return // rolled back, or DuckDB already did (a failed COMMIT)
		}
		w.log.Warn("duckdb rollback failed; replacing the write connection", "err", rbErr)
		w.closeConn()
	}()

	now := time.Now().UTC()
	if err := writeTable(ctx, w, conn, spansTable, b.Spans, spanRow, now); err != nil {
		return err
	}
	if err := writeTable(ctx, w, conn, logsTable, b.Logs, logRow, now); err != nil {
		return err
	}
	if err := writeTable(ctx, w, conn, metricsTable, b.Metrics, metricRow, now); err != nil {
		return err
	}
	if err := writeTable(ctx, w, conn, scoresTable, b.Scores, scoreRow, now); err != nil {
		return err
	}
	if err := writeTable(ctx, w, conn, feedbackTable, b.Feedback, feedbackRow, now); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return classify(ctx, fmt.Errorf("duckdb: commit batch of %d rows: %w", b.Len(), err))
	}
	return nil
}

// writeTable stages rows through the appender and merges them into t with one
// statement. Empty slices and nil elements are skipped.
func writeTable[T any](ctx context.Context, w *Writer, conn *sql.Conn, t *table, rows []*T,
	build func([]driver.Value, *T) ([]driver.Value, error), now time.Time,
) error {
	if len(rows) == 0 {
		return nil
	}
	err := conn.Raw(func(dc any) error {
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		app, err := duckdbdriver.NewAppender(dconn, "temp", "main", t.stage)
		if err != nil {
			return err
		}
		for i, r := range rows {
			if r == nil {
				continue
			}
			row, err := build(w.row[:0], r)
			if err == nil {
				row = append(row, int64(i))
				err = app.AppendRow(row...)
			}
			w.row = row
			if err != nil {
				// The row itself is at fault (a value the column cannot hold).
				_ = app.Clear()
				_ = app.Close()
				return pipeline.Permanent(err)
			}
		}
		return app.CloseWithCancel(ctx)
	})
	clear(w.row) // drop references to the batch's strings
	if err != nil {
		return classify(ctx, fmt.Errorf("duckdb: stage %s batch of %d: %w", t.name, len(rows), err))
	}
	if _, err := conn.ExecContext(ctx, t.merge, now); err != nil {
		return classify(ctx, fmt.Errorf("duckdb: insert %s batch of %d: %w", t.name, len(rows), err))
	}
	if _, err := conn.ExecContext(ctx, t.clearStage); err != nil {
		return classify(ctx, fmt.Errorf("duckdb: clear %s stage: %w", t.name, err))
	}
	return nil
}

// writeConn returns the write connection, creating it and its stage tables when
// there is none.
func (w *Writer) writeConn(ctx context.Context) (*sql.Conn, error) {
	if w.conn != nil {
		return w.conn, nil
	}
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("duckdb: open write connection: %w", err)
	}
	for _, t := range allTables {
		if _, err := conn.ExecContext(ctx, t.createStage); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("duckdb: create %s stage table: %w", t.name, err)
		}
	}
	w.conn = conn
	return conn, nil
}

func (w *Writer) closeConn() {
	if w.conn == nil {
		return
	}
	// Raw hands the driver connection back as bad, so that database/sql discards it
	// (and its TEMP tables) instead of reusing it.
	_ = w.conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = w.conn.Close()
	w.conn = nil
}

// Close closes the database; DuckDB checkpoints the file on the way. Writes after
// Close return [ErrClosed]. Close waits for a running Write and is idempotent.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	var errs []error
	if w.conn != nil {
		errs = append(errs, w.conn.Close())
		w.conn = nil
	}
	errs = append(errs, w.db.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("duckdb: close: %w", err)
	}
	w.log.Info("duckdb sink closed", "path", w.cfg.Path)
	return nil
}

// classify marks err permanent when it is a DuckDB error caused by the data or the
// schema, which a retry of the same batch would hit again. I/O, lock, transaction
// conflict, memory and interruption errors stay retryable, and so does anything that
// happened after ctx was done.
func classify(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || errors.Is(err, pipeline.ErrPermanent) {
		return err
	}
	var de *duckdbdriver.Error
	if !errors.As(err, &de) {
		return err
	}
	switch de.Type {
	case duckdbdriver.ErrorTypeConstraint,
		duckdbdriver.ErrorTypeConversion,
		duckdbdriver.ErrorTypeMismatchType,
		duckdbdriver.ErrorTypeInvalidType,
		duckdbdriver.ErrorTypeOutOfRange,
		duckdbdriver.ErrorTypeDecimal,
		duckdbdriver.ErrorTypeInvalidInput,
		duckdbdriver.ErrorTypeObjectSize,
		duckdbdriver.ErrorTypeCatalog,
		duckdbdriver.ErrorTypeBinder,
		duckdbdriver.ErrorTypeParser,
		duckdbdriver.ErrorTypeSyntax,
		duckdbdriver.ErrorTypeDependency,
		duckdbdriver.ErrorTypeNotImplemented:
		return pipeline.Permanent(err)
	}
	return err
}
