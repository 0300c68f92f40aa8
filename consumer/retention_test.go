package consumer_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spanpipe/spanpipe/consumer"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRecordsDeletedBeforeConsumedAreReported: the group committed offset 3 of a
// partition, then Kafka deleted the records up to offset 8 (retention, here
// DeleteRecords). franz-go resumes at the log start without an error; the consumer
// must report offsets 3..7 as a retention-expired drop event (no dead letters: the
// payload is gone) and count them, and store the records that still exist.
func TestRecordsDeletedBeforeConsumedAreReported(t *testing.T) {
	e := newEnv(t)
	raw := kafkatest.Client(t, e.brokers, kgo.DefaultProduceTopic(spansTopic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	const part = 2
	var recs []*kgo.Record
	for i := range 10 {
		b, err := schema.Encode(nil, &schema.Event{Type: schema.SpanEnded, Span: &schema.Span{
			TraceID: "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd", SpanID: fmt.Sprintf("%016x", i), Name: "x", Type: "tool_call",
			StartTime: time.Now(), EndTime: time.Now(), Version: 1}})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Partition: part, Key: []byte("k"), Value: b})
	}
	if err := raw.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(raw)
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: spansTopic, Partition: part, At: 3, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(t.Context(), e.kafka.Group, offs); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	var del kadm.Offsets
	del.Add(kadm.Offset{Topic: spansTopic, Partition: part, At: 8})
	if resp, err := adm.DeleteRecords(t.Context(), del); err != nil || resp.Error() != nil {
		t.Fatalf("delete records: %v %v", err, resp.Error())
	}

	m := e.start()
	e.waitCommitted()
	m.stop()
	if got := e.spans(); got != 2 {
		t.Errorf("stored %d spans, want the 2 that still exist (offsets 8 and 9)", got)
	}
	ev, body := e.onlyDropEvent()
	if ev.Reason != dropalerts.ReasonRetentionExpired || ev.Count != 5 || ev.DeadLetters != 0 || ev.Component != "consumer" ||
		ev.Source == nil || ev.Source.Topic != spansTopic || ev.Source.Partition != part || ev.Source.FirstOffset != 3 || ev.Source.LastOffset != 7 {
		t.Errorf("drop event %s: want retention-expired, count 5, %s[%d] offsets 3-7, no dead letters", body, spansTopic, part)
	}
	if v := testutil.ToFloat64(dropped(e.reg, "unknown", "retention-expired")); v != 5 {
		t.Errorf("spanpipe_dropped_records_total{reason=retention-expired} = %v, want 5", v)
	}

	// A restart with the offsets now committed past the gap reports nothing new.
	m = e.run(e.sink, nil)
	e.waitCommitted()
	m.stop()
	if got := kafkatest.ReadAll(t, e.brokers, dropsTopic, 2, 2*time.Second); len(got) != 1 {
		t.Errorf("%d records on the drop topic after a restart, want still 1", len(got))
	}
}

// TestRecordsDeletedWhileOwnedAreReported: fetching is paused behind a down sink when
// retention deletes past the member's fetch position. franz-go resets to the log
// start without an error; the skipped range must become a retention-expired drop
// event with its exact offsets before anything after it is committed.
func TestRecordsDeletedWhileOwnedAreReported(t *testing.T) {
	defer consumer.SetLagRefreshInterval(50 * time.Millisecond)()
	e := newOutageEnv(t)
	e.pipe.MaxBatchSize, e.pipe.MaxBufferSize = 5, 10
	raw := kafkatest.Client(t, e.brokers, kgo.DefaultProduceTopic(spansTopic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	const part = 1
	produce := func(from, to int) {
		t.Helper()
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Partition: part, Key: []byte("k"), Value: endedSpan(t, i)})
		}
		if err := raw.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 20)
	m := e.start()
	kafkatest.Eventually(t, 30*time.Second, "fetching paused behind the down sink", func() bool {
		return sumMetric(e.reg, "spanpipe_consumer_paused_partitions") > 0
	})
	// A fetch in flight when fetching paused may still bring offsets 20-29; 30-59 are
	// produced while paused, and retention then deletes everything below 50.
	produce(20, 30)
	produce(30, 60)
	var del kadm.Offsets
	del.Add(kadm.Offset{Topic: spansTopic, Partition: part, At: 50})
	if resp, err := kadm.NewClient(raw).DeleteRecords(t.Context(), del); err != nil || resp.Error() != nil {
		t.Fatalf("delete records: %v %v", err, resp.Error())
	}
	e.sink.down.Store(false)
	e.waitCommitted()
	m.stop()
	ev, body := e.onlyDropEvent()
	// What was fetched before the deletion is stored, from offset 0 to the first one
	// lost; the lost range runs from there to 49; 50-59 are stored.
	if ev.Reason != dropalerts.ReasonRetentionExpired || ev.DeadLetters != 0 || ev.Source == nil || ev.Source.Partition != part ||
		ev.Source.FirstOffset < 20 || ev.Source.LastOffset != 49 || int64(ev.Count) != ev.Source.LastOffset-ev.Source.FirstOffset+1 {
		t.Fatalf("drop event %s: want retention-expired, partition %d, offsets from at least 20 to 49, no dead letters", body, part)
	}
	if got := e.spans(); got != ev.Source.FirstOffset+10 {
		t.Errorf("stored %d spans, want %d (offsets 0-%d and 50-59)", got, ev.Source.FirstOffset+10, ev.Source.FirstOffset-1)
	}
	if v := testutil.ToFloat64(dropped(e.reg, "unknown", "retention-expired")); v != float64(ev.Count) {
		t.Errorf("spanpipe_dropped_records_total{reason=retention-expired} = %v, want %d", v, ev.Count)
	}
	t.Logf("lost offsets %d-%d", ev.Source.FirstOffset, ev.Source.LastOffset)
}

// onlyDropEvent reads the drop topic, which must hold exactly one drop event.
func (e *env) onlyDropEvent() (*dropalerts.Event, []byte) {
	e.t.Helper()
	got := kafkatest.ReadAll(e.t, e.brokers, dropsTopic, 1, 10*time.Second)
	if len(got) != 1 {
		e.t.Fatalf("%d records on the drop topic, want 1 drop event", len(got))
	}
	ev, err := dropalerts.ParseEvent(got[0].Value)
	if err != nil {
		e.t.Fatal(err)
	}
	return ev, got[0].Value
}
