package consumer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/backoff"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// errExpired is the cause in retention-expired drop events.
var errExpired = errors.New("records deleted from the topic (retention or DeleteRecords) before the consumer group read them")

// freshPartitions collects the partitions assigned since the poll loop last read
// their committed offsets. The rebalance callback only notes them: reading makes
// requests, and belongs to the goroutine that Run owns.
type freshPartitions struct {
	mu      sync.Mutex
	pending map[string][]int32
}

func (f *freshPartitions) note(assigned map[string][]int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending == nil {
		f.pending = make(map[string][]int32)
	}
	for t, ps := range assigned {
		f.pending[t] = append(f.pending[t], ps...)
	}
}

func (f *freshPartitions) take() map[string][]int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pending
	f.pending = nil
	return p
}

// checkAssigned reads the group's committed offset of every partition assigned since
// the last call that this member still owns, as the offset it expects next: franz-go
// resumes a partition whose committed offset fell below the log start at the log
// start, without an error, and reportGaps then sees the jump. The poll loop calls it
// right after a poll returns and before it adds the poll's records: the records of a
// newly assigned partition arrive at the earliest in the poll after its assignment,
// and the previous owner committed before it let go (cooperative rebalancing, and
// the flush in release), so the offset read is current. A partition without a commit
// has lost nothing to this group (it starts where the reset offset says). If the
// offsets cannot be read (within a third of the session timeout, at most 10s), that
// is logged, and a loss at assignment goes unreported.
func (c *Consumer) checkAssigned(ctx context.Context) {
	pending := c.fresh.take()
	if len(pending) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, min(c.cfg.SessionTimeout/3, 10*time.Second))
	defer cancel()
	committed, err := kadm.NewClient(c.cl).FetchOffsets(ctx, c.cfg.Group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		c.log.Warn("cannot read committed offsets of assigned partitions; records deleted before they were read may go unreported", "err", err)
		return
	}
	c.assignedMu.Lock()
	defer c.assignedMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for t, ps := range pending {
		for _, p := range ps {
			if _, ok := c.assigned[t][p]; !ok {
				continue
			}
			if o, ok := committed.Lookup(t, p); ok && o.Err == nil && o.At >= 0 {
				c.next[topicPartition{t, p}] = o.At
			}
		}
	}
}

// gap is offsets [from, to) of a partition that a poll skipped.
type gap struct {
	tp       topicPartition
	from, to int64
}

// reportGaps finds the offsets recs skip over and reports those Kafka deleted before
// this group read them as retention-expired drop events (no dead letters: the
// payload is gone), before any record after them can be committed. A skip is also
// what compaction, transaction markers and aborted transactions look like; only the
// part below the partition's log start offset is a loss. It returns false when ctx
// ended before the loss was on the drop topic.
func (c *Consumer) reportGaps(ctx context.Context, recs []*kgo.Record) bool {
	var gaps []gap
	c.mu.Lock()
	seen := make(map[topicPartition]int64)
	for _, rec := range recs {
		tp := topicPartition{rec.Topic, rec.Partition}
		exp, ok := seen[tp]
		if !ok {
			exp, ok = c.next[tp]
		}
		if ok && rec.Offset > exp {
			gaps = append(gaps, gap{tp, exp, rec.Offset})
		}
		seen[tp] = rec.Offset + 1
	}
	c.mu.Unlock()
	if len(gaps) == 0 {
		return true
	}
	topics := make(map[string]bool)
	for _, g := range gaps {
		topics[g.tp.topic] = true
	}
	var starts kadm.ListedOffsets
	for try := 1; ; try++ {
		var err error
		starts, err = kadm.NewClient(c.cl).ListStartOffsets(ctx, slices.Sorted(maps.Keys(topics))...)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false
		}
		wait := c.retry.Delay(try, 0)
		c.log.Warn("cannot read log start offsets to tell a retention gap; partition held back", "retry_in", wait, "err", err)
		if backoff.Sleep(ctx, wait) != nil {
			return false
		}
	}
	for _, g := range gaps {
		s, ok := starts.Lookup(g.tp.topic, g.tp.partition)
		if !ok || s.Err != nil || s.Offset <= g.from {
			continue
		}
		last := min(s.Offset, g.to) - 1
		cause := fmt.Errorf("%w: expected offset %d, log start offset %d", errExpired, g.from, s.Offset)
		if err := c.reportLost(ctx, g.tp, g.from, last, cause); err != nil {
			return false
		}
	}
	return true
}

