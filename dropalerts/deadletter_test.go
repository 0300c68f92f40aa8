package dropalerts_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestOriginalRecordRestoresPublishedDeadLetter publishes a dead letter through the
// real Publisher and rebuilds the original from what lands on the drop topic: same
// topic, partition, key, value, timestamp and headers (spanpipe-codec included), none
// of the dead-letter headers.
func TestOriginalRecordRestoresPublishedDeadLetter(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.drops")
	p := kafkatest.Publisher(t, c.ListenAddrs())
	first := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	orig := &kgo.Record{
		Topic: "spanpipe.spans", Partition: 3, Offset: 77, Key: []byte("trace-1"), Value: []byte(`{"type":"span_ended"}`),
		Timestamp: time.UnixMilli(1700000000123),
		Headers: []kgo.RecordHeader{{Key: "spanpipe-codec", Value: []byte("json")}, {Key: "x-tenant", Value: []byte("acme")},
			{Key: "x-empty"}},
	}
	ev := dropalerts.Event{Reason: dropalerts.ReasonRetryExhausted, Signal: "tracing", Count: 1, Component: "consumer", Error: "boom"}
	if err := p.Publish(context.Background(), ev, []dropalerts.DeadLetter{{Record: orig, Attempts: 5, FirstFailure: first}}); err != nil {
		t.Fatal(err)
	}
	recs := kafkatest.ReadAll(t, c.ListenAddrs(), "spanpipe.drops", 2, 10*time.Second)
	if len(recs) != 2 || dropalerts.Kind(recs[0]) != dropalerts.KindDeadLetter || dropalerts.Kind(recs[1]) != dropalerts.KindDropEvent {
		t.Fatalf("got %d records, want a dead letter then a drop event", len(recs))
	}
	got, info, err := dropalerts.OriginalRecord(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	if got.Topic != orig.Topic || got.Partition != orig.Partition || !bytes.Equal(got.Key, orig.Key) || !bytes.Equal(got.Value, orig.Value) ||
		!got.Timestamp.Equal(orig.Timestamp) {
		t.Errorf("original %+v, want %+v", got, orig)
	}
	if len(got.Headers) != 3 {
		t.Fatalf("headers %v, want the 3 original ones", got.Headers)
	}
	for i, h := range orig.Headers {
		if got.Headers[i].Key != h.Key || !bytes.Equal(got.Headers[i].Value, h.Value) {
			t.Errorf("header %d = %s=%q, want %s=%q", i, got.Headers[i].Key, got.Headers[i].Value, h.Key, h.Value)
		}
	}
	if info.Reason != dropalerts.ReasonRetryExhausted || info.SourceOffset != 77 || info.Attempts != 5 || !info.FirstFailure.Equal(first) ||
		info.Error != "boom" || info.Component != "consumer" {
		t.Errorf("info %+v", info)
	}
	if _, _, err := dropalerts.OriginalRecord(recs[1]); !errors.Is(err, dropalerts.ErrNotDeadLetter) {
		t.Errorf("OriginalRecord(drop event) = %v, want ErrNotDeadLetter", err)
	}
}

func TestParseDeadLetterErrors(t *testing.T) {
	valid := (&dropalerts.DeadLetterInfo{Reason: "too-large", SourceTopic: "t", SourcePartition: 1, SourceOffset: 2}).AppendHeaders(nil)
	f := func(name string, hs []kgo.RecordHeader, want string) {
		t.Helper()
		_, err := dropalerts.ParseDeadLetter(hs)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, want)
		}
	}
	set := func(key, value string) []kgo.RecordHeader {
		hs := slices.Clone(valid)
		for i := range hs {
			if hs[i].Key == key {
				hs[i].Value = []byte(value)
			}
		}
		return hs
	}
	f("no headers", nil, "not a dead letter")
	f("drop event", []kgo.RecordHeader{{Key: dropalerts.HeaderKind, Value: []byte("drop-event")}}, "not a dead letter")
	f("bad partition", set(dropalerts.HeaderSourcePartition, "x"), "spanpipe-source-partition")
	f("negative offset", set(dropalerts.HeaderSourceOffset, "-1"), "spanpipe-source-offset")
	f("no topic", set(dropalerts.HeaderSourceTopic, ""), "spanpipe-source-topic missing")
	f("bad attempts", set(dropalerts.HeaderAttempts, "many"), "spanpipe-attempts")
	f("bad time", append(slices.Clone(valid), kgo.RecordHeader{Key: dropalerts.HeaderFirstFailure, Value: []byte("yesterday")}), "spanpipe-first-failure")
	// The last occurrence wins: an original record's own spanpipe-kind is overridden.
	hs := append([]kgo.RecordHeader{{Key: dropalerts.HeaderKind, Value: []byte("drop-event")}}, valid...)
	if d, err := dropalerts.ParseDeadLetter(hs); err != nil || len(d.Headers) != 0 {
		t.Errorf("ParseDeadLetter with an earlier spanpipe-kind: %+v, %v", d, err)
	}
}
