package consumer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/twmb/franz-go/pkg/kadm"
)

// errExpired is the cause in retention-expired drop events.
var errExpired = errors.New("records deleted from the topic (retention or DeleteRecords) before the consumer group read them")

// expiredCheck collects the partitions assigned since the poll loop last checked for
// records lost to retention. The rebalance callback only notes them: the check makes
// requests, and belongs to the goroutine that Run owns.
type expiredCheck struct {
	mu      sync.Mutex
	pending map[string][]int32
}

func (e *expiredCheck) note(assigned map[string][]int32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pending == nil {
		e.pending = make(map[string][]int32)
	}
	for t, ps := range assigned {
		e.pending[t] = append(e.pending[t], ps...)
	}
}

func (e *expiredCheck) take() map[string][]int32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.pending
	e.pending = nil
	return p
}

// checkExpired runs reportExpired for the partitions assigned since the last call
// that this member still owns. The poll loop calls it right after a poll returns and
// before it adds the poll's records to the pipeline: the records of a newly
// assigned partition arrive at the earliest in the poll after its assignment, so no
// commit of ours has moved the partition's committed offset yet when it is compared.
func (c *Consumer) checkExpired(ctx context.Context) {
	pending := c.expired.take()
	if len(pending) == 0 {
		return
	}
	owned := make(map[string][]int32)
	c.assignedMu.Lock()
	for t, ps := range pending {
		for _, p := range ps {
			if _, ok := c.assigned[t][p]; ok && !slices.Contains(owned[t], p) {
				owned[t] = append(owned[t], p)
			}
		}
	}
	c.assignedMu.Unlock()
	c.reportExpired(ctx, owned)
}

// reportExpired finds records that Kafka deleted before this group read them and
// reports each range as a drop event (reason retention-expired, no dead letters: the
// payload is gone). franz-go resumes a partition whose committed offset fell below
// the log start at the log start, without an error, so comparing the two at
// assignment is the only place that loss shows: for every given partition with a
// committed offset below its log start offset, [committed, logStart) was lost. A
// partition without a commit has lost nothing to this group (it starts where the
// reset offset says). The check takes at most a third of the session timeout
// (capped at 10s); if it cannot run, that is logged and the loss goes unreported.
//
// The previous owner of a partition commits before it lets go (cooperative
// rebalancing, and the flush in release), so the committed offset read here is
// current. A member that dies after the report and before its first commit on the
// partition reports the range again: drop events are at least once.
func (c *Consumer) reportExpired(ctx context.Context, assigned map[string][]int32) {
	if len(assigned) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, min(c.cfg.SessionTimeout/3, 10*time.Second))
	defer cancel()
	adm := kadm.NewClient(c.cl)
	committed, err := adm.FetchOffsets(ctx, c.cfg.Group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		c.log.Warn("cannot check assigned partitions for records lost to retention", "err", err)
		return
	}
	topics := slices.Sorted(maps.Keys(assigned))
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		c.log.Warn("cannot check assigned partitions for records lost to retention", "err", err)
		return
	}
	for _, topic := range topics {
		for _, p := range assigned[topic] {
			o, ok := committed.Lookup(topic, p)
			if !ok || o.Err != nil || o.At < 0 {
				continue
			}
			s, ok := starts.Lookup(topic, p)
			if !ok || s.Err != nil || o.At >= s.Offset {
				continue
			}
			cause := fmt.Errorf("%w: committed offset %d, log start offset %d", errExpired, o.At, s.Offset)
			if err := c.pl.ReportLost(ctx, dropalerts.ReasonRetentionExpired, topic, p, o.At, s.Offset-1, cause); err != nil {
				c.log.Warn("retention-expired records counted but not reported on the drop topic", "topic", topic, "partition", p, "err", err)
			}
		}
	}
}
