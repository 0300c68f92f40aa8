// Package duckdb is the DuckDB sink: a [pipeline.Sink] that stores spans, logs,
// metrics, scores and feedback in one embedded DuckDB database file.
//
// [Open] opens or creates the file and applies the embedded migrations
// (migrations/NNNN_name.sql, recorded in the spanpipe_migrations table, each applied
// at most once). There is one table per signal: spans keeps one row per
// (trace_id, span_id), replaced only by a snapshot of a higher version or of the same
// version and an equal or higher rank (ended > updated > started, the rank column),
// so the newest snapshot wins whatever the arrival order; logs and metrics keep the
// first row per id; scores and feedback keep the one with the latest timestamp (the
// last delivered on a tie). Payloads are stored as JSON
// text in VARCHAR columns, so no DuckDB extension is needed.
//
// [Writer.Write] appends a batch through DuckDB's appender into per-connection TEMP
// stage tables and merges each signal into its table with one INSERT … ON CONFLICT
// statement, all in one transaction: a batch is stored entirely or not at all, and
// storing it twice leaves the same rows as storing it once.
//
// # Concurrency
//
// A [Writer] is safe for concurrent use. Writes are serialised on one dedicated
// connection; the read helpers ([Writer.CountRows], [Writer.Span]) use other
// connections and see committed batches only. A database file can be open
// read-write in one process at a time (DuckDB locks it); [OpenReadOnly] opens it
// read-only for inspection when no writer holds it.
//
// # Goroutines
//
// The package starts no goroutines of its own. (The DuckDB driver runs a short-lived
// one per statement to interrupt it when its context is cancelled.)
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
