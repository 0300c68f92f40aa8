// Package pipeline turns Kafka records into sink writes: it decodes each record
// (package schema), applies the strategy (realtime, batch-with-updates, insert-only,
// auto), coalesces a span's snapshots inside a batch into its newest version, seals
// batches on size, bytes, time, memory pressure, revoke and shutdown, writes them to a
// [Sink] with exponential backoff, and sends what cannot be stored to the drop topic.
//
// Invariant: [Pipeline.Write] returns nil only when every record of the unit is durably
// in the sink or on the drop topic, so committing the unit's offsets afterwards never
// loses data. Sinks must be idempotent, so writing a unit twice (after a crash or a
// rebalance) changes nothing.
//
// Drop reasons produced here: decode-error, too-large, unsupported-storage,
// retry-exhausted, sink-rejected (a [Permanent] sink error).
//
// Concurrency: see [Pipeline]. The package starts no goroutines.
//
// Metrics:
//   - spanpipe_pipeline_records_consumed_total{signal}
//   - spanpipe_pipeline_span_events_skipped_total{strategy}
//   - spanpipe_pipeline_span_snapshots_coalesced_total
//   - spanpipe_pipeline_flushes_total{trigger}
//   - spanpipe_pipeline_batch_size_records (histogram)
//   - spanpipe_pipeline_buffered_records (gauge)
//   - spanpipe_sink_rows_written_total{sink,signal}
//   - spanpipe_sink_write_duration_seconds{sink,outcome} (histogram)
//   - spanpipe_sink_retries_total{sink}, spanpipe_sink_errors_total{sink,kind}
//   - spanpipe_sink_last_success_timestamp_seconds{sink}
//   - spanpipe_dropped_records_total{signal,reason,component="consumer"}
package pipeline
