// Package consumer is a Kafka consumer-group member that feeds a [pipeline.Pipeline]
// and commits only what the pipeline reports durable.
//
// One poll loop (the goroutine that calls [Consumer.Run]) fetches, decodes and buffers;
// one writer goroutine, owned by Run, writes sealed batches in order and commits their
// offsets after each write. The group uses the cooperative-sticky balancer and
// kgo.BlockRebalanceOnPoll, so a rebalance never interleaves with buffering. When
// partitions are revoked the consumer seals its buffer, waits until every batch is
// written (or dead-lettered) and committed, and only then lets them go. When the
// pipeline holds MaxBufferSize records it pauses fetching until the writer catches up:
// a slow sink means lag, never unbounded memory. On shutdown it seals, drains within
// Config.ShutdownTimeout, commits, and leaves the group.
//
// On every assignment it compares the group's committed offsets with the partitions'
// log start offsets: records Kafka deleted (retention) before the group read them are
// reported as a drop event with reason retention-expired and counted in
// spanpipe_dropped_records_total, since franz-go resumes at the log start silently.
//
// Metrics:
//   - spanpipe_consumer_lag_records{topic,partition}: high watermark minus next offset.
//   - spanpipe_consumer_paused_partitions: partitions paused for backpressure.
//   - spanpipe_consumer_rebalances_total{event}: assigned, revoked, lost.
//   - spanpipe_consumer_commits_total{outcome}: ok or error.
//   - spanpipe_consumer_fetch_errors_total
package consumer
