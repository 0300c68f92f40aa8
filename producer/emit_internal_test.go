package producer

import (
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/schema"
)

// BenchmarkEmitCaller is what Emit costs the application's goroutine: taking a slot
// and queueing the event. The encoder is not running, so the figure excludes the work
// the producer's own goroutine does (see BenchmarkEmit for the sustained rate).
func BenchmarkEmitCaller(b *testing.B) {
	const room = 1 << 16
	p := &Producer{
		cfg:   Config{MaxBufferedRecords: room, OnBufferFull: OnFullDrop, BlockTimeout: time.Second},
		slots: make(chan struct{}, room),
		queue: make(chan queued, room+1),
	}
	ev := &schema.Event{Type: schema.SpanEnded, Span: &schema.Span{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7"}}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n == room {
			b.StopTimer()
			for range room {
				<-p.queue
				<-p.slots
			}
			n = 0
			b.StartTimer()
		}
		if err := p.Emit(ev); err != nil {
			b.Fatal(err)
		}
		n++
	}
}
