// Package clickhouse is the ClickHouse sink: a [pipeline.Sink] that stores spans, logs,
// metrics, scores and feedback in ClickHouse over the native protocol, with
// github.com/ClickHouse/clickhouse-go/v2 (schema, reads, the mastra layout's inserts)
// and github.com/ClickHouse/ch-go (the inserts of spanpipe's own tables).
//
// # Schema
//
// The DDL is embedded (sql/bootstrap.sql, sql/migrations/NNNN_name.sql), rendered with
// text/template for the database, the cluster (ON CLUSTER), the engine (MergeTree or
// Replicated*) and the TTL of each signal, and applied by [Migrate] (or by [Open] with
// [Config.AutoMigrate]); applied migrations are recorded in spanpipe_migrations.
//
//   - spans: ReplacingMergeTree(ordering), ordering = (version << 8) + rank, ORDER BY
//     (trace_id, span_id), PARTITION BY toDate(started_at). The newest snapshot of a
//     span wins whatever the arrival order, and on a version tie the ended one
//     ([schema.Span.Rank]); the sort key is also the index of a trace lookup. Reads
//     use FINAL.
//   - trace_roots: the root span of each trace without its payloads, ordered by start
//     for "list recent traces", filled by the materialized view trace_roots_mv.
//   - logs, metrics: ReplacingMergeTree keyed on their id (and on values that never
//     change for an id), so a redelivered event is stored once.
//   - scores, feedback: ReplacingMergeTree(timestamp) ORDER BY (trace_id, id), no
//     partition: one row per id, the latest timestamp (a replayed older record never
//     replaces a newer one).
//
// With [Config.Cluster] set, the data lives in <table>_local on every shard and
// <table> is a Distributed table (spans and trace_roots sharded by trace id, so that
// a span's snapshots meet on one shard); inserts into it are synchronous.
//
// With [Config.Layout] "mastra" ([LayoutMastra], mastra_layout.go) the writer inserts
// into Mastra's own base tables instead (mastra_span_events, mastra_log_events,
// mastra_metric_events, mastra_score_events, mastra_feedback_events, as
// @mastra/clickhouse 1.16.0's ClickhouseStoreVNext writes them), for Mastra Studio to
// read. Mastra's init() creates them; [Open] and [Migrate] only check their columns
// and set non_replicated_deduplication_window. Ended spans only (insert-only), and
// rows whose key is already stored are left out before each insert.
//
// # Configuration
//
// [Config] names the servers either with Addr, Username, Password, Database and TLS,
// or with one [Config.DSN] (clickhouse://user:password@host:9000/db?secure=true) that
// overrides them; [Config.Resolve] shows the result. An empty password is read from
// SPANPIPE_CLICKHOUSE_PASSWORD ([PasswordEnv]) when connecting. [Migrate] returns
// the migrations and TTL changes it applied ([MigrateResult]); `spanpipe migrate`
// prints them.
//
// # Writes and idempotency
//
// [Writer.Write] sends each signal of a batch as one native block per insert, built in
// ch-go columns that the writer keeps and reuses from insert to insert (String
// columns reference the batch's strings, copied once into the connection's buffer;
// clickhouse-go would convert each value through reflection into column buffers it
// allocates per insert), on a connection of the writer's own, dialled on first use
// and again after a failed insert. Each insert is split so that none exceeds [Config.MaxRowsPerInsert],
// [Config.MaxBytesPerInsert] or [Config.MaxPartitionsPerInsert] days. Every insert
// carries insert_deduplication_token = hash of the batch's Kafka source ranges + table
// + position in the batch + hash of its rows' keys, so a batch the pipeline retries
// after a partial failure is not inserted twice: the server skips the blocks it has
// already stored (Replicated tables keep replicated_deduplication_window tokens; the
// non-replicated tables set non_replicated_deduplication_window = 1000, without which
// the token does nothing). A redelivery in a differently cut batch is inserted again
// and collapses with the stored rows in the ReplacingMergeTree.
//
// # Concurrency
//
// A [Writer] is safe for concurrent use; writes are serialised by a mutex. The read
// helpers ([Writer.Trace], [Writer.CountSpans], [Writer.CountRows],
// [Writer.RecentTraces]) use the driver's connection pool and may run during a write.
//
// # Goroutines
//
// The package starts none itself. The clickhouse-go connection pool, opened by [Open]
// and [Migrate], runs a goroutine that closes idle connections until [Writer.Close]
// (Migrate closes its pool before returning); ch-go runs an insert's send and receive
// on goroutines that end before the insert returns.
//
// # Errors
//
// Errors are prefixed with "clickhouse:" and name the operation and table, e.g.
// "clickhouse: insert 1000 rows into spans: code: 252, message: Too many parts".
// Write wraps with [pipeline.Permanent] what a retry cannot fix: a row the column
// cannot hold (a time outside DateTime64(9)), a driver conversion error, a schema
// mismatch, and server exceptions such as UNKNOWN_TABLE (60), NO_SUCH_COLUMN_IN_TABLE
// (16), TYPE_MISMATCH (53), CANNOT_PARSE_* and ILLEGAL_TYPE_OF_ARGUMENT (43). It wraps
// with [pipeline.Unavailable] what says the store cannot take inserts at all, so that
// the pipeline waits with backpressure instead of dead-lettering: connection refused
// or reset, EOF on the socket, timeouts, a server shutting down (ABORTED 236,
// QUERY_WAS_CANCELLED 394), overload (TOO_MANY_PARTS 252, MEMORY_LIMIT_EXCEEDED 241,
// TOO_MANY_SIMULTANEOUS_QUERIES 202), UNKNOWN_STATUS_OF_INSERT (319), Keeper and
// replica trouble, a full disk, refused credentials. Unknown codes and anything else
// are returned as they are, for the pipeline to retry. Sentinel: [ErrClosed].
//
// # Metrics
//
// Registered on the registerer of [WithRegisterer], all with sink="clickhouse":
//   - spanpipe_sink_inserts_total{sink,table,outcome} (outcome ok or error)
//   - spanpipe_sink_insert_duration_seconds{sink,table} (histogram)
//   - spanpipe_sink_insert_rows{sink,table} (histogram of rows per insert)
//
// Rows, batches, retries and errors per sink are counted by the pipeline.
package clickhouse
