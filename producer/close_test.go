package producer_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/spanpipe/spanpipe/internal/promx"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
)

// An event emitted after Close is lost: Emit says so (ErrClosed), and the loss is
// also counted and passed to OnDrop, because callers of a fire-and-forget API rarely
// look at the error.
func TestEmitAfterCloseIsCountedAsDrop(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.spans")
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	var drops []producer.Drop
	p := newProducer(t, c.ListenAddrs(), nil, producer.WithRegisterer(reg),
		producer.WithOnDrop(func(d producer.Drop) { mu.Lock(); drops = append(drops, d); mu.Unlock() }))
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := p.Log(&schema.Log{Level: "info", Message: "late"}); !errors.Is(err, producer.ErrClosed) {
		t.Fatalf("Emit after Close = %v, want ErrClosed", err)
	}
	if v := testutil.ToFloat64(promx.DroppedRecords(reg).WithLabelValues("log", "producer-send-failed", "producer")); v != 1 {
		t.Errorf("spanpipe_dropped_records_total{log,producer-send-failed,producer} = %v, want 1", v)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(drops) != 1 || drops[0].Reason != dropalerts.ReasonProducerSendFailed || !errors.Is(drops[0].Err, producer.ErrClosed) {
		t.Errorf("OnDrop saw %+v, want one producer-send-failed drop with ErrClosed", drops)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Drops counted when no drop event can be published any more (the broker is down at
// Close) are logged at Close with their count, so that they are not silent anywhere.
func TestCloseLogsDropsItCouldNotPublish(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs syncBuffer
	cfg := producer.DefaultConfig()
	cfg.Brokers = []string{addr}
	cfg.ServiceName = "checkout"
	p, err := producer.New(cfg, producer.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := p.Log(&schema.Log{Level: "info", Message: "m"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_ = p.Close(ctx)
	out := logs.String()
	if !strings.Contains(out, "drops not published as drop events") || !strings.Contains(out, "reason=producer-send-failed signal=log count=3") {
		t.Errorf("Close with the broker down did not log its 3 unpublished drops:\n%s", out)
	}
}
