package consumer

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// SetLagRefreshInterval shortens the paused-lag refresh for a test; it returns the
// function that restores it.
func SetLagRefreshInterval(d time.Duration) func() {
	old := lagRefreshInterval
	lagRefreshInterval = d
	return func() { lagRefreshInterval = old }
}

// Commit runs the writer's commit of offs.
func (c *Consumer) Commit(ctx context.Context, offs map[string]map[int32]kgo.EpochOffset) {
	c.commit(ctx, offs)
}

// Assign and Revoke run the rebalance callbacks as the client would.
func (c *Consumer) Assign(ctx context.Context, parts map[string][]int32) {
	c.onAssigned(ctx, c.cl, parts)
}
func (c *Consumer) Revoke(ctx context.Context, parts map[string][]int32) {
	c.onRevoked(ctx, c.cl, parts)
}

// CloseQueue is the step of Run's shutdown after which the writer takes no more jobs.
func (c *Consumer) CloseQueue() { c.q.close() }
