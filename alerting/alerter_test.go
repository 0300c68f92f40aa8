package alerting_test

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/spanpipe/spanpipe/alerting"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// postedAlert is Alertmanager's postableAlert as the fake receives it.
type postedAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
}

type amPost struct {
	at     time.Time
	alerts []postedAlert
}

// fakeAM is Alertmanager's POST /api/v2/alerts over real HTTP; it fails with 500 while
// fail is set.
type fakeAM struct {
	*httptest.Server
	fail     atomic.Bool
	failures atomic.Int64
	mu       sync.Mutex
	posts    []amPost
}

func newFakeAM(t *testing.T) *fakeAM {
	am := &fakeAM{}
	am.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/alerts" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "not the alerts API", http.StatusNotFound)
			return
		}
		if am.fail.Load() {
			am.failures.Add(1)
			http.Error(w, "alertmanager is down", http.StatusInternalServerError)
			return
		}
		var alerts []postedAlert
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &alerts); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		am.mu.Lock()
		am.posts = append(am.posts, amPost{time.Now(), alerts})
		am.mu.Unlock()
	}))
	t.Cleanup(am.Close)
	return am
}

func (am *fakeAM) snapshot() []amPost {
	am.mu.Lock()
	defer am.mu.Unlock()
	return slices.Clone(am.posts)
}

// last returns the newest posted version of the alert with reason, if any.
func (am *fakeAM) last(reason string) (postedAlert, amPost, bool) {
	posts := am.snapshot()
	for i := len(posts) - 1; i >= 0; i-- {
		for _, a := range posts[i].alerts {
			if a.Labels["reason"] == reason {
				return a, posts[i], true
			}
		}
	}
	return postedAlert{}, amPost{}, false
}

type fakeWebhook struct {
	*httptest.Server
	mu       sync.Mutex
	payloads []alerting.WebhookPayload
}

func newFakeWebhook(t *testing.T) *fakeWebhook {
	wh := &fakeWebhook{}
	wh.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p alerting.WebhookPayload
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		wh.mu.Lock()
		wh.payloads = append(wh.payloads, p)
		wh.mu.Unlock()
	}))
	t.Cleanup(wh.Close)
	return wh
}

func (wh *fakeWebhook) snapshot() []alerting.WebhookPayload {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	return slices.Clone(wh.payloads)
}

func fastConfig(amURL string) alerting.Config {
	cfg := alerting.DefaultConfig()
	if amURL != "" {
		cfg.AlertmanagerURLs = []string{amURL}
	}
	cfg.EvalInterval = 20 * time.Millisecond
	cfg.MinSendInterval = 0
	cfg.ResendInterval = time.Hour
	cfg.Quiet = time.Hour
	cfg.RetryInitialInterval = 20 * time.Millisecond
	cfg.RetryMaxInterval = 100 * time.Millisecond
	cfg.RequestTimeout = 2 * time.Second
	return cfg
}

