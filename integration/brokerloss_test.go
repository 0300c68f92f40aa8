package integration

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// TestBrokerLossThreeNodes: on a 3-broker cluster of its own (replication factor 3,
// min.insync.replicas=2), two consumers share a topic that traces are produced to at a
// steady rate (SPANPIPE_IT_3B_SPANS over SPANPIPE_IT_3B_DURATION) with acks=all. A
// quarter of the way in, the node that coordinates the consumer group is SIGKILLed and
// stays down to the end. Producing and consuming continue without it (acknowledged
// and committed offsets keep growing while it is down), the producer drops nothing,
// and every span is stored at its newest version.
func TestBrokerLossThreeNodes(t *testing.T) {
	l := ownLauncher(t, 3)
	s := newScenario(t, l.bootstrap, 6)
	spans := envInt("SPANPIPE_IT_3B_SPANS", 9000)
	duration := envDuration("SPANPIPE_IT_3B_DURATION", 30*time.Second)

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	checkReplication(t, s, 3, "2")

	cs := []*consumerProc{s.startConsumer("c0", s.db(0)), s.startConsumer("c1", s.db(1))}
	s.waitAssigned(cs...)

	traces := (spans + 5) / 6
	var progress atomic.Int64
	type result struct {
		run demoRun
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		r, err := s.produceDemo(ctx, demoOpts{traces: traces, rate: float64(traces) / duration.Seconds(), progress: &progress})
		done <- result{r, err}
	}()

	s.eventually(2*time.Minute, "a quarter of the traces produced and some committed", func() bool {
		_, _, committed := s.mustLag()
		return progress.Load() >= int64(traces/4) && committed > 0
	})
	co := s.adm.FindGroupCoordinators(ctx, s.group)
	victim := int32(-1)
	for _, c := range co {
		if c.Err == nil {
			victim = c.NodeID
		}
	}
	if victim < 1 || victim > 3 {
		t.Fatalf("no coordinator for group %s: %v", s.group, co)
	}
	if err := l.kill(ctx, int(victim)); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// Until clients notice the dead node, offset requests to it fail: retry.
	var endAtKill, committedAtKill int64
	s.eventually(time.Minute, "the offsets at the kill", func() bool {
		var err error
		_, endAtKill, committedAtKill, err = s.lag(ctx)
		return err == nil
	})
	t.Logf("killed node %d (the group coordinator) at %d records acknowledged, %d committed", victim, endAtKill, committedAtKill)

	// With the node down, acknowledged (acks=all: 2 in-sync replicas) and committed
	// offsets both keep moving.
	var resumed time.Duration
	s.eventually(3*time.Minute, fmt.Sprintf("producing and consuming to continue with node %d down", victim), func() bool {
		_, end, committed, err := s.lag(ctx)
		if err == nil && end > endAtKill+200 && committed > committedAtKill+200 {
			resumed = time.Since(killed)
			return true
		}
		return false
	})
	t.Logf("producing and consuming continued %s after the kill", resumed.Round(100*time.Millisecond))

	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		t.Fatal("producer did not finish")
	}
	if res.err != nil || res.run.dropped != 0 {
		t.Fatalf("producing: %v, %d dropped under the block policy", res.err, res.run.dropped)
	}
	records := s.waitCommitted(5 * time.Minute)
	took := time.Since(start)
	s.stopAll()

	truth := s.readSpansTopic()
	if len(truth.spans) != res.run.spans || truth.records != res.run.sent || records != res.run.sent {
		t.Fatalf("topic holds %d spans in %d records (end offsets %d); produced %d spans, %d records acknowledged",
			len(truth.spans), truth.records, records, res.run.spans, res.run.sent)
	}
	view := readStores(t, s.dbs())
	checkStore(t, view, truth)
	drops := s.readDropTopic()
	if n := len(drops.letters) + len(drops.events); n != 0 {
		t.Errorf("%d records on the drop topic, want none", n)
	}
	consumed := sumAll(finals(cs), "spanpipe_pipeline_records_consumed_total")
	rss, _ := peaks(cs)
	logFigures(t, "records_produced", res.run.sent, "spans_produced", res.run.spans, "stored", view.distinct(),
		"rows", view.rows, "redelivered_rows", view.rows-view.distinct(), "redelivered", consumed-float64(res.run.sent),
		"dead_lettered", len(drops.letters), "killed_node", victim, "resumed_after", resumed.Round(100*time.Millisecond),
		"peak_rss", rss, "duration", took.Round(time.Second))
}

// checkReplication asserts that every partition of the scenario's spans topic has rf
// replicas and that the topic's effective min.insync.replicas is minISR.
func checkReplication(t *testing.T, s *scenario, rf int, minISR string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	topics, err := s.adm.ListTopics(ctx, s.topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range topics[s.topic].Partitions {
		if len(p.Replicas) != rf {
			t.Fatalf("%s[%d] has replicas %v, want %d", s.topic, p.Partition, p.Replicas, rf)
		}
	}
	// A broker that has not caught up with the new topic's metadata answers the
	// describe with an error for the resource: ask again until one knows it.
	var value *string
	found := false
	s.eventually(30*time.Second, "min.insync.replicas of the new topic described", func() bool {
		cfgs, err := s.adm.DescribeTopicConfigs(ctx, s.topic)
		if err != nil {
			return false
		}
		for _, rc := range cfgs {
			if rc.Err != nil {
				continue
			}
			for _, c := range rc.Configs {
				if c.Key == "min.insync.replicas" {
					found, value = true, c.Value
				}
			}
		}
		return found
	})
	if value == nil || *value != minISR {
		t.Fatalf("%s: min.insync.replicas %v, want %s", s.topic, value, minISR)
	}
}
