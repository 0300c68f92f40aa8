package schema_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/spanpipe/spanpipe/schema"
)

func ExampleDecode() {
	// A span_ended event as Mastra exports it: no schemaVersion, no span version,
	// and the user and thread ids only in the span's metadata.
	value := []byte(`{
		"type": "span_ended",
		"exportedSpan": {
			"traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
			"id": "00f067aa0ba902b7",
			"name": "llm: 'gpt-4o-mini'",
			"type": "model_generation",
			"startTime": "2025-03-01T12:00:00.000Z",
			"endTime": "2025-03-01T12:00:01.250Z",
			"attributes": {"model": "gpt-4o-mini", "provider": "openai"},
			"metadata": {"userId": "user-42", "threadId": "thread-7", "attempt": 1}
		}
	}`)
	// The codec comes from the record's schema.HeaderCodec header; "" means JSON.
	ev, err := schema.Decode("", value)
	if err != nil {
		fmt.Println(err)
		return
	}
	s := ev.Span
	fmt.Println(ev.Type, ev.Signal(), ev.TraceID(), ev.SchemaVersion)
	fmt.Println(s.Type, s.Type.Known(), s.Version, s.Ended(), s.EndTime.Sub(s.StartTime))
	fmt.Println(s.UserID, s.ThreadID)
	fmt.Println(string(s.Attributes))
	// Output:
	// span_ended tracing 4bf92f3577b34da6a3ce929d0e0e4736 1
	// model_generation true 3 true 1.25s
	// user-42 thread-7
	// {"model": "gpt-4o-mini", "provider": "openai"}
}

func ExampleDecode_invalid() {
	value := []byte(`{"type":"log","log":{"logId":"l1","timestamp":"2025-03-01T12:00:00Z","level":"info","message":"hi","traceId":"trace-1"}}`)
	_, err := schema.Decode(schema.CodecJSON, value)
	var ve *schema.ValidationError
	if errors.As(err, &ve) {
		fmt.Println(ve.Field, errors.Is(err, schema.ErrInvalidEvent))
	}
	fmt.Println(err)

	_, err = schema.Decode("avro", value)
	fmt.Println(errors.Is(err, schema.ErrUnknownCodec))

	_, err = schema.Decode("", []byte(`{"schemaVersion":2,"type":"log"}`))
	fmt.Println(errors.Is(err, schema.ErrUnsupportedVersion))
	// Output:
	// log.traceId true
	// schema: invalid event: log.traceId: not hexadecimal ('t' at 0)
	// true
	// true
}

func ExampleEncode() {
	cost := 0.00103
	ev := &schema.Event{
		Type: schema.MetricEvent,
		Metric: &schema.Metric{
			MetricID:    "3f1c0a56-8f5e-4a55-9a43-1c3b5c0f6a10",
			Timestamp:   time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
			TraceID:     "4bf92f3577b34da6a3ce929d0e0e4736",
			Name:        "mastra_model_total_input_tokens",
			Value:       412,
			Labels:      map[string]string{"status": "ok", "model": "gpt-4o-mini"},
			CostContext: &schema.CostContext{Provider: "openai", EstimatedCost: &cost, CostUnit: "usd"},
		},
	}
	// Encode appends to a caller's buffer and always writes schemaVersion.
	buf := make([]byte, 0, 512)
	buf, err := schema.Encode(buf, ev)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(buf))
	// Output:
	// {"schemaVersion":1,"type":"metric","metric":{"metricId":"3f1c0a56-8f5e-4a55-9a43-1c3b5c0f6a10","timestamp":"2025-03-01T12:00:00Z","traceId":"4bf92f3577b34da6a3ce929d0e0e4736","name":"mastra_model_total_input_tokens","value":412,"labels":{"model":"gpt-4o-mini","status":"ok"},"costContext":{"provider":"openai","estimatedCost":0.00103,"costUnit":"usd"}}}
}
