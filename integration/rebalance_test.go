package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestRebalanceStorm: while traces are produced at a steady rate, consumer processes
// join and leave the group every SPANPIPE_IT_CHURN_INTERVAL, for at least ten
// rebalances (group generations, counted from the consumers' logs). Every revoke must
// flush and commit before letting go, so nothing is lost; what is redelivered across
// processes collapses in the union view.
func TestRebalanceStorm(t *testing.T) {
	s := newScenario(t, sharedBrokers(t), 12)
	spans := envInt("SPANPIPE_IT_STORM_SPANS", 20000)
	duration := envDuration("SPANPIPE_IT_STORM_DURATION", 40*time.Second)
	interval := envDuration("SPANPIPE_IT_CHURN_INTERVAL", 3*time.Second)
	minRebalances := envInt("SPANPIPE_IT_MIN_REBALANCES", 10)
	const slots = 5 // DuckDB files; at most one running process per file

	// Slot i runs at most one process at a time, on file c<i>.duckdb.
	running := make(map[int]*consumerProc)
	started := 0
	start := func(slot int) {
		started++
		running[slot] = s.startConsumer(fmt.Sprintf("c%d-%d", slot, started), s.db(slot))
	}
	start(0)
	start(1)
	s.waitAssigned(running[0], running[1])

	traces := (spans + 5) / 6
	ctx, cancel := context.WithTimeout(t.Context(), duration+10*time.Minute)
	defer cancel()
	type result struct {
		run demoRun
		err error
	}
	produced := make(chan result, 1)
	go func() {
		r, err := s.produceDemo(ctx, demoOpts{traces: traces, rate: float64(traces) / duration.Seconds()})
		produced <- result{r, err}
	}()

	// Churn: keep 1..4 members, otherwise join or leave at random.
	changes := 0
	var res *result
	for res == nil || changes < minRebalances {
		select {
		case r := <-produced:
			res = &r
			continue
		case <-time.After(interval):
		}
		s.checkAlive()
		var free, busy []int
		for i := range slots {
			if running[i] != nil {
				busy = append(busy, i)
			} else {
				free = append(free, i)
			}
		}
		join := len(busy) <= 1 || (len(busy) < 4 && rand.IntN(2) == 0)
		if join {
			start(free[rand.IntN(len(free))])
		} else {
			slot := busy[rand.IntN(len(busy))]
			running[slot].stop()
			delete(running, slot)
		}
		changes++
	}
	if res.err != nil {
		t.Fatalf("producing: %v", res.err)
	}
	if res.run.dropped != 0 {
		t.Fatalf("the producer dropped %d records under the block policy", res.run.dropped)
	}
	records := s.waitCommitted(10 * time.Minute)
	s.stopAll()

	gens := make(map[int]bool)
	for _, p := range s.all() {
		for _, g := range p.generations() {
			gens[g] = true
		}
	}
	all := s.all()
	fin := finals(all)
	rebalanceEvents := sumAll(fin, "spanpipe_consumer_rebalances_total")
	if len(gens) < minRebalances {
		t.Errorf("the group went through %d generations (rebalances), want >= %d", len(gens), minRebalances)
	}

	truth := s.readSpansTopic()
	if len(truth.spans) != res.run.spans || truth.records != res.run.sent || truth.records != records {
		t.Fatalf("topic holds %d spans in %d records; produced %d spans, %d records acknowledged, end offsets %d",
			len(truth.spans), truth.records, res.run.spans, res.run.sent, records)
	}
	view := readStores(t, s.dbs())
	checkStore(t, view, truth)
	drops := s.readDropTopic()
	if n := len(drops.letters) + len(drops.events); n != 0 {
		t.Errorf("%d records on the drop topic, want none", n)
	}
	consumed := sumAll(fin, "spanpipe_pipeline_records_consumed_total")
	rss, _ := peaks(all)
	genList := make([]int, 0, len(gens))
	for g := range gens {
		genList = append(genList, g)
	}
	slices.Sort(genList)
	logFigures(t, "spans_produced", res.run.spans, "records_produced", res.run.sent, "stored_distinct", view.distinct(),
		"rows_written", view.rows, "redelivered_rows", view.rows-view.distinct(),
		"records_consumed", consumed, "redelivered_records", consumed-float64(records),
		"dead_lettered", len(drops.letters), "membership_changes", changes, "processes", len(all),
		"rebalances_generations", len(gens), "rebalance_callbacks_metric", rebalanceEvents,
		"produce_time", res.run.elapsed.Round(time.Second), "peak_rss", rss)
	t.Logf("generations seen: %v", genList)
}
