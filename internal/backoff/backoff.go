// Package backoff is spanpipe's one retry schedule: exponential, capped, optionally
// jittered, and waiting on a context. Sink writes, drop-event publishing and alert
// receivers all retry through it, so they share one vocabulary:
//
//	retry_delay (Initial), max_retry_delay (Max), max_retries (attempts after the first)
//
// It starts no goroutines and has no state beyond the Policy value.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is an exponential schedule: attempt 1 waits Initial, each later attempt
// doubles it, never above Max.
type Policy struct {
	// Initial is the wait before the first retry. Must be > 0.
	Initial time.Duration
	// Max caps every wait. Zero means Initial·2^30 (no practical cap).
	Max time.Duration
	// Jitter in [0, 1] spreads each wait over [d·(1-Jitter), d]: members restarted
	// together then do not retry in lockstep. 0 gives the exact schedule
	// (500ms, 1s, 2s, 4s), which the seeds document and tests rely on.
	Jitter float64
}

// Delay returns the wait before retry number attempt (1-based): Initial·2^(attempt-1),
// capped at Max, minus up to Jitter of it. A Retry-After style hint from the server
// wins when it is longer: pass it as hint (0 for none).
func (p Policy) Delay(attempt int, hint time.Duration) time.Duration {
	d := p.Initial
	if d <= 0 {
		d = time.Millisecond
	}
	maxWait := p.Max
	if maxWait <= 0 {
		maxWait = d << 30
	}
	for i := 1; i < attempt && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	if j := min(max(p.Jitter, 0), 1); j > 0 {
		span := time.Duration(float64(d) * j)
		if span > 0 {
			d -= rand.N(span + 1)
		}
	}
	return max(d, hint)
}

// Sleep waits d or until ctx ends, whichever comes first; it returns ctx's error in
// the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
