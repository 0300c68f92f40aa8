package integration

import (
	"context"
	"testing"
	"time"
)

// TestScaleOutThreeConsumers: three consumer processes share a 12-partition topic that
// `spanpipe produce` fills with SPANPIPE_IT_SCALE_SPANS spans of mixed lifecycles
// (started/updated/ended snapshots, event spans). Every span is stored, at its newest
// version, in exactly the way the topic says, and the three processes all took part.
func TestScaleOutThreeConsumers(t *testing.T) {
	s := newScenario(t, sharedBrokers(t), 12)
	spans := envInt("SPANPIPE_IT_SCALE_SPANS", 30000)

	var cs []*consumerProc
	for i := range 3 {
		cs = append(cs, s.startConsumer("c"+string(rune('0'+i)), s.db(i)))
	}
	s.waitAssigned(cs...)

	// A trace has 6 spans on average (internal/demo); the summary gives the exact count.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	sum := s.produceBinary(ctx, (spans+5)/6, 0)
	if sum.Dropped != 0 {
		t.Fatalf("spanpipe produce dropped %d events under the block policy", sum.Dropped)
	}
	records := s.waitCommitted(10*time.Minute + time.Duration(spans)*5*time.Millisecond)
	took := time.Since(start)
	s.stopAll()

	truth := s.readSpansTopic()
	if len(truth.spans) != sum.Spans || truth.records != records {
		t.Fatalf("topic holds %d spans in %d records; spanpipe produce reported %d spans, end offsets say %d records",
			len(truth.spans), truth.records, sum.Spans, records)
	}
	view := readStores(t, s.dbs())
	checkStore(t, view, truth)
	drops := s.readDropTopic()
	if n := len(drops.letters) + len(drops.events); n != 0 {
		t.Errorf("%d records on the drop topic, want none", n)
	}
	fin := finals(cs)
	consumed := sumAll(fin, "spanpipe_pipeline_records_consumed_total")
	for _, p := range cs {
		if n := p.final().sum("spanpipe_pipeline_records_consumed_total"); n == 0 {
			t.Errorf("consumer %s consumed nothing: the partitions were not shared", p.name)
		}
	}
	rss, _ := peaks(cs)
	logFigures(t, "spans_produced", sum.Spans, "records_produced", records, "stored_distinct", view.distinct(),
		"rows_written", view.rows, "redelivered_rows", view.rows-view.distinct(),
		"records_consumed", consumed, "redelivered_records", consumed-float64(records),
		"dead_lettered", len(drops.letters), "produce_spans_per_s", int(sum.SpansPerS),
		"end_to_end", took.Round(time.Second), "peak_rss", rss)
	for _, p := range cs {
		t.Logf("%s consumed %.0f records", p.name, p.final().sum("spanpipe_pipeline_records_consumed_total"))
	}
}
