package app

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/promx"
)

// Check is one health check's outcome: a line of the /livez or /readyz body.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// Probes answers /livez and /readyz.
type Probes interface {
	Live() []Check
	Ready() []Check
}

// healthHandler writes one line per check and answers 503 when one fails.
func healthHandler(checks func() []Check) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		var b strings.Builder
		status := http.StatusOK
		for _, c := range checks() {
			state := "ok"
			if !c.OK {
				state, status = "FAIL", http.StatusServiceUnavailable
			}
			fmt.Fprintf(&b, "%s %s: %s\n", state, c.Name, c.Detail)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(b.String()))
	}
}

func allOK(cs []Check) bool {
	for _, c := range cs {
		if !c.OK {
			return false
		}
	}
	return true
}

// health checks a [Consumer] against [MetricsConfig]'s thresholds.
type health struct {
	cfg   MetricsConfig
	c     *Consumer
	start time.Time
	now   func() time.Time
}

// Live: the poll loop goes round, no sink call hangs, and the sink does not say only
// a restart repairs it (brokenSink). Failing it gets the process restarted, so it
// tests only what a restart can fix: a sink outage or a drop topic that cannot be
// written keeps /livez green (the loops still tick) and shows on /readyz.
func (h *health) Live() []Check {
	now := h.now()
	mh := h.c.Member.Health()
	poll := Check{Name: "poll-loop", OK: true}
	switch gap := now.Sub(mh.LastTick); {
	case mh.LastTick.IsZero():
		poll.Detail = "not started yet"
	case gap > h.cfg.LiveMaxPollGap:
		poll.OK, poll.Detail = false, fmt.Sprintf("last went round %s ago (metrics.live_max_poll_gap %s)", gap.Round(time.Second), h.cfg.LiveMaxPollGap)
	default:
		poll.Detail = fmt.Sprintf("went round %s ago", gap.Round(time.Millisecond))
	}
	wh := h.c.writer.Health()
	writer := Check{Name: "writer", OK: true, Detail: "no sink call in flight"}
	if !wh.CallSince.IsZero() {
		d := now.Sub(wh.CallSince)
		writer.Detail = fmt.Sprintf("sink call in flight for %s", d.Round(time.Millisecond))
		if d > h.cfg.LiveMaxSinkCall {
			writer.OK, writer.Detail = false, fmt.Sprintf("sink call hung for %s (metrics.live_max_sink_call %s)", d.Round(time.Second), h.cfg.LiveMaxSinkCall)
		}
	}
	checks := []Check{poll, writer}
	if b, ok := h.c.sink.(brokenSink); ok {
		state := Check{Name: "sink-state", OK: true, Detail: "the sink can recover by itself"}
		if err := b.Broken(); err != nil {
			state.OK, state.Detail = false, "only a restart repairs the sink: "+oneLine(err)
		}
		checks = append(checks, state)
	}
	return checks
}

// brokenSink is a sink that can tell when it is in a state only a new process
// repairs: DuckDB after a FATAL error ends its database instance, and every write
// then waits (the records stay in Kafka, uncommitted) until the process restarts.
type brokenSink interface {
	Broken() error
}

// Ready: partitions held (or a legitimate wait for them), the writer keeping up, the
// sink accepting writes and the drop topic writable.
func (h *health) Ready() []Check {
	now := h.now()
	mh := h.c.Member.Health()
	assign := Check{Name: "assignment", OK: true}
	switch {
	case mh.Err != nil:
		assign.OK, assign.Detail = false, mh.Err.Error()
	case mh.Assigned > 0:
		assign.Detail = fmt.Sprintf("%d partitions held", mh.Assigned)
	case now.Sub(h.start) < h.cfg.ReadyAssignmentGrace:
		assign.OK, assign.Detail = false, fmt.Sprintf("no partitions assigned yet (ready after metrics.ready_assignment_grace %s without)", h.cfg.ReadyAssignmentGrace)
	default:
		assign.Detail = "no partitions assigned: standby, waiting for a rebalance"
	}
	stall := Check{Name: "writer-stall", OK: true, Detail: "nothing unwritten"}
	if t := h.c.Batcher.OldestUnwritten(); !t.IsZero() {
		age := now.Sub(t)
		stall.Detail = fmt.Sprintf("oldest unwritten record %s old", age.Round(time.Millisecond))
		if age > h.cfg.ReadyMaxStall {
			stall.OK, stall.Detail = false, fmt.Sprintf("oldest unwritten record %s old (metrics.ready_max_stall %s)", age.Round(time.Second), h.cfg.ReadyMaxStall)
		}
	}
	wh := h.c.writer.Health()
	sink := Check{Name: "sink", OK: true, Detail: "last write ok"}
	if !wh.FailingSince.IsZero() {
		d := now.Sub(wh.FailingSince)
		sink.Detail = fmt.Sprintf("writes failing for %s: %v", d.Round(time.Millisecond), oneLine(wh.LastErr))
		if d > h.cfg.ReadyMaxSinkFailing {
			sink.OK, sink.Detail = false, fmt.Sprintf("writes failing for %s (metrics.ready_max_sink_failing %s): %v", d.Round(time.Second), h.cfg.ReadyMaxSinkFailing, oneLine(wh.LastErr))
		}
	}
	drop := Check{Name: "drop-topic", OK: true, Detail: "last publish ok"}
	if err := h.c.drops.lastErr(); err != nil {
		drop.OK, drop.Detail = false, "last publish failed: "+oneLine(err)
	}
	return []Check{assign, stall, sink, drop}
}

func oneLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// trackedDrops remembers whether the drop publisher's last Publish failed. Publish
// retries inside and fails only when it gives up, so a failure means the drop topic
// cannot be written; the next success clears it.
type trackedDrops struct {
	*dropalerts.Publisher
	mu   sync.Mutex
	last error
}

func (d *trackedDrops) Publish(ctx context.Context, ev dropalerts.Event, letters []dropalerts.DeadLetter) error {
	err := d.Publisher.Publish(ctx, ev, letters)
	if ctx.Err() != nil {
		return err // shutting down says nothing about the topic
	}
	d.mu.Lock()
	d.last = err
	d.mu.Unlock()
	return err
}

func (d *trackedDrops) lastErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// registerReady exports /readyz as spanpipe_consumer_ready, evaluated at scrape.
func registerReady(reg prometheus.Registerer, h *health) {
	promx.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "spanpipe_consumer_ready",
		Help: "1 when /readyz passes (partitions held or a legitimate wait, writer not stalled, sink writes succeeding, drop topic writable), else 0.",
	}, func() float64 {
		if allOK(h.Ready()) {
			return 1
		}
		return 0
	}))
}

// noProbes passes both checks: a process with no consume path (the alerter).
type noProbes struct{}

func (noProbes) Live() []Check  { return []Check{{Name: "process", OK: true, Detail: "serving"}} }
func (noProbes) Ready() []Check { return []Check{{Name: "process", OK: true, Detail: "serving"}} }
