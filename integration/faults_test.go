package integration

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Helpers of the fault scenarios (consumer kill, broker restart, broker loss, sink
// outage, poison records).

// spanOpts shapes produceSpans.
type spanOpts struct {
	n    int     // events to emit, one ended span each (fewer if ctx ends first)
	rate float64 // events per second; 0 = as fast as the producer takes them
	// onFull is the producer's buffer-full policy (default block, 3m).
	onFull string
	// buffer is producer.Config.MaxBufferedRecords (0 = the default).
	buffer   int
	progress *atomic.Int64 // counts the events emitted so far, when set
	dropped  *atomic.Int64 // counts the producer's drops as they happen, when set
	// reg, when set, receives the producer's metrics, so that the caller can watch
	// spanpipe_producer_records_sent_total while it runs.
	reg *prometheus.Registry
}

// spanRun is the producer's own account of a produceSpans run.
type spanRun struct {
	emitted   int                         // Emit calls
	sent      int64                       // acknowledged by Kafka
	dropped   map[dropalerts.Reason]int64 // reported through OnDrop, by reason
	emitDrops int                         // Emit calls that returned ErrDropped
	maxEmit   time.Duration               // the longest Emit call
	elapsed   time.Duration
	closeErr  error
}

func (r spanRun) droppedTotal() int64 {
	var n int64
	for _, v := range r.dropped {
		n += v
	}
	return n
}

// produceSpans emits o.n span_ended events, one record per span (each its own trace),
// through the producer library, then closes the producer: Close flushes and publishes
// the producer's pending drop events. Unlike produceDemo it counts every event, so
// that emitted == sent + dropped can be checked exactly, and it can run the drop
// policy with a small buffer. It may run on a goroutine of its own: it does not fail
// the test itself, the caller checks closeErr.
func (s *scenario) produceSpans(ctx context.Context, o spanOpts) spanRun {
	cfg := producer.DefaultConfig()
	cfg.Brokers = s.brokers
	cfg.Topic = s.topic
	cfg.DropTopic = s.dropTopic
	cfg.ServiceName = "spanpipe-it"
	cfg.ClientID = s.group + "-spans"
	cfg.OnBufferFull = producer.OnFullBlock
	cfg.BlockTimeout = 3 * time.Minute
	if o.onFull != "" {
		cfg.OnBufferFull = o.onFull
	}
	if o.buffer > 0 {
		cfg.MaxBufferedRecords = o.buffer
	}
	cfg.DeliveryTimeout = 3 * time.Minute
	cfg.DropReportInterval = time.Second
	var mu sync.Mutex
	r := spanRun{dropped: make(map[dropalerts.Reason]int64)}
	reg := o.reg
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	p, err := producer.New(cfg, producer.WithRegisterer(reg), producer.WithOnDrop(func(d producer.Drop) {
		mu.Lock()
		r.dropped[d.Reason]++
		mu.Unlock()
		if o.dropped != nil {
			o.dropped.Add(1)
		}
	}))
	if err != nil {
		r.closeErr = err
		return r
	}
	start := time.Now()
	for i := 0; i < o.n; i++ {
		if o.rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / o.rate * float64(time.Second)))); d > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		now := time.Now().UTC()
		ev := &schema.Event{Type: schema.SpanEnded, Span: &schema.Span{
			TraceID: randomHex(32), SpanID: randomHex(16), Name: "tool lookup", Type: schema.ToolCall,
			StartTime: now.Add(-time.Second), EndTime: now, Version: 1,
			Input: []byte(`{"query":"` + randomHex(64) + `"}`),
		}}
		t0 := time.Now()
		err := p.Emit(ev)
		r.maxEmit = max(r.maxEmit, time.Since(t0))
		r.emitted++
		if errors.Is(err, producer.ErrDropped) {
			r.emitDrops++
		} else if err != nil {
			s.t.Errorf("Emit: %v", err)
		}
		if o.progress != nil {
			o.progress.Add(1)
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r.closeErr = p.Close(cctx)
	r.elapsed = time.Since(start)
	r.sent = int64(gatherSum(reg, "spanpipe_producer_records_sent_total"))
	mu.Lock()
	defer mu.Unlock()
	r.dropped = maps.Clone(r.dropped)
	return r
}

// lag is the number of records on the spans topic past the group's committed offsets.
func (s *scenario) lag(ctx context.Context) (lag, end, committed int64, err error) {
	ends, err := s.endOffsets(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	com, err := s.committed(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	for p, e := range ends {
		lag += max(0, e-com[p])
	}
	return lag, sum(ends), sum(com), nil
}

// mustLag is lag that fails the test on an error that is not retriable, or on one
// that lasts 30 s. A broker that has not learned of a new topic yet, or one whose
// partition leader just moved, answers with a retriable error (on a new 3-broker
// cluster: UNKNOWN_TOPIC_OR_PARTITION), which a client retries too.
func (s *scenario) mustLag() (lag, end, committed int64) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), 30*time.Second)
	defer cancel()
	for {
		lag, end, committed, err := s.lag(ctx)
		if err == nil {
			return lag, end, committed
		}
		if !kerr.IsRetriable(err) { // a context error included
			s.t.Fatalf("offsets of %s: %v", s.topic, err)
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("offsets of %s: still failing after 30s: %v", s.topic, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// faultFile is a sink fault switch (SPANPIPE_FAULT_FILE) for the scenario's consumers.
type faultFile string

func (s *scenario) faultFile() faultFile { return faultFile(filepath.Join(s.dir, "sink.fault")) }

// env is the consumer setting that arms the hook.
func (f faultFile) env() string { return "SPANPIPE_FAULT_FILE=" + string(f) }

// on makes every sink write of the consumers fail (retryable) until off.
func (f faultFile) on() error { return os.WriteFile(string(f), []byte("down\n"), 0o644) }

func (f faultFile) off() error { return os.Remove(string(f)) }
