package duckdb

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spanpipe/spanpipe/internal/promx"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
)

// ErrClosed is returned by [Writer.Write] after [Writer.Close].
var ErrClosed = errors.New("duckdb: writer closed")

// Writer is the DuckDB [pipeline.Sink]. It stores every signal in one database file:
// every span snapshot (read as the newest per span, through the spans view) and one
// row per log, metric, score and feedback id. Create it with [Open].
type Writer struct {
	cfg Config
	db  *sql.DB
	seq *seqCounter // numbers span_versions rows; shared by the Writers of db
	// connector makes connections outside db's pool; a new one attaches the file
	// again when DuckDB invalidated it (see reattach).
	connector driver.Connector
	release   func() error // releases db (see openDB)
	log       *slog.Logger

	closing sync.Mutex // serialises Close
	mu      sync.Mutex // serialises Write and Close
	closed  bool
	// conn is the dedicated write connection; it owns the TEMP stage tables. It is
	// nil after a failed rollback left it in an unknown state, and is replaced by the
	// next Write.
	conn *sql.Conn
	row  []driver.Value // reused by every appended row
	key  []byte         // reused by spanKeyHash

	// compacted and tail count the rows of span_versions up to compacted_seq and
	// after it, as this Writer knows them; they decide when to compact.
	compacted, tail int64
	compactor       compactor
	groups          rowGroups
	invalid         bool  // DuckDB invalidated the database; the next write attaches it again
	ceilingSeq      int64 // seq handed out by AppendSpans (the bench's ceiling)
	flush           allocatorFlush
	limit           *memoryLimit // the instance's memory_limit
	// memCeiling is as far as raiseMemoryLimit takes memory_limit: half of the
	// machine's or the cgroup's memory. invalidOOM says the database was invalidated
	// by a checkpoint that ran out of memory: the limit rises once it is attached again.
	memCeiling int64
	invalidOOM bool
	memGauge   prometheus.Gauge                // spanpipe_duckdb_memory_limit_bytes of this file
	window     struct{ spans, logs rowWindow } // see fitMemoryLimit
	// fatal is DuckDB's FATAL error, after which only a new process can write (see
	// Broken); nil until then. Read without w.mu, which a waiting write holds.
	fatal atomic.Pointer[error]
	// beforeCommit, when set (tests), runs in a write's transaction before its COMMIT.
	beforeCommit func()
}

// Open opens (creating if needed) the database named by cfg, applies the pending
// migrations and prepares the write connection. The caller must call [Writer.Close],
// which stops the background compaction that writes start.
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
	in, release, err := openDB(ctx, cfg)
	if err != nil {
		return nil, err
	}
	db := in.db
	w := &Writer{
		cfg:       cfg,
		db:        db,
		seq:       &in.seq,
		limit:     &in.limit,
		connector: in.connector,
		release:   release,
		log:       o.logger.With("component", "duckdb"),
	}
	w.compactor.every, w.compactor.after = compactEvery, compactAfter
	applied, err := migrate(ctx, db)
	if err == nil {
		_, err = w.writeConn(ctx)
	}
	if err == nil {
		err = w.readMemoryLimit(ctx)
	}
	if err == nil {
		w.memGauge = promx.Register(o.reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spanpipe_duckdb_memory_limit_bytes",
			Help: "DuckDB's memory_limit in force for the database file: above sink.duckdb.memory_limit when the writer raised it because the values written outgrew it (logged as a warning).",
		}, []string{"path"})).WithLabelValues(cfg.Path)
		if limit, ok := duckDBSize(w.limit.get()); ok {
			w.memGauge.Set(float64(limit))
		}
	}
	if err == nil {
		err = w.loadSeq(ctx)
	}
	if err == nil && cfg.Path != ":memory:" {
		w.groups.size, w.groups.wal = cmp.Or(cfg.RowGroupSize, duckDBRowGroupSize), cfg.Path+".wal"
		w.groups.budget = 48 << 20 // half of the default memory_limit, should DuckDB print it otherwise
		if limit, ok := duckDBSize(w.limit.get()); ok {
			w.groups.budget = limit / 2
		}
		err = w.loadRowGroups(ctx, w.conn)
	}
	if err == nil {
		err = db.QueryRowContext(ctx, compactionState).Scan(&w.compacted, &w.tail)
		if err != nil {
			err = fmt.Errorf("duckdb: read spans compaction state: %w", err)
		}
	}
	if err != nil {
		w.closeConn()
		return nil, errors.Join(err, release())
	}
	w.startIdleCheck()
	w.log.Info("duckdb sink open", "path", cfg.Path, "migrations_applied", applied)
	return w, nil
}

// loadSeq reads the seq counter's start from the file, unless another Writer of the
// instance already has.
func (w *Writer) loadSeq(ctx context.Context) error {
	w.seq.mu.Lock()
	defer w.seq.mu.Unlock()
	if w.seq.next > 0 {
		return nil
	}
	if err := w.db.QueryRowContext(ctx, loadNextSeq).Scan(&w.seq.next); err != nil {
		return fmt.Errorf("duckdb: read next span seq: %w", err)
	}
	return nil
}

