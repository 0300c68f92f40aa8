// Package pipeline turns Kafka records into sink writes. It has two parts, each behind
// a small interface the consumer declares:
//
//   - [Batcher] decodes each record (package schema), applies the strategy (realtime,
//     batch-with-updates, insert-only, auto), coalesces a span's snapshots inside a
//     batch into the one that supersedes the others ([schema.Span.Supersedes]), and
//     makes every flush decision ([Trigger]: size, bytes, pressure and realtime when
//     a record is added, time in [Batcher.Due]; the consumer seals on revoke and
//     shutdown). It knows nothing of Kafka offsets.
//   - [Writer] writes a sealed [Unit] to a [Sink] with the one backoff schedule
//     (internal/backoff), splits a rejected batch down to the records the sink
//     refuses, and sends what cannot be stored to the drop topic.
//
// Invariant: [Writer.Write] returns nil only when every record of the unit is durably
// in the sink or on the drop topic, so committing the unit's offsets afterwards never
// loses data; a record is stored or dead-lettered, never both. Sinks must be
// idempotent, so writing a unit twice (after a crash or a rebalance) changes nothing.
//
// Sink errors: [Unavailable] is retried for as long as it lasts (never dead-lettered);
// [Permanent] splits the batch (sink-rejected for the records refused); any other is
// retried MaxRetries times, then dead-lettered (retry-exhausted) or, under
// on_retry_exhausted: block, retried for ever.
//
// Repairs: a span_ended without endTime is stored ending at its record's Kafka
// timestamp (never before its start), counted as kind missing_end_time.
//
// Drop reasons produced here: decode-error (with the signal when the envelope's type
// was readable), too-large, unsupported-storage, retry-exhausted, sink-rejected.
//
// Concurrency: see [Batcher] and [Writer]. The package starts no goroutines.
//
// Metrics:
//   - spanpipe_pipeline_records_consumed_total{signal}
//   - spanpipe_pipeline_span_events_skipped_total{strategy}
//   - spanpipe_pipeline_span_snapshots_coalesced_total
//   - spanpipe_pipeline_repaired_records_total{kind}
//   - spanpipe_pipeline_running_spans (gauge; insert-only: started, not yet ended)
//   - spanpipe_pipeline_spans_never_ended_total (insert-only: running past an hour, never stored)
//   - spanpipe_pipeline_flushes_total{trigger}
//   - spanpipe_pipeline_batch_size_records (histogram)
//   - spanpipe_pipeline_buffered_records (gauge)
//   - spanpipe_pipeline_oldest_unwritten_age_seconds (gauge, computed at scrape)
//   - spanpipe_pipeline_batch_splits_total
//   - spanpipe_sink_rows_written_total{sink,signal}
//   - spanpipe_sink_write_duration_seconds{sink,outcome} (histogram)
//   - spanpipe_sink_retries_total{sink}, spanpipe_sink_errors_total{sink,kind}
//     (kind: retryable, unavailable, permanent)
//   - spanpipe_sink_last_success_timestamp_seconds{sink}
//   - spanpipe_dropped_records_total{signal,reason,component="consumer"}
package pipeline
