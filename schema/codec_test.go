package schema_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/schema"
)

// Decode's speed rests on payloads aliasing the record (see aliasRawValue). If a new
// version of the JSON library copied or buffered values instead, this fails, and the
// aliasing must be revisited rather than silently corrupting payloads.
func TestDecodeAliasesInput(t *testing.T) {
	for _, tt := range []struct {
		name, data string
		payload    func(*schema.Event) jsontext.Value
	}{
		{"span input (fast path)", `{"type":"span_ended","exportedSpan":{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","id":"00f067aa0ba902b7",` +
			`"name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","endTime":"2025-03-01T12:00:01Z","input":{"q":"abc"}}}`,
			func(ev *schema.Event) jsontext.Value { return ev.Span.Input }},
		{"log data (reflection inside the fast path)", `{"type":"log","log":{"logId":"l","timestamp":"2025-03-01T12:00:00Z",` +
			`"level":"info","message":"m","data":{"q":"abc"}}}`,
			func(ev *schema.Event) jsontext.Value { return ev.Log.Data }},
		{"span input (reflection path: a 19-digit version the fast path leaves to it)", `{"type":"span_ended","exportedSpan":{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736",` +
			`"id":"00f067aa0ba902b7","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","endTime":"2025-03-01T12:00:01Z",` +
			`"input":{"q":"abc"},"version":1000000000000000000}}`,
			func(ev *schema.Event) jsontext.Value { return ev.Span.Input }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.data)
			if _, err := schema.DecodeFast(data); (err == nil) != !strings.Contains(tt.name, "reflection path") {
				t.Fatalf("the fast decoder's result (%v) is not the path this case tests", err)
			}
			ev, err := schema.Decode(schema.CodecJSON, data)
			if err != nil {
				t.Fatal(err)
			}
			p := tt.payload(ev)
			if string(p) != `{"q":"abc"}` {
				t.Fatalf("payload %s", p)
			}
			i := bytes.Index(data, []byte(`"abc"`))
			data[i+1] = 'X'
			if string(p) != `{"q":"Xbc"}` {
				t.Fatalf("payload %s does not alias the record: the JSON decoder no longer reads values in place", p)
			}
			if cap(p) != len(p) {
				t.Fatalf("payload has spare capacity %d: an append by a caller would overwrite the record", cap(p)-len(p))
			}
		})
	}
}
