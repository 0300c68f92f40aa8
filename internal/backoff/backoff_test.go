package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	p := Policy{Initial: 500 * time.Millisecond, Max: 3 * time.Second}
	for _, tc := range []struct {
		attempt int
		hint    time.Duration
		want    time.Duration
	}{
		{1, 0, 500 * time.Millisecond},
		{2, 0, time.Second},
		{3, 0, 2 * time.Second},
		{4, 0, 3 * time.Second},
		{50, 0, 3 * time.Second},
		{1, 10 * time.Second, 10 * time.Second},
	} {
		if got := p.Delay(tc.attempt, tc.hint); got != tc.want {
			t.Errorf("Delay(%d, %s) = %s, want %s", tc.attempt, tc.hint, got, tc.want)
		}
	}
}

func TestDelayJitterStaysInRange(t *testing.T) {
	p := Policy{Initial: time.Second, Max: time.Minute, Jitter: 0.5}
	for range 1000 {
		if d := p.Delay(3, 0); d < 2*time.Second || d > 4*time.Second {
			t.Fatalf("jittered delay %s outside [2s, 4s]", d)
		}
	}
}

func TestSleepStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
}
