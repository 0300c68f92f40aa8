package consumer_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A member the group refuses (not authorised) must not idle looking healthy: Run
// returns the error, so `spanpipe consume` exits non-zero.
func TestRunReturnsFatalGroupError(t *testing.T) {
	e := newEnv(t)
	e.cluster.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		resp := req.(*kmsg.JoinGroupRequest).ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil, true
	})
	m, closeDrops := e.build(e.sink, nil)
	defer closeDrops()
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, kerr.GroupAuthorizationFailed) {
			t.Fatalf("Run = %v, want the group authorization error", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return within 60s of a fatal group error")
	}
}

// Offsets of partitions this member no longer owns are never committed: the new owner
// commits them, and ours could move its offsets back.
func TestCommitSkipsPartitionsNotOwned(t *testing.T) {
	e := newEnv(t)
	e.kafka.RebalanceTimeout = 100 * time.Millisecond // no writer runs here to flush the revoke
	var commits atomic.Int64
	e.cluster.ControlKey(int16(kmsg.OffsetCommit), func(kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		commits.Add(1)
		return nil, nil, false
	})
	m, closeDrops := e.build(e.sink, nil)
	defer closeDrops()
	defer m.Close()
	// A topic of its own: the member's client joins the group in the background and
	// may really be given the spans topic's partitions, which it may then commit.
	const topic = "not-subscribed"
	offs := func() map[string]map[int32]kgo.EpochOffset {
		return map[string]map[int32]kgo.EpochOffset{topic: {0: {Epoch: -1, Offset: 5}, 1: {Epoch: -1, Offset: 7}}}
	}
	m.Commit(t.Context(), offs())
	if n := commits.Load(); n != 0 {
		t.Fatalf("%d commit requests for partitions never assigned, want 0", n)
	}
	m.Assign(t.Context(), map[string][]int32{topic: {0, 1}})
	m.Revoke(t.Context(), map[string][]int32{topic: {0, 1}})
	m.Commit(t.Context(), offs())
	if n := commits.Load(); n != 0 {
		t.Fatalf("%d commit requests for revoked partitions, want 0", n)
	}
}

// A rebalance in the shutdown window, after the writer stopped taking jobs and before
// the client left the group, used to send on a closed channel and panic.
func TestRevokeAfterTheQueueClosedDoesNotPanic(t *testing.T) {
	e := newEnv(t)
	m, closeDrops := e.build(e.sink, nil)
	defer closeDrops()
	defer m.Close()
	m.Assign(t.Context(), map[string][]int32{spansTopic: {0}})
	m.CloseQueue()
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Revoke(t.Context(), map[string][]int32{spansTopic: {0}})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("revoke after the queue closed did not return")
	}
}
