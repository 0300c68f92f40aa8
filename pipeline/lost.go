package pipeline

import (
	"context"
	"fmt"

	"github.com/spanpipe/spanpipe/dropalerts"
)

// ReportLost publishes a drop event for the records of topic and partition at
// offsets [first, last] that Kafka no longer has, so that they never reached this
// pipeline: reason is [dropalerts.ReasonRetentionExpired] when retention (or
// DeleteRecords) removed them before the group read them. There is no payload, so
// there are no dead letters and the signal is "unknown". It counts
// spanpipe_dropped_records_total and retries the publish like the dead-letter path,
// until it succeeds or ctx ends (then it returns ctx's error; the loss is counted
// and logged but has no drop event).
func (p *Pipeline) ReportLost(ctx context.Context, reason dropalerts.Reason, topic string, partition int32, first, last int64, cause error) error {
	if last < first {
		return nil
	}
	n := last - first + 1
	now := p.now().UTC()
	ev := dropalerts.Event{
		Signal:    "unknown",
		Reason:    reason,
		Count:     int(n),
		FirstTime: now,
		LastTime:  now,
		Component: dropalerts.ComponentConsumer,
		Instance:  p.instance,
		Sink:      p.sink.Name(),
		Error:     dropalerts.SanitizeError(cause),
		Source:    &dropalerts.Source{Topic: topic, Partition: partition, FirstOffset: first, LastOffset: last},
	}
	p.m.dropped.WithLabelValues("unknown", string(reason), dropalerts.ComponentConsumer).Add(float64(n))
	p.log.Error("records lost before they were consumed", "reason", reason, "count", n,
		"topic", topic, "partition", partition, "first_offset", first, "last_offset", last, "err", ev.Error)
	for try := 1; ; try++ {
		err := p.drops.Publish(ctx, ev, nil)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			p.log.Error("CRITICAL: the drop event for lost records was not published", "reason", reason, "count", n,
				"topic", topic, "partition", partition, "err", err)
			return fmt.Errorf("pipeline: report lost records: %w", ctx.Err())
		}
		wait := p.cfg.backoff(try)
		p.log.Error("CRITICAL: cannot publish drop event for lost records; retrying", "reason", reason, "retry_in", wait, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("pipeline: report lost records: %w", err)
		}
	}
}
