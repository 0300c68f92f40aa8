// Package producer is what applications import to publish AI-agent observability data
// (spans, logs, metrics, scores, feedback) to Kafka for spanpipe.
//
// Create one [Producer] per process with [New] and close it with [Producer.Close] on
// the way out. Start spans with [Producer.StartSpan]; every Update and End emits a full
// snapshot with a higher version. Records are keyed by trace id, so a trace's events
// stay in order on one partition, and sent by an idempotent franz-go producer with
// acks=all, compression and linger.
//
// Emit never blocks under the default policy: when the bounded buffer is full the
// event is dropped. Every drop (buffer full, Kafka unreachable past DeliveryTimeout,
// too large, not encodable) is counted in spanpipe_dropped_records_total, reported to
// the [WithOnDrop] callback, and published as a drop event on the drop topic once Kafka
// accepts it. Nothing is lost silently.
//
// The sensitive-data filter ([Redactor]) is on by default with Mastra's 15 keys.
//
// This package must not depend on sinks (DuckDB, ClickHouse): CI checks its imports.
//
// Metrics: spanpipe_producer_records_sent_total{signal},
// spanpipe_producer_buffered_records, spanpipe_producer_drop_events_published_total,
// spanpipe_dropped_records_total{signal,reason,component="producer"}.
package producer