// runAlerter runs an alerter until the returned stop is called (or the test ends).
func runAlerter(t *testing.T, cfg alerting.Config, brokers []string, reg prometheus.Registerer) (stop func()) {
	t.Helper()
	a, err := alerting.New(cfg, []kgo.Opt{kgo.SeedBrokers(brokers...)},
		alerting.WithLogger(testLogger(t)), alerting.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// sinkDrop is a consumer-side drop like the pipeline publishes: count records of
// spanpipe.spans[partition] from offset first on, as dead letters.
func sinkDrop(t *testing.T, p *dropalerts.Publisher, reason dropalerts.Reason, partition int32, first int64, count int) {
	t.Helper()
	now := time.Now().UTC()
	ev := dropalerts.Event{
		Signal: "tracing", Reason: reason, Count: count, FirstTime: now, LastTime: now,
		Component: "consumer", Instance: "spanpipe/test/1", Sink: "duckdb", Error: "duckdb: disk full",
		Source: &dropalerts.Source{Topic: "spanpipe.spans", Partition: partition, FirstOffset: first, LastOffset: first + int64(count) - 1},
	}
	var letters []dropalerts.DeadLetter
	for i := range count {
		trace := "trace-" + string(rune('a'+partition)) + string(rune('0'+i))
		ev.SampleTraceIDs = append(ev.SampleTraceIDs, trace)
		letters = append(letters, dropalerts.DeadLetter{Attempts: 5, FirstFailure: now, Record: &kgo.Record{
			Topic: "spanpipe.spans", Partition: partition, Offset: first + int64(i), Key: []byte(trace), Value: []byte(`{"type":"span_ended"}`),
		}})
	}
	if err := p.Publish(context.Background(), ev, letters); err != nil {
		t.Fatal(err)
	}
}

// offsets returns the group's committed offsets and the topic's end offsets.
func offsets(t *testing.T, brokers []string, group, topic string) (committed, end map[int32]int64) {
	t.Helper()
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	committed, end = map[int32]int64{}, map[int32]int64{}
	if os, err := adm.FetchOffsets(ctx, group); err == nil {
		for p, o := range os[topic] {
			if o.Err == nil {
				committed[p] = o.At
			}
		}
	}
	eo, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	eo.Each(func(o kadm.ListedOffset) { end[o.Partition] = o.Offset })
	return committed, end
}

func allCommitted(t *testing.T, brokers []string, group, topic string) bool {
	c, e := offsets(t, brokers, group, topic)
	for p, o := range e {
		if o > 0 && c[p] != o {
			return false
		}
	}
	return true
}

// TestAlerterPostsOneAggregatedAlertPerKey: drop events of one key from two source
// partitions become one alert with the summed counts, the right labels and a
// description naming sample traces, source offsets and the dead-letter topic; another
// reason is a second alert; the drop topic is committed once they are delivered.
func TestAlerterPostsOneAggregatedAlertPerKey(t *testing.T) {
	c := kafkatest.Cluster(t, 2, "spanpipe.drops", "spanpipe.spans")
	brokers := c.ListenAddrs()
	am := newFakeAM(t)
	reg := prometheus.NewRegistry()
	runAlerter(t, fastConfig(am.URL), brokers, reg)

	p := kafkatest.Publisher(t, brokers)
	sinkDrop(t, p, dropalerts.ReasonRetryExhausted, 1, 10, 3)
	sinkDrop(t, p, dropalerts.ReasonRetryExhausted, 2, 5, 2)
	sinkDrop(t, p, dropalerts.ReasonDecodeError, 0, 7, 1)

	kafkatest.Eventually(t, 20*time.Second, "one alert with 5 records and one with 1", func() bool {
		a, _, ok := am.last("retry-exhausted")
		b, _, ok2 := am.last("decode-error")
		return ok && ok2 && a.Annotations["records"] == "5" && b.Annotations["records"] == "1"
	})
	a, post, _ := am.last("retry-exhausted")
	want := map[string]string{"alertname": "SpanpipeDrops", "reason": "retry-exhausted", "signal": "tracing",
		"sink": "duckdb", "component": "consumer", "severity": "warning"}
	if !maps.Equal(a.Labels, want) {
		t.Errorf("labels %v, want %v", a.Labels, want)
	}
	for _, s := range []string{"5 records in 2 drop events", "trace-b0, trace-b1, trace-b2, trace-c0, trace-c1",
		"spanpipe.spans[1] 10-12; spanpipe.spans[2] 5-6", "Dead letters: 5 on spanpipe.drops", "Last error: duckdb: disk full",
		"Instances: spanpipe/test/1"} {
		if !strings.Contains(a.Annotations["description"], s) {
			t.Errorf("description lacks %q:\n%s", s, a.Annotations["description"])
		}
	}
	if !strings.Contains(a.Annotations["summary"], "dropped 5 tracing records: retry-exhausted") {
		t.Errorf("summary %q", a.Annotations["summary"])
	}
	if a.StartsAt.After(post.at) || !a.EndsAt.After(post.at) {
		t.Errorf("startsAt %v endsAt %v posted at %v: want an active alert", a.StartsAt, a.EndsAt, post.at)
	}
	// Dedup: never two alerts with one key in a post, and only two keys ever.
	keys := map[string]bool{}
	for _, p := range am.snapshot() {
		inPost := map[string]bool{}
		for _, a := range p.alerts {
			k := a.Labels["reason"] + "/" + a.Labels["signal"] + "/" + a.Labels["sink"] + "/" + a.Labels["component"]
			if inPost[k] {
				t.Errorf("post has alert %s twice", k)
			}
			inPost[k], keys[k] = true, true
		}
	}
	if len(keys) != 2 {
		t.Errorf("alerts for %d keys, want 2: %v", len(keys), keys)
	}
	kafkatest.Eventually(t, 10*time.Second, "the drop topic committed to its end", func() bool {
		return allCommitted(t, brokers, "spanpipe-alert", "spanpipe.drops")
	})
	if got := testutil.ToFloat64(openAlerts(reg)); got != 2 {
		t.Errorf("spanpipe_dropalerts_open_alerts = %v, want 2", got)
	}
	if got := counter(t, reg, "spanpipe_dropalerts_events_consumed_total", "reason", "retry-exhausted"); got != 2 {
		t.Errorf("events consumed for retry-exhausted = %v, want 2", got)
	}
}

// TestAlerterResolvesAfterQuietPeriod: without new drops for Quiet, the alert is
// posted to Alertmanager with endsAt = now, and the webhook gets it as resolved; the
// webhook is posted to on changes only.
func TestAlerterResolvesAfterQuietPeriod(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.drops")
	brokers := c.ListenAddrs()
	am, wh := newFakeAM(t), newFakeWebhook(t)
	cfg := fastConfig(am.URL)
	cfg.WebhookURL = wh.URL + "/hook"
	cfg.Quiet = 300 * time.Millisecond
	reg := prometheus.NewRegistry()
	runAlerter(t, cfg, brokers, reg)

	sinkDrop(t, kafkatest.Publisher(t, brokers), dropalerts.ReasonSinkRejected, 0, 100, 1)
	kafkatest.Eventually(t, 20*time.Second, "a resolved alert", func() bool {
		a, post, ok := am.last("sink-rejected")
		return ok && !a.EndsAt.After(post.at)
	})
	a, _, _ := am.last("sink-rejected")
	if d := a.EndsAt.Sub(a.StartsAt); d < cfg.Quiet {
		t.Errorf("resolved %s after it started, want at least the quiet period %s", d, cfg.Quiet)
	}
	if first := am.snapshot()[0].alerts[0]; !first.EndsAt.After(am.snapshot()[0].at) {
		t.Errorf("first post %+v: want the alert active first", first)
	}
	kafkatest.Eventually(t, 10*time.Second, "the webhook's resolve", func() bool {
		ps := wh.snapshot()
		return len(ps) > 0 && ps[len(ps)-1].Status == "resolved"
	})
	ps := wh.snapshot()
	if len(ps) != 2 || ps[0].Status != "firing" || ps[0].Alerts[0].Status != "firing" || ps[1].Alerts[0].Status != "resolved" {
		t.Fatalf("webhook payloads %+v: want exactly firing then resolved", ps)
	}
	f := ps[0].Alerts[0]
	if f.Spanpipe.Records != 1 || f.Spanpipe.DeadLetters != 1 || f.Fingerprint == "" || f.Labels["reason"] != "sink-rejected" ||
		f.Spanpipe.Sources[0].FirstOffset != 100 || !f.EndsAt.IsZero() || ps[0].CommonLabels["alertname"] != "SpanpipeDrops" {
		t.Errorf("webhook alert %+v", f)
	}
	kafkatest.Eventually(t, 5*time.Second, "no open alerts", func() bool { return testutil.ToFloat64(openAlerts(reg)) == 0 })
}

// TestAlerterRetriesAndCommitsOnlyDelivered: while Alertmanager answers 500 the
// alerter retries with backoff and the drop topic is not committed past the
// undelivered drop event (the dead letters before it may be); once Alertmanager is
// back the alert goes out and the topic is committed to its end.
func TestAlerterRetriesAndCommitsOnlyDelivered(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.drops")
	brokers := c.ListenAddrs()
	am := newFakeAM(t)
	am.fail.Store(true)
	reg := prometheus.NewRegistry()
	runAlerter(t, fastConfig(am.URL), brokers, reg)

	sinkDrop(t, kafkatest.Publisher(t, brokers), dropalerts.ReasonRetryExhausted, 0, 0, 2) // offsets 0, 1: dead letters; 2: the event
	kafkatest.Eventually(t, 20*time.Second, "three failed posts", func() bool { return am.failures.Load() >= 3 })
	committed, _ := offsets(t, brokers, "spanpipe-alert", "spanpipe.drops")
	if o, ok := committed[0]; ok && o > 2 {
		t.Fatalf("committed offset %d while the drop event at offset 2 was not delivered", o)
	}
	if got := counter(t, reg, "spanpipe_dropalerts_alerts_sent_total", "outcome", "error"); got < 3 {
		t.Errorf("alerts_sent_total{outcome=error} = %v, want >= 3", got)
	}

	am.fail.Store(false)
	kafkatest.Eventually(t, 10*time.Second, "the alert delivered", func() bool { _, _, ok := am.last("retry-exhausted"); return ok })
	kafkatest.Eventually(t, 10*time.Second, "the drop topic committed to its end", func() bool {
		return allCommitted(t, brokers, "spanpipe-alert", "spanpipe.drops")
	})
	if got := counter(t, reg, "spanpipe_dropalerts_alerts_sent_total", "outcome", "ok"); got < 1 {
		t.Errorf("alerts_sent_total{outcome=ok} = %v, want >= 1", got)
	}
}

// TestAlerterRestartRereadsUndelivered: an alerter that stops while Alertmanager is
// down leaves the drop event uncommitted; the next one in the group reads it again
// and delivers the alert. No drop event is lost to an outage.
func TestAlerterRestartRereadsUndelivered(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.drops")
	brokers := c.ListenAddrs()
	down := newFakeAM(t)
	down.fail.Store(true)
	cfg := fastConfig(down.URL)
	cfg.ShutdownTimeout = time.Second
	stop := runAlerter(t, cfg, brokers, nil)
	sinkDrop(t, kafkatest.Publisher(t, brokers), dropalerts.ReasonTooLarge, 0, 42, 1) // offsets 0: dead letter, 1: event
	kafkatest.Eventually(t, 20*time.Second, "two failed posts", func() bool { return down.failures.Load() >= 2 })
	stop()
	committed, _ := offsets(t, brokers, "spanpipe-alert", "spanpipe.drops")
	if o, ok := committed[0]; ok && o > 1 {
		t.Fatalf("committed offset %d after a shutdown without delivery, want at most 1", o)
	}

	up := newFakeAM(t)
	runAlerter(t, fastConfig(up.URL), brokers, nil)
	kafkatest.Eventually(t, 20*time.Second, "the second alerter's alert", func() bool {
		a, _, ok := up.last("too-large")
		return ok && strings.Contains(a.Annotations["source_offsets"], "spanpipe.spans[0] 42-42")
	})
	kafkatest.Eventually(t, 10*time.Second, "the drop topic committed to its end", func() bool {
		return allCommitted(t, brokers, "spanpipe-alert", "spanpipe.drops")
	})
}

// TestAlerterSkipsDeadLettersAndProducerEvents: dead letters are not alerts; producer
// drop events (no sink, no source) are, without sink label.
func TestAlerterSkipsDeadLettersAndGarbage(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.drops")
	brokers := c.ListenAddrs()
	am := newFakeAM(t)
	reg := prometheus.NewRegistry()
	runAlerter(t, fastConfig(am.URL), brokers, reg)
	cl := kafkatest.Client(t, brokers)
	now := time.Now().UTC()
	prod := dropalerts.Event{Signal: "log", Reason: dropalerts.ReasonProducerBufferFull, Count: 7, FirstTime: now, LastTime: now,
		Component: "producer", Instance: "checkout/c1"}
	body, _ := prod.Marshal()
	kind := func(k string) []kgo.RecordHeader {
		return []kgo.RecordHeader{{Key: dropalerts.HeaderKind, Value: []byte(k)}}
	}
	res := cl.ProduceSync(context.Background(),
		&kgo.Record{Topic: "spanpipe.drops", Value: []byte("not json"), Headers: kind(dropalerts.KindDropEvent)},
		&kgo.Record{Topic: "spanpipe.drops", Value: body, Headers: kind(dropalerts.KindDeadLetter)},
		&kgo.Record{Topic: "spanpipe.drops", Value: body},
		&kgo.Record{Topic: "spanpipe.drops", Value: body, Headers: kind(dropalerts.KindDropEvent)},
	)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	kafkatest.Eventually(t, 20*time.Second, "the producer's alert", func() bool { _, _, ok := am.last("producer-buffer-full"); return ok })
	kafkatest.Eventually(t, 10*time.Second, "the drop topic committed to its end", func() bool {
		return allCommitted(t, brokers, "spanpipe-alert", "spanpipe.drops")
	})
	a, _, _ := am.last("producer-buffer-full")
	if _, ok := a.Labels["sink"]; ok || a.Labels["component"] != "producer" || a.Annotations["records"] != "7" {
		t.Errorf("alert %+v: want component producer, no sink label, 7 records", a)
	}
	if !strings.Contains(a.Annotations["description"], "No dead letters") {
		t.Errorf("description %q should say there are no dead letters", a.Annotations["description"])
	}
	if got := counter(t, reg, "spanpipe_dropalerts_events_consumed_total", "reason", "invalid"); got != 1 {
		t.Errorf("invalid events = %v, want 1", got)
	}
	for _, p := range am.snapshot() {
		if len(p.alerts) != 1 {
			t.Errorf("post with %d alerts, want only the producer's", len(p.alerts))
		}
	}
}

func TestAlerterConfigValidateNamesEveryProblem(t *testing.T) {
	cfg := alerting.DefaultConfig()
	cfg.Topic, cfg.Group = "", ""
	cfg.Window, cfg.Quiet = 0, -time.Second
	cfg.Thresholds = map[dropalerts.Reason]int{"retry-exausted": 3, dropalerts.ReasonTooLarge: 0}
	cfg.ExternalLabels = map[string]string{"severity": "x", "bad-name": "y"}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted an invalid config")
	}
	for _, want := range []string{"alert.topic", "alert.group", "alertmanager_urls or alert.webhook_url", "alert.window", "alert.quiet",
		`unknown reason "retry-exausted"`, "alert.thresholds.too-large", `"severity" is set by the alerter`, `"bad-name" is not a valid label name`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	cfg = alerting.DefaultConfig()
	cfg.AlertmanagerURLs = []string{"127.0.0.1:9093"}
	cfg.WebhookURL = "ftp://x"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "alertmanager_urls[0]") || !strings.Contains(err.Error(), "webhook_url") {
		t.Errorf("Validate(%v, %v) = %v, want both URLs rejected", cfg.AlertmanagerURLs, cfg.WebhookURL, err)
	}
	cfg.AlertmanagerURLs, cfg.WebhookURL = []string{"http://127.0.0.1:9093"}, ""
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults plus an Alertmanager: %v", err)
	}
}

func TestAlerterMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := fastConfig("http://127.0.0.1:9093")
	cfg.WebhookURL = "http://127.0.0.1:1/hook"
	if _, err := alerting.New(cfg, nil, alerting.WithRegisterer(reg)); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"spanpipe_dropalerts_alerts_sent_total", "spanpipe_dropalerts_open_alerts", "spanpipe_dropalerts_events_consumed_total"} {
		if !names[n] {
			t.Errorf("metric %s not registered (or not initialised)", n)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func openAlerts(reg *prometheus.Registry) prometheus.Collector {
	return gathered{reg, "spanpipe_dropalerts_open_alerts", "", ""}
}

// counter sums the samples of name whose label has value.
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	return testutil.ToFloat64(gathered{reg, name, label, value})
}

// gathered re-exposes the matching samples of a registry as one collector, summed,
// for testutil.ToFloat64.
type gathered struct {
	g            prometheus.Gatherer
	name, lk, lv string
}

func (x gathered) Describe(chan<- *prometheus.Desc) {}
func (x gathered) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := x.g.Gather()
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != x.name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := x.lk == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == x.lk && l.GetValue() == x.lv {
					match = true
				}
			}
			if match {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(x.name, "sum", nil, nil), prometheus.UntypedValue, sum)
}
