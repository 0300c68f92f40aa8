// Package duckdb is the DuckDB sink: a [pipeline.Sink] that stores spans, logs,
// metrics, scores and feedback in one embedded DuckDB database file.
//
// [Open] opens or creates the file and applies the embedded migrations
// (migrations/NNNN_name.sql, recorded in the spanpipe_migrations table, each applied
// at most once); it refuses a file that records a migration newer than it knows, which
// a newer spanpipe wrote and this one cannot write into. There is one table per
// signal, except spans: every span snapshot is appended, without a key or an index, to
// span_versions, and the spans view shows the newest snapshot of every (trace_id,
// span_id), that of the highest version, then rank (ended > updated > started), then
// the one written last; so the newest snapshot wins whatever the arrival order, and a
// redelivered one never shows twice. The writer compacts span_versions (deletes the
// superseded snapshots) every 100k rows or a tenth of the table, in the background,
// and on [Writer.Close]; the view only ranks the spans written since (see migrations
// 0005 and 0008). Each row carries key_hash, a hash of its key, so that compaction
// finds the spans with several versions by scanning that one column: an insert-only
// table, where Kafka rarely redelivers, mostly has none, and then nothing else is read
// (migration 0010). Logs and metrics keep the first row per id; scores and feedback
// keep the one with the latest timestamp (the last delivered on a tie). Payloads are
// stored as JSON text in VARCHAR columns, so no DuckDB extension is needed.
//
// [Writer.Write] appends a batch's spans through DuckDB's appender straight into
// span_versions, and the other signals into per-connection TEMP stage tables merged
// into their table with one INSERT … ON CONFLICT statement, all in one transaction: a
// batch is stored entirely or not at all, and storing it twice leaves the same rows
// (as readers see them) as storing it once.
//
// # Concurrency
//
// A [Writer] is safe for concurrent use. Writes are serialised on one dedicated
// connection; the read helpers ([Writer.CountRows], [Writer.Span]) use other
// connections and see committed batches only. A database file can be open
// read-write in one process at a time (DuckDB locks it); [OpenReadOnly] opens it
// read-only for inspection when no writer holds it.
//
// The file is attached to an in-memory DuckDB instance (the only way to set its row
// group size) as the catalog "spanpipe", which every connection USEs; Writers on one
// path in one process share that instance.
//
// # Goroutines
//
// A [Writer] runs at most one goroutine of its own: the background compaction of
// span_versions that a write starts every 100k rows or so, on a connection of its
// own, so that the writes after it do not wait for it. [Writer.Close] cancels it and
// waits for it. (The DuckDB driver runs a short-lived goroutine per statement to
// interrupt it when its context is cancelled.)
//
// # Errors
//
// Errors are prefixed with "duckdb:" and name the operation and table, e.g.
// "duckdb: insert spans batch of 1000: …". Write wraps with [pipeline.Permanent] the
// errors a retry cannot fix: constraint, conversion and type errors caused by the
// data, and schema mismatches (catalog, binder, parser errors). I/O, lock,
// transaction-conflict, out-of-memory and interruption errors, and any error after
// the context is done, stay retryable. Sentinels: [ErrClosed] (Write after Close) and
// [ErrNotFound] (Span of an unknown key).
//
// # Metrics
//
// The package emits no metrics: the pipeline counts rows, batches, flush durations,
// retries and errors per sink (label sink="duckdb"). [WithRegisterer] is accepted
// for uniformity with the other components.
package duckdb
