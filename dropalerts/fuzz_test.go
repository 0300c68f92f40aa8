package dropalerts_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/twmb/franz-go/pkg/kgo"
)

// FuzzParseEvent checks that ParseEvent never panics, and that whatever it accepts
// encodes, decodes back to an equal event (with type and schema version set, as
// Marshal sets them), and encodes to the same bytes again (a fixed point).
func FuzzParseEvent(f *testing.F) {
	full := dropalerts.Event{
		Signal: "tracing", Reason: dropalerts.ReasonRetryExhausted, Count: 3,
		FirstTime: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), LastTime: time.Date(2025, 3, 1, 12, 0, 1, 5, time.FixedZone("", 3600)),
		Component: "consumer", Instance: "spanpipe/h/1", Sink: "duckdb", Error: "duckdb: disk full",
		Source:         &dropalerts.Source{Topic: "spanpipe.spans", Partition: 2, FirstOffset: 10, LastOffset: 12},
		SampleTraceIDs: []string{"a", "b", "c", "d", "e"}, DeadLetterTopic: "spanpipe.drops", DeadLetters: 3,
	}
	body, err := full.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{
		body,
		[]byte(`{"type":"drop","schemaVersion":1,"reason":"producer-buffer-full","count":1,"firstTime":"2025-03-01T12:00:00Z","lastTime":"2025-03-01T12:00:00Z","component":"producer"}`),
		{},
		body[:len(body)/2],
		append(append([]byte{}, body...), `{"x":1}`...),
		[]byte(`{"reason":"` + strings.Repeat("r", 4096) + `","count":9223372036854775807,"sampleTraceIds":[]}`),
		[]byte(`{"source":null,"count":-1,"firstTime":"0000-01-01T00:00:00+23:59","lastTime":"9999-12-31T23:59:59.999999999-23:59"}`),
		[]byte(`null`),
		[]byte(`{"type":"drop","type":"drop"}`),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e1, err := dropalerts.ParseEvent(data)
		if err != nil {
			if e1 != nil {
				t.Fatalf("ParseEvent returned an event with error %v", err)
			}
			return
		}
		b1, err := e1.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed event: %v\ninput %q", err, data)
		}
		e2, err := dropalerts.ParseEvent(b1)
		if err != nil {
			t.Fatalf("ParseEvent(Marshal(e)): %v\nencoded %q", err, b1)
		}
		b2, err := e2.Marshal()
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("encoding is not a fixed point (%v):\n%s\n%s", err, b1, b2)
		}
		want := normEvent(*e1)
		want.Type, want.SchemaVersion = "drop", dropalerts.EventVersion
		if got := normEvent(*e2); !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip changed the event:\ngot  %+v\nwant %+v", got, want)
		}
	})
}

// normEvent makes events comparable with DeepEqual: times as UTC instants, empty
// slices as nil (omitempty drops them).
func normEvent(e dropalerts.Event) dropalerts.Event {
	e.FirstTime, e.LastTime = e.FirstTime.UTC(), e.LastTime.UTC()
	if len(e.SampleTraceIDs) == 0 {
		e.SampleTraceIDs = nil
	}
	return e
}

// FuzzParseDeadLetter feeds ParseDeadLetter arbitrary header lists (the input split
// at NUL bytes into key, value, key, value...), duplicates and all. Checked: no panic;
// errors are ErrNotDeadLetter or a malformed-header error; the original headers it
// returns contain no dead-letter header; and what it accepts re-encodes (in the
// Publisher's layout) and parses back to the same info.
func FuzzParseDeadLetter(f *testing.F) {
	valid := (&dropalerts.DeadLetterInfo{
		Reason: dropalerts.ReasonRetryExhausted, Error: "sink down", SourceTopic: "spanpipe.spans", SourcePartition: 3, SourceOffset: 77,
		Attempts: 5, FirstFailure: time.Date(2025, 3, 1, 12, 0, 0, 123, time.UTC), Component: "consumer",
		Headers: []kgo.RecordHeader{{Key: "spanpipe-codec", Value: []byte("json")}, {Key: "x-tenant", Value: []byte("acme")}},
	}).AppendHeaders(nil)
	enc := encodeHeaders(valid)
	f.Add(enc)
	f.Add([]byte{})
	f.Add(enc[:len(enc)/2])
	f.Add(append(append([]byte{}, enc...), "\x00garbage\x00spanpipe-kind\x00drop-event"...))
	f.Add([]byte("spanpipe-kind\x00dead-letter\x00spanpipe-drop-reason\x00r\x00spanpipe-source-topic\x00t\x00spanpipe-source-partition\x00+2147483647\x00spanpipe-source-offset\x009223372036854775807\x00spanpipe-first-failure\x000000-01-01T00:00:00+01:00"))
	f.Add([]byte("spanpipe-kind\x00dead-letter\x00spanpipe-source-partition\x002147483648"))
	truncated := (&dropalerts.DeadLetterInfo{Reason: dropalerts.ReasonDecodeError, SourceTopic: "t", Truncated: true, OriginalSize: 3 << 20,
		Headers: []kgo.RecordHeader{{Key: dropalerts.HeaderReplayOf, Value: []byte("spanpipe.drops/0/5")}, {Key: dropalerts.HeaderReplayCount, Value: []byte("2")}}}).AppendHeaders(nil)
	f.Add(encodeHeaders(truncated))
	f.Fuzz(func(t *testing.T, data []byte) {
		hs := decodeHeaders(data)
		d1, err := dropalerts.ParseDeadLetter(hs)
		if err != nil {
			if d1 != nil {
				t.Fatalf("ParseDeadLetter returned info with error %v", err)
			}
			if !errors.Is(err, dropalerts.ErrNotDeadLetter) && !strings.Contains(err.Error(), "malformed dead letter") {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		for _, h := range d1.Headers {
			if dropalerts.IsDeadLetterHeader(h.Key) {
				t.Fatalf("original headers keep dead-letter header %q", h.Key)
			}
		}
		d2, err := dropalerts.ParseDeadLetter(d1.AppendHeaders(nil))
		if err != nil {
			t.Fatalf("ParseDeadLetter(AppendHeaders(info)): %v\ninfo %+v", err, d1)
		}
		if !d1.FirstFailure.Equal(d2.FirstFailure) {
			t.Fatalf("first failure %v became %v", d1.FirstFailure, d2.FirstFailure)
		}
		d1.FirstFailure, d2.FirstFailure = time.Time{}, time.Time{}
		if !reflect.DeepEqual(d1, d2) {
			t.Fatalf("round trip changed the info:\ngot  %+v\nwant %+v", d2, d1)
		}
	})
}

func encodeHeaders(hs []kgo.RecordHeader) []byte {
	var b []byte
	for i, h := range hs {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(append(append(b, h.Key...), 0), h.Value...)
	}
	return b
}

func decodeHeaders(b []byte) []kgo.RecordHeader {
	if len(b) == 0 {
		return nil
	}
	parts := bytes.Split(b, []byte{0})
	var hs []kgo.RecordHeader
	for i := 0; i < len(parts); i += 2 {
		h := kgo.RecordHeader{Key: string(parts[i])}
		if i+1 < len(parts) {
			h.Value = parts[i+1]
		}
		hs = append(hs, h)
	}
	return hs
}
