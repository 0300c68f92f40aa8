// Package dropalerts turns every loss of data into something an operator can see and
// act on: a drop event on the drop topic (default "spanpipe.drops") and, where the
// original records exist, the records themselves as dead letters with headers saying
// why, from where and how often they were tried.
//
// [Publisher.Publish] is synchronous and returns only when Kafka has acknowledged
// every record it wrote (acks=all), so a caller may commit its source offsets after a
// nil return and must not before. Publisher is safe for concurrent use and starts no
// goroutines of its own (its kgo client does; [Publisher.Close] stops them).
//
// Metrics:
//   - spanpipe_dropalerts_events_total{reason,component}: drop events published.
//   - spanpipe_dropalerts_dead_letters_total{reason,component}: original records published.
//   - spanpipe_dropalerts_publish_failures_total{component}: attempts to publish that
//     failed. Critical: the source partition does not advance while this grows.
//   - spanpipe_dropped_records_total{signal,reason,component="alert"}: drop events
//     the alerter could not read (reason decode-error), so could not alert on.
//   - spanpipe_dropalerts_alerts_sent_total{receiver,outcome},
//     spanpipe_dropalerts_open_alerts, spanpipe_dropalerts_events_consumed_total{reason}:
//     the alerter's deliveries, open alerts and drop events read.
package dropalerts
