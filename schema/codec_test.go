package schema_test

import (
	"bytes"
	"testing"

	"github.com/spanpipe/spanpipe/schema"
)

// Decode's speed rests on payloads aliasing the record (see aliasRawValue). If a new
// version of the JSON library copied or buffered values instead, this fails, and the
// aliasing must be revisited rather than silently corrupting payloads.
func TestDecodeAliasesInput(t *testing.T) {
	data := []byte(`{"type":"span_ended","exportedSpan":{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","id":"00f067aa0ba902b7",` +
		`"name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","endTime":"2025-03-01T12:00:01Z","input":{"q":"abc"}}}`)
	ev, err := schema.Decode(schema.CodecJSON, data)
	if err != nil {
		t.Fatal(err)
	}
	if string(ev.Span.Input) != `{"q":"abc"}` {
		t.Fatalf("input %s", ev.Span.Input)
	}
	i := bytes.Index(data, []byte(`"abc"`))
	data[i+1] = 'X'
	if string(ev.Span.Input) != `{"q":"Xbc"}` {
		t.Fatalf("input %s does not alias the record: the JSON decoder no longer reads values in place", ev.Span.Input)
	}
	if cap(ev.Span.Input) != len(ev.Span.Input) {
		t.Fatalf("input has spare capacity %d: an append by a caller would overwrite the record", cap(ev.Span.Input)-len(ev.Span.Input))
	}
}
