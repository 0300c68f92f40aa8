package integration

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/schema"
)

// TestClickHouseRejectedRow: ClickHouse itself rejects one row (a CHECK constraint
// on spans, VIOLATED_CONSTRAINT), in a batch with hundreds of good ones. The insert
// fails as a whole with a permanent error; the writer splits the batch down to that
// row. Only it is dead-lettered, with reason sink-rejected and its original bytes;
// every other span is stored, and the partition moves on.
//
// This needs the writer's batch split (the core change of this wave); a writer that
// dead-letters a rejected batch whole fails here.
func TestClickHouseRejectedRow(t *testing.T) {
	s := newScenario(t, sharedBrokers(t), 3)
	srv := sharedClickHouse(t)
	dsn, db := s.database(srv)
	conn := srv.conn(t)
	n := envInt("SPANPIPE_IT_CH_REJECT_RECORDS", 900)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	s.spanpipeCmd(ctx, nil, "migrate", "--dsn", dsn)
	if err := conn.Exec(ctx, "ALTER TABLE "+db+".spans ADD CONSTRAINT spanpipe_it_no_poison CHECK name != 'poison'"); err != nil {
		t.Fatal(err)
	}
	c := s.startConsumer("c0", dsn, "SPANPIPE_SINK_CLICKHOUSE_AUTO_MIGRATE=false", "SPANPIPE_PIPELINE_MAX_BATCH_SIZE=1000")
	s.waitAssigned(c)

	// One batch's worth at once, the rejected span in the middle.
	var recs []*kgo.Record
	var poisonTrace string
	for i := range n {
		trace, name := randomHex(32), "tool lookup"
		if i == n/2 {
			poisonTrace, name = trace, "poison"
		}
		b, err := schema.Encode(nil, &schema.Event{Type: schema.SpanEnded, Span: &schema.Span{
			TraceID: trace, SpanID: randomHex(16), Name: name, Type: schema.ToolCall,
			StartTime: time.Now().UTC().Add(-time.Second), EndTime: time.Now().UTC(), Version: 1,
			Correlation: schema.Correlation{ServiceName: "spanpipe-it"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: s.topic, Key: []byte(trace), Value: b,
			Headers: []kgo.RecordHeader{{Key: schema.HeaderCodec, Value: []byte(schema.CodecJSON)}}})
	}
	cl := newClient(t, s.brokers, kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	poison := recs[n/2]
	s.waitCommitted(5 * time.Minute)
	s.stopAll()

	truth := s.readSpansTopic()
	for k := range truth.spans {
		if k.trace == poisonTrace {
			delete(truth.spans, k) // rejected: in the drop topic, not in the store
		}
	}
	view := readClickHouse(t, conn, db)
	checkStore(t, view, truth)
	drops := s.readDropTopic()
	if len(drops.letters) != 1 {
		t.Fatalf("%d dead letters, want exactly the rejected record", len(drops.letters))
	}
	l := drops.letters[0]
	if header(l, dropalerts.HeaderSourcePartition) != strconv.Itoa(int(poison.Partition)) ||
		header(l, dropalerts.HeaderSourceOffset) != strconv.FormatInt(poison.Offset, 10) ||
		string(l.Value) != string(poison.Value) || header(l, dropalerts.HeaderReason) != string(dropalerts.ReasonSinkRejected) {
		t.Errorf("dead letter of [%s]@%s: reason %q, error %q, payload %.80q; want [%d]@%d, %s, the original record %.80q",
			header(l, dropalerts.HeaderSourcePartition), header(l, dropalerts.HeaderSourceOffset),
			header(l, dropalerts.HeaderReason), header(l, dropalerts.HeaderError), l.Value,
			poison.Partition, poison.Offset, dropalerts.ReasonSinkRejected, poison.Value)
	}
	logFigures(t, "records_produced", n, "stored_distinct", view.distinct(), "raw_rows", view.rows,
		"dead_lettered", len(drops.letters), "drop_events", len(drops.events), "error", header(l, dropalerts.HeaderError))
}
