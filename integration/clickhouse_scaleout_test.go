package integration

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestClickHouseScaleOut: the production path on one ClickHouse database. `spanpipe
// migrate` creates the schema with a 30-day span TTL (and a second run changes
// nothing); three `spanpipe consume` processes that do not migrate themselves share
// a 12-partition topic that realistic agent traces fill at a steady rate, and one of
// them is SIGKILLed while it is consuming. Counted with FINAL, ClickHouse holds every
// span on the topic exactly once at its newest version, nothing is dead-lettered, and
// `spanpipe trace` reads a trace back. Raw rows against distinct spans (the killed
// member's redelivered records, until merges collapse them) are reported.
func TestClickHouseScaleOut(t *testing.T) {
	s := newScenario(t, sharedBrokers(t), 12)
	srv := sharedClickHouse(t)
	dsn, db := s.database(srv)
	conn := srv.conn(t)
	spans := envInt("SPANPIPE_IT_CH_SPANS", 6000)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()

	// migrate, with the TTL it must apply.
	ttl := []string{"SPANPIPE_SINK_CLICKHOUSE_TTL_SPANS=30"}
	out := s.spanpipeCmd(ctx, ttl, "migrate", "--dsn", dsn)
	if !strings.Contains(out, "applied migration 0001_init") {
		t.Fatalf("spanpipe migrate printed %q, want 0001_init applied", out)
	}
	var engine string
	if err := conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = ? AND name = 'spans'", db).Scan(&engine); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(engine, "TTL toDate(started_at) + toIntervalDay(30)") {
		t.Errorf("spans after migrate with ttl.spans 30: %s, want TTL toDate(started_at) + toIntervalDay(30)", engine)
	}
	if out := s.spanpipeCmd(ctx, ttl, "migrate", "--dsn", dsn); !strings.Contains(out, "schema up to date") {
		t.Errorf("second spanpipe migrate printed %q, want the schema up to date", out)
	}

	noMigrate := "SPANPIPE_SINK_CLICKHOUSE_AUTO_MIGRATE=false"
	var cs []*consumerProc
	for i := range 3 {
		cs = append(cs, s.startConsumer(fmt.Sprintf("c%d", i), dsn, noMigrate, "SPANPIPE_PIPELINE_MAX_BATCH_SIZE=500"))
	}
	s.waitAssigned(cs...)

	// A trace has 6 spans on average (internal/demo); spread over ~10 s.
	traces := (spans + 5) / 6
	var progress atomic.Int64
	type result struct {
		r   demoRun
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		r, err := s.produceDemo(ctx, demoOpts{traces: traces, rate: float64(traces) / 10, progress: &progress})
		done <- result{r, err}
	}()
	victim := cs[2]
	var killedConsumed, killedBuffered float64
	s.eventually(5*time.Minute, "the producer half way and "+victim.name+" consuming", func() bool {
		m := victim.metrics()
		killedConsumed = m.sum("spanpipe_pipeline_records_consumed_total")
		killedBuffered = m.sum("spanpipe_pipeline_buffered_records")
		return progress.Load() >= int64(traces/2) && killedConsumed > 0
	})
	victim.kill()
	t.Logf("killed %s with %.0f records consumed, %.0f buffered", victim.name, killedConsumed, killedBuffered)
	res := <-done
	if res.err != nil || res.r.dropped != 0 {
		t.Fatalf("producing: %v, %d dropped under the block policy", res.err, res.r.dropped)
	}
	records := s.waitCommitted(10*time.Minute + time.Duration(spans)*5*time.Millisecond)
	took := time.Since(start)
	s.stopAll()

	truth := s.readSpansTopic()
	if len(truth.spans) != res.r.spans || truth.records != records || records != res.r.sent {
		t.Fatalf("topic holds %d spans in %d records (end offsets %d); the producer sent %d spans in %d records",
			len(truth.spans), truth.records, records, res.r.spans, res.r.sent)
	}
	view := readClickHouse(t, conn, db)
	checkStore(t, view, truth)
	drops := s.readDropTopic()
	if n := len(drops.letters) + len(drops.events); n != 0 {
		t.Errorf("%d records on the drop topic, want none", n)
	}
	for _, p := range cs {
		if n := p.final().sum("spanpipe_pipeline_records_consumed_total"); n == 0 {
			t.Errorf("consumer %s consumed nothing: the partitions were not shared", p.name)
		}
	}

	// The trace query on ClickHouse: the tree of one trace, every span of it.
	var trace string
	want := 0
	for k := range truth.spans {
		trace = k.trace
		break
	}
	for k := range truth.spans {
		if k.trace == trace {
			want++
		}
	}
	out = s.spanpipeCmd(ctx, nil, "trace", trace, "--dsn", dsn)
	if head := fmt.Sprintf("trace %s: %d spans", trace, want); !strings.HasPrefix(out, head) {
		t.Errorf("spanpipe trace printed:\n%s\nwant it to start with %q", out, head)
	}

	consumed := sumAll(finals(cs), "spanpipe_pipeline_records_consumed_total")
	rss, _ := peaks(cs)
	logFigures(t, "spans_produced", res.r.spans, "records_produced", records, "stored_distinct", view.distinct(),
		"raw_rows", view.rows, "raw_minus_distinct", view.rows-view.distinct(),
		"records_consumed", consumed, "redelivered_records", consumed-float64(records),
		"killed_consumed", killedConsumed, "killed_buffered", killedBuffered,
		"dead_lettered", len(drops.letters), "end_to_end", took.Round(time.Second), "peak_rss", rss)
}