// Name returns "duckdb".
func (w *Writer) Name() string { return "duckdb" }

// Capabilities declares batch-with-updates as preferred (readers see one row per
// span, the newest snapshot), realtime and insert-only as supported, every signal,
// and that DuckDB's memory is this process's.
func (w *Writer) Capabilities() pipeline.Capabilities {
	return pipeline.Capabilities{
		Preferred: pipeline.BatchWithUpdates,
		Supported: []pipeline.Strategy{pipeline.Realtime, pipeline.BatchWithUpdates, pipeline.InsertOnly},
		Signals:   slices.Clone(schema.AllSignals),
		InProcess: true,
	}
}

// Write stores the batch in one transaction: its spans are appended to span_versions,
// where the spans view shows a snapshot only while no other of its span supersedes
// it ([schema.Span.Supersedes], or equal and written later); each other signal's rows
// are appended to a TEMP stage table, then merged into their table by one statement:
// logs and metrics keep the first row written for an id; scores and feedback keep
// the one with the latest timestamp. Writing the same batch twice therefore leaves
// the store, as readers see it, as writing it once. Every 100k span rows or so, Write
// starts a compaction of span_versions (see [Writer.Close]) in the background: the
// next writes do not wait for it.
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
	if w.conn != nil {
		w.flushAllocator(ctx, w.conn)
	}
	w.maybeCompact()
	w.log.Debug("duckdb batch written", "batch_size", b.Len(), "spans", len(b.Spans),
		"duration", time.Since(start))
	return nil
}

func (w *Writer) write(ctx context.Context, b *pipeline.Batch) error {
	w.seq.mu.Lock()
	defer w.seq.mu.Unlock()
	if w.invalid {
		// Until the file is attached again, nothing can be stored: the batch waits.
		if err := w.reattach(ctx); err != nil {
			w.noteInvalidated(err)
			return pipeline.Unavailable(err)
		}
	}
	conn, err := w.writeConn(ctx)
	if err != nil {
		w.noteInvalidated(err)
		return classify(ctx, err)
	}
	if w.groups.size > 0 {
		w.fitMemoryLimit(ctx, conn, b)
	}
	// The spans that fill the last row group end a commit of their own, so that
	// the checkpoint after it compresses whole row groups (see rowGroups). A write
	// that fails after such a commit leaves it committed: the retry appends those
	// spans again, which the spans view and compaction resolve like any redelivery.
	now := time.Now().UTC()
	spans, rest := b.Spans, b
	for {
		n := w.groups.take(len(spans))
		err := w.checkpointOnOOM(ctx, conn, func() error { return w.commit(ctx, conn, spans[:n], rest, now) })
		if err != nil {
			w.noteInvalidated(err)
			return err
		}
		w.appended(ctx, conn, spans[:n])
		spans, rest = spans[n:], nil
		if len(spans) == 0 {
			return nil
		}
	}
}

// checkpointOnOOM runs write, which must leave nothing behind when it fails (a
// rolled-back transaction, an appender's failed commit). When it runs out of
// memory_limit, the rows not yet checkpointed may be what fills it: the writer
// checkpoints and runs it again (40 KB spans needed it). When it still runs out, the
// rows need more than memory_limit (see raiseMemoryLimit): the limit rises, up to
// its ceiling, before each further checkpoint and attempt.
func (w *Writer) checkpointOnOOM(ctx context.Context, conn *sql.Conn, write func() error) error {
	err := write()
	for round := 0; outOfMemory(err) && w.groups.size > 0; round++ {
		if round > 0 && !w.doubleMemoryLimit(ctx, conn, "a write ran out of it after a checkpoint", "err", err) {
			return err
		}
		w.log.Debug("duckdb: out of memory in a write; checkpointing, then writing again", "err", err)
		if _, cerr := conn.ExecContext(ctx, "CHECKPOINT"); cerr != nil {
			w.noteInvalidated(cerr)
			return err
		}
		w.groups.walSize = 0
		err = write()
	}
	return err
}

