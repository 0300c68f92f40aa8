// Package alerting reads drop events from the drop topic and turns them into alerts:
// aggregated per (reason, signal, sink, component), posted to Alertmanager's API v2
// and optionally to a webhook in Alertmanager's webhook format. [Alerter.Run] owns
// its Kafka client and the goroutines of one round of posts, and returns after a
// last delivery attempt and commit when its ctx ends. Drop-topic offsets are
// committed only once what they carried was delivered; failed posts are retried on
// the one backoff schedule (internal/backoff), honouring Retry-After.
//
// Whatever a drop event says is untrusted (anyone with write access to the drop topic
// can forge one): label values are bounded and made valid UTF-8, and a suggested
// replay command is only built from an allow-listed reason and a legal topic name.
//
// Metrics (their names keep the dropalerts subsystem they were born in, so that
// dashboards and rules keep working):
//   - spanpipe_dropalerts_alerts_sent_total{receiver,outcome},
//     spanpipe_dropalerts_open_alerts, spanpipe_dropalerts_events_consumed_total{reason}:
//     deliveries, open alerts and drop events read.
//   - spanpipe_dropped_records_total{signal,reason,component="alert"}: drop events
//     the alerter could not read (reason decode-error), so could not alert on.
package alerting