// reportLost publishes and counts a retention-expired drop event for offsets
// [first, last] of tp, retrying until Kafka has it or ctx ends.
func (c *Consumer) reportLost(ctx context.Context, tp topicPartition, first, last int64, cause error) error {
	n := last - first + 1
	now := time.Now().UTC()
	ev := dropalerts.Event{
		Signal:    "unknown",
		Reason:    dropalerts.ReasonRetentionExpired,
		Count:     int(n),
		FirstTime: now,
		LastTime:  now,
		Component: dropalerts.ComponentConsumer,
		Instance:  c.instance,
		Sink:      c.sink,
		Error:     dropalerts.SanitizeError(cause),
		Source:    &dropalerts.Source{Topic: tp.topic, Partition: tp.partition, FirstOffset: first, LastOffset: last},
	}
	c.log.Error("records deleted before they were consumed", "reason", ev.Reason, "count", n,
		"topic", tp.topic, "partition", tp.partition, "first_offset", first, "last_offset", last)
	if err := pipeline.PublishRetrying(ctx, c.drops, c.retry, ev, nil, c.log); err != nil {
		return err
	}
	c.m.dropped.WithLabelValues("unknown", string(dropalerts.ReasonRetentionExpired), dropalerts.ComponentConsumer).Add(float64(n))
	return nil
}

// lagRefreshInterval is how often the lag gauge is refreshed.
var lagRefreshInterval = 5 * time.Second

// lagLoop refreshes the lag gauge from the group's committed offsets until ctx ends.
// Committed, not fetched: a member that keeps fetching but cannot store (a stuck
// writer) must show growing lag, which is what the lag alerts need.
func (c *Consumer) lagLoop(ctx context.Context) {
	t := time.NewTicker(lagRefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.refreshLag(ctx)
		}
	}
}

func (c *Consumer) refreshLag(ctx context.Context) {
	owned := c.owned()
	if len(owned) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	adm := kadm.NewClient(c.cl)
	topics := slices.Sorted(maps.Keys(owned))
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		c.log.Debug("lag refresh: list end offsets", "err", err)
		return
	}
	committed, err := adm.FetchOffsets(ctx, c.cfg.Group)
	if err != nil {
		c.log.Debug("lag refresh: fetch committed offsets", "err", err)
		return
	}
	var starts kadm.ListedOffsets // read only when a partition has no commit yet
	for t, ps := range owned {
		for _, p := range ps {
			end, ok := ends.Lookup(t, p)
			if !ok || end.Err != nil {
				continue
			}
			from := int64(-1)
			if o, ok := committed.Lookup(t, p); ok && o.Err == nil && o.At >= 0 {
				from = o.At
			} else {
				if starts == nil {
					if starts, err = adm.ListStartOffsets(ctx, topics...); err != nil {
						return
					}
				}
				if s, ok := starts.Lookup(t, p); ok && s.Err == nil {
					from = s.Offset
				}
			}
			if from >= 0 && c.isAssigned(t, p) {
				c.m.lag.WithLabelValues(t, strconv.Itoa(int(p))).Set(float64(max(0, end.Offset-from)))
			}
		}
	}
}

func (c *Consumer) isAssigned(topic string, p int32) bool {
	c.assignedMu.Lock()
	defer c.assignedMu.Unlock()
	_, ok := c.assigned[topic][p]
	return ok
}