// commit appends spans and stores the other signals of rest (when not nil) in one
// transaction.
func (w *Writer) commit(ctx context.Context, conn *sql.Conn, spans []*schema.Span, rest *pipeline.Batch, now time.Time) (err error) {
	rows := len(spans)
	if rest != nil {
		rows += len(rest.Logs) + len(rest.Metrics) + len(rest.Scores) + len(rest.Feedback)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return classify(ctx, fmt.Errorf("duckdb: begin batch of %d rows: %w", rows, err))
	}
	defer func() {
		if err != nil {
			w.rollback(ctx, conn)
		}
	}()
	if err := w.appendSpans(ctx, conn, spans, now); err != nil {
		return err
	}
	if rest != nil {
		if err := writeTable(ctx, w, conn, logsTable, rest.Logs, logRow, now); err != nil {
			return err
		}
		if err := writeTable(ctx, w, conn, metricsTable, rest.Metrics, metricRow, now); err != nil {
			return err
		}
		if err := writeTable(ctx, w, conn, scoresTable, rest.Scores, scoreRow, now); err != nil {
			return err
		}
		if err := writeTable(ctx, w, conn, feedbackTable, rest.Feedback, feedbackRow, now); err != nil {
			return err
		}
	}
	if w.beforeCommit != nil {
		w.beforeCommit()
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return classify(ctx, fmt.Errorf("duckdb: commit batch of %d rows: %w", rows, err))
	}
	w.seq.next += int64(len(spans))
	w.tail += int64(len(spans))
	return nil
}

// appendSpans appends the snapshots to span_versions, numbered in batch order from
// the seq counter's next; the caller holds w.seq.mu and advances next when the
// transaction commits.
func (w *Writer) appendSpans(ctx context.Context, conn *sql.Conn, spans []*schema.Span, now time.Time) error {
	if len(spans) == 0 {
		return nil
	}
	first := w.seq.next
	err := appendRows(ctx, w, conn, "", spanVersions, spans, spanRow, func(row []driver.Value, i int) []driver.Value {
		return append(row, first+int64(i), now, now, w.spanKeyHash(spans[i]))
	})
	if err != nil {
		return classify(ctx, fmt.Errorf("duckdb: insert spans batch of %d: %w", len(spans), err))
	}
	return nil
}

// rollback ends the failed transaction, even when ctx is done; the stage tables are
// emptied with it.
func (w *Writer) rollback(ctx context.Context, conn *sql.Conn) {
	_, err := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	var de *duckdbdriver.Error
	if err == nil || (errors.As(err, &de) && de.Type == duckdbdriver.ErrorTypeTransaction) {
		return // rolled back, or DuckDB already did (a failed COMMIT)
	}
	w.log.Warn("duckdb rollback failed; replacing the write connection", "err", err)
	w.noteInvalidated(err)
	w.closeConn()
}

// writeTable stages rows through the appender and merges them into t with one
// statement. Empty slices and nil elements are skipped.
func writeTable[T any](ctx context.Context, w *Writer, conn *sql.Conn, t *table, rows []*T,
	build func([]driver.Value, *T) ([]driver.Value, error), now time.Time,
) error {
	if len(rows) == 0 {
		return nil
	}
	err := appendRows(ctx, w, conn, "temp", t.stage, rows, build, func(row []driver.Value, i int) []driver.Value {
		return append(row, int64(i))
	})
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

// appendRows appends rows to catalog.main.table through DuckDB's appender: for each
// non-nil element, the values build produces, then those extra adds (it is given the
// element's position).
func appendRows[T any](ctx context.Context, w *Writer, conn *sql.Conn, catalog, table string, rows []*T,
	build func([]driver.Value, *T) ([]driver.Value, error), extra func([]driver.Value, int) []driver.Value,
) error {
	err := conn.Raw(func(dc any) error {
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		app, err := duckdbdriver.NewAppender(dconn, catalog, "main", table)
		if err != nil {
			return err
		}
		for i, r := range rows {
			if r == nil {
				continue
			}
			row, err := build(w.row[:0], r)
			if err == nil {
				row = extra(row, i)
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
	return err
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
			return nil, fmt.Errorf("duckdb: prepare %s table: %w", t.name, err)
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

// Close stops the background compaction, compacts the rest of span_versions
// (deletes the snapshots that newer ones supersede), then closes the database; DuckDB
// checkpoints the file on the way, which reclaims the deleted rows' space. A failed
// compaction is logged: the view still hides what it would have deleted. Writes
// after Close return [ErrClosed]. Close waits for a running Write and is idempotent.
func (w *Writer) Close() error {
	w.closing.Lock()
	defer w.closing.Unlock()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	w.stopCompaction()

	w.mu.Lock()
	defer w.mu.Unlock()
	w.compactOnClose()
	var errs []error
	if w.conn != nil {
		errs = append(errs, w.conn.Close())
		w.conn = nil
	}
	errs = append(errs, w.release())
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
	// The file cannot be written at all: the batch waits in Kafka, with backpressure,
	// instead of being retried a few times and dead-lettered (see recover.go).
	if diskFull(err) || invalidatedDB(err) {
		return pipeline.Unavailable(err)
	}
	var de *duckdbdriver.Error
	if !errors.As(err, &de) {
		return err
	}
	// The appender reports a constraint failed by appended rows as "Failed to append:
	// <message>" without its type, which only the message still tells.
	if de.Type == duckdbdriver.ErrorTypeInvalid && strings.HasPrefix(de.Msg, "Failed to append: ") &&
		strings.Contains(de.Msg, "constraint failed") {
		return pipeline.Permanent(err)
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
