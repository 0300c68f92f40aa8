package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPoisonRecords: a raw franz-go client writes SPANPIPE_IT_POISON_RECORDS records,
// one in SPANPIPE_IT_POISON_EVERY of them garbage (random bytes, truncated JSON,
// JSON that is not an event, an event without ids, an unknown schema version),
// interleaved with good span records. No partition stops: every good record is
// stored, and every poison record, and only those, is a dead letter on the drop
// topic carrying its original bytes, reason decode-error and its source topic,
// partition and offset; the drop events count them exactly.
func TestPoisonRecords(t *testing.T) {
	s := newScenario(t, sharedBrokers(t), 6)
	n := envInt("SPANPIPE_IT_POISON_RECORDS", 10000)
	every := envInt("SPANPIPE_IT_POISON_EVERY", 100)

	c := s.startConsumer("c0", s.db(0))
	s.waitAssigned(c)

	// Build the records: poison at random positions, one in every.
	type at struct {
		partition int32
		offset    int64
	}
	var recs []*kgo.Record
	isPoison := make(map[*kgo.Record]bool)
	for i := range n {
		trace := randomHex(32)
		r := &kgo.Record{Topic: s.topic, Key: []byte(trace)}
		if rand.IntN(every) == 0 {
			r.Value = poison(i)
			// The test's poison must really be poison: the consumer's decoder rejects it.
			if _, err := schema.Decode(schema.CodecJSON, r.Value); err == nil {
				t.Fatalf("poison record %d decodes: %q", i, r.Value)
			}
			isPoison[r] = true
		} else {
			r.Value = endedSpan(trace, randomHex(16))
			r.Headers = []kgo.RecordHeader{{Key: schema.HeaderCodec, Value: []byte(schema.CodecJSON)}}
		}
		recs = append(recs, r)
	}
	cl := newClient(t, s.brokers, kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), kgo.ProducerLinger(5*time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	poisonAt := make(map[at][]byte)
	for lo := 0; lo < n; lo += 500 {
		hi := min(n, lo+500)
		res := cl.ProduceSync(ctx, recs[lo:hi]...)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		for _, r := range res {
			if isPoison[r.Record] {
				poisonAt[at{r.Record.Partition, r.Record.Offset}] = r.Record.Value
			}
		}
	}
	if len(poisonAt) == 0 {
		t.Fatalf("no poison among %d records (1 in %d): raise SPANPIPE_IT_POISON_RECORDS", n, every)
	}
	records := s.waitCommitted(5 * time.Minute)
	took := time.Since(start)
	s.stopAll()

	truth := s.readSpansTopic()
	good := int64(n - len(poisonAt))
	if records != int64(n) || truth.records != int64(n) || truth.undecodable != int64(len(poisonAt)) || int64(len(truth.spans)) != good {
		t.Fatalf("topic: %d records (end offsets %d), %d undecodable, %d spans; produced %d records, %d poison",
			truth.records, records, truth.undecodable, len(truth.spans), n, len(poisonAt))
	}
	view := readStores(t, s.dbs())
	checkStore(t, view, truth)

	drops := s.readDropTopic()
	if drops.other != 0 {
		t.Errorf("%d records on the drop topic that are neither dead letters nor drop events", drops.other)
	}
	seen := make(map[at]bool)
	for _, l := range drops.letters {
		p, perr := strconv.ParseInt(header(l, dropalerts.HeaderSourcePartition), 10, 32)
		o, oerr := strconv.ParseInt(header(l, dropalerts.HeaderSourceOffset), 10, 64)
		where := at{int32(p), o}
		want, ok := poisonAt[where]
		switch {
		case perr != nil || oerr != nil:
			t.Errorf("dead letter without a source partition/offset: headers %v", l.Headers)
		case header(l, dropalerts.HeaderSourceTopic) != s.topic:
			t.Errorf("dead letter of %v: source topic %q, want %q", where, header(l, dropalerts.HeaderSourceTopic), s.topic)
		case !ok:
			t.Errorf("dead letter of %s[%d]@%d, which is not a poison record: %.80q", s.topic, p, o, l.Value)
		case seen[where]:
			t.Errorf("poison record %v dead-lettered twice", where)
		case string(l.Value) != string(want):
			t.Errorf("dead letter of %v: payload %.60q, want the original %.60q", where, l.Value, want)
		case header(l, dropalerts.HeaderReason) != string(dropalerts.ReasonDecodeError) || header(l, dropalerts.HeaderError) == "":
			t.Errorf("dead letter of %v: reason %q, error %q; want %s and the decode error",
				where, header(l, dropalerts.HeaderReason), header(l, dropalerts.HeaderError), dropalerts.ReasonDecodeError)
		}
		seen[where] = true
	}
	if len(seen) != len(poisonAt) || len(drops.letters) != len(poisonAt) {
		t.Errorf("%d dead letters for %d distinct source records; want one for each of the %d poison records",
			len(drops.letters), len(seen), len(poisonAt))
	}
	if got := drops.count(dropalerts.ComponentConsumer, dropalerts.ReasonDecodeError); got != len(poisonAt) {
		t.Errorf("drop events count %d decode-error records, want %d", got, len(poisonAt))
	}
	fin := c.final()
	if got := fin.sum("spanpipe_dropped_records_total", "reason=decode-error", "component=consumer"); got != float64(len(poisonAt)) {
		t.Errorf("spanpipe_dropped_records_total{reason=decode-error} = %.0f, want %d", got, len(poisonAt))
	}
	logFigures(t, "records_produced", n, "poison", len(poisonAt), "stored", view.distinct(), "rows", view.rows,
		"records_consumed", fin.sum("spanpipe_pipeline_records_consumed_total"),
		"redelivered", fin.sum("spanpipe_pipeline_records_consumed_total")-float64(n),
		"dead_lettered", len(drops.letters), "drop_events", len(drops.events),
		"peak_rss_mib", int(c.peakMB()), "duration", took.Round(time.Second))
}

// poison returns the i-th kind of garbage.
func poison(i int) []byte {
	valid := endedSpan(randomHex(32), randomHex(16))
	switch i % 5 {
	case 0: // binary noise
		b := make([]byte, 16+rand.IntN(200))
		for j := range b {
			b[j] = byte(rand.IntN(256))
		}
		b[0] = 0xff // never '{'
		return b
	case 1: // a valid event cut short
		return valid[:len(valid)/2]
	case 2: // JSON, but not an event
		return []byte(fmt.Sprintf(`{"hello":"world","n":%d}`, i))
	case 3: // a span without ids
		return []byte(`{"type":"span_ended","exportedSpan":{"name":"x","type":"tool_call","startTime":"2025-01-01T00:00:00Z"}}`)
	default: // an event of a schema version from the future
		return []byte(fmt.Sprintf(`{"schemaVersion":999,"type":"span_ended","exportedSpan":{"traceId":"%s","id":"%s","name":"x","type":"tool_call","startTime":"2025-01-01T00:00:00Z"}}`, randomHex(32), randomHex(16)))
	}
}
