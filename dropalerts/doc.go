// Package dropalerts is the small core every layer may use to turn a loss of data
// into something an operator can see and act on: the drop reasons, the drop event,
// the headers, the one dead-letter codec ([EventRecord], [DeadLetterInfo.AppendHeaders],
// [ParseDeadLetter], [OriginalRecord]) and the [Publisher] that writes drop events to
// the drop topic (default "spanpipe.drops") and the original records as dead letters.
// Alerting on drop events lives in package alerting, replaying dead letters in
// package replay.
//
// [Publisher.Publish] is synchronous and returns only when Kafka has acknowledged
// every record it wrote (acks=all), so a caller may commit its source offsets after a
// nil return and must not before. It cuts its writes to the drop and dead-letter
// topics' real max.message.bytes (read with kadm; missing topics are created with the
// drops.* settings), publishes a dead letter larger than that truncated with headers
// saying so, retries transient failures on the one backoff schedule
// (internal/backoff) until its ctx ends, and returns an error wrapping
// [ErrPermanent] at once when retrying cannot help. Publisher is safe for concurrent
// use (writes are serialised) and starts no goroutines of its own (its kgo client
// does; [Publisher.Close] stops them).
//
// Metrics:
//   - spanpipe_dropalerts_events_total{reason,component}: drop events published.
//   - spanpipe_dropalerts_dead_letters_total{reason,component}: original records published.
//   - spanpipe_dropalerts_truncated_dead_letters_total{reason,component}: dead letters
//     published cut to the dead-letter topic's limit (they cannot be replayed).
//   - spanpipe_dropalerts_publish_failures_total{component}: attempts to publish that
//     failed. Critical: the source partition does not advance while this grows.
//
// spanpipe_dropped_records_total{signal,reason,component}, the counter of every loss
// path, is registered through internal/promx by whichever component sees the loss.
package dropalerts
