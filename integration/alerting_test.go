package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	dryRunRE   = regexp.MustCompile(`dry run: (\d+) dead letters would be replayed`)
	replayedRE = regexp.MustCompile(`replayed (\d+) dead letters \((\d+) failed`)
)

// TestAlertingOnDrops is issue 5's end-to-end path against a real broker and a real
// Alertmanager (Debian's prometheus-alertmanager on loopback):
//
//  1. a consumer whose sink fails (SPANPIPE_FAULT_FILE) with a short retry schedule
//     and on_retry_exhausted=dead-letter gets SPANPIPE_IT_ALERT_SPANS good spans and
//     SPANPIPE_IT_ALERT_POISON undecodable records from a raw franz-go client;
//  2. exactly that many dead letters and drop events (retry-exhausted, decode-error)
//     reach the drop topic, the consumer's spanpipe_dropped_records_total agrees, and
//     the group commits past them;
//  3. `spanpipe alert` posts one alert per (reason, signal, sink, component) to
//     Alertmanager: both are visible in GET /api/v2/alerts with the expected labels,
//     and both resolve (leave the active list) after the quiet period; the alerter
//     commits the drop topic once delivered and exports spanpipe_dropped_records_total;
//  4. the sink is fixed, `spanpipe replay --dry-run` counts every dead letter, and
//     `spanpipe replay --reason retry-exhausted`, run twice, stores every dead-lettered
//     span exactly once, with no new drops.
//
// Windows are short and configurable: SPANPIPE_IT_ALERT_WINDOW (10s),
// SPANPIPE_IT_ALERT_QUIET (4s). Every wait is a poll.
func TestAlertingOnDrops(t *testing.T) {
	brokers := sharedBrokers(t)
	s := newScenario(t, brokers, 2)
	am := startAlertmanager(t, s.dir)
	var (
		spans  = envInt("SPANPIPE_IT_ALERT_SPANS", 40)
		poison = envInt("SPANPIPE_IT_ALERT_POISON", 3)
		window = envDuration("SPANPIPE_IT_ALERT_WINDOW", 10*time.Second)
		quiet  = envDuration("SPANPIPE_IT_ALERT_QUIET", 4*time.Second)
	)
	start := time.Now()

	// 1. A consumer with a broken sink and a short retry schedule.
	fault := filepath.Join(s.dir, "sink-down")
	if err := os.WriteFile(fault, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c := s.startConsumer("c0", s.db(0),
		"SPANPIPE_FAULT_FILE="+fault,
		"SPANPIPE_PIPELINE_MAX_RETRIES=2",
		"SPANPIPE_PIPELINE_RETRY_DELAY=100ms",
		"SPANPIPE_PIPELINE_ON_RETRY_EXHAUSTED=dead-letter")
	s.waitAssigned(c)

	cl := newClient(t, brokers, kgo.DefaultProduceTopic(s.topic))
	want := map[spanKey]bool{}
	var recs []*kgo.Record
	for i := range spans {
		k := spanKey{randomHex(32), randomHex(16)}
		if i%4 != 0 && len(recs) > 0 { // four spans per trace
			k.trace = string(recs[len(recs)-1].Key)
		}
		want[k] = true
		recs = append(recs, &kgo.Record{Key: []byte(k.trace), Value: endedSpan(k.trace, k.span)})
	}
	for i := range poison {
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("poison-%d", i)), Value: []byte(`{"type":"span_ended","span":{"traceId":`)})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	produced := time.Now()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	// 2. Everything is on the drop topic, counted, and committed past.
	s.waitCommitted(time.Minute)
	dropped := time.Since(produced)
	d := s.readDropTopic()
	if got := len(d.letters); got != spans+poison {
		t.Errorf("%d dead letters, want %d (%d retry-exhausted + %d decode-error)", got, spans+poison, spans, poison)
	}
	if got := d.count("consumer", dropalerts.ReasonRetryExhausted); got != spans {
		t.Errorf("drop events count %d retry-exhausted records, want %d", got, spans)
	}
	if got := d.count("consumer", dropalerts.ReasonDecodeError); got != poison {
		t.Errorf("drop events count %d decode-error records, want %d", got, poison)
	}
	if got := d.count("consumer", ""); got != spans+poison || d.other != 0 {
		t.Errorf("drop events count %d records in all (want %d); %d other records on the drop topic (want 0)", got, spans+poison, d.other)
	}
	byReason := map[string]int{}
	for _, r := range d.letters {
		byReason[header(r, dropalerts.HeaderReason)]++
		if header(r, dropalerts.HeaderSourceTopic) != s.topic || header(r, dropalerts.HeaderAttempts) == "" {
			t.Errorf("dead letter %d lacks its source topic or attempts header: %v", r.Offset, r.Headers)
			break
		}
	}
	if byReason[string(dropalerts.ReasonRetryExhausted)] != spans || byReason[string(dropalerts.ReasonDecodeError)] != poison {
		t.Errorf("dead letters by reason header: %v, want retry-exhausted=%d decode-error=%d", byReason, spans, poison)
	}
	for _, ev := range d.events {
		if ev.Reason == dropalerts.ReasonRetryExhausted && (ev.Sink != "duckdb" || ev.Signal != "tracing" || ev.DeadLetterTopic != s.dropTopic || len(ev.SampleTraceIDs) == 0) {
			t.Errorf("retry-exhausted drop event %+v: want sink duckdb, signal tracing, dead letters on %s, sample trace ids", ev, s.dropTopic)
		}
	}
	m := c.metrics()
	if got := m.sum("spanpipe_dropped_records_total", "reason=retry-exhausted", "signal=tracing", "component=consumer"); got != float64(spans) {
		t.Errorf("consumer spanpipe_dropped_records_total{reason=retry-exhausted,signal=tracing} = %v, want %d", got, spans)
	}
	// The poison's envelope names its type (span_ended) before it breaks off: its
	// signal is known, and said, although the record does not decode.
	if got := m.sum("spanpipe_dropped_records_total", "reason=decode-error", "signal=tracing", "component=consumer"); got != float64(poison) {
		t.Errorf("consumer spanpipe_dropped_records_total{reason=decode-error,signal=tracing} = %v, want %d", got, poison)
	}
	if t.Failed() {
		t.FailNow()
	}

	// 3. `spanpipe alert` against the real Alertmanager.
	alertGroup := s.group + "-alert"
	servingRE := metricsAddrRE
	alertStart := time.Now()
	alerter := startBg(t, "spanpipe alert", filepath.Join(s.dir, "alert.log"), []*regexp.Regexp{servingRE}, spanpipeBinary(t),
		"alert", "--brokers", strings.Join(brokers, ","), "--topic", s.dropTopic, "--group", alertGroup,
		"--alertmanager", am.url, "--window", window.String(), "--quiet", quiet.String(),
		"--resend", "2s", "--min-interval", "500ms", "--severity", "retry-exhausted=critical",
		"--label", "scenario="+s.group, "--metrics-addr", "127.0.0.1:0")
	alertMetrics := alerter.await(t, servingRE, time.Minute)

	type wantAlert struct{ reason, signal, severity string }
	wants := []wantAlert{{"retry-exhausted", "tracing", "critical"}, {"decode-error", "tracing", "warning"}}
	scenarioFilter := fmt.Sprintf(`scenario=%q`, s.group)
	var visible []amAlert
	s.eventually(window, "both alerts to be visible in Alertmanager's API", func() bool {
		if alerter.done() {
			t.Fatalf("spanpipe alert exited:\n%s", alerter.logTail(30))
		}
		as, err := am.alerts(t.Context(), scenarioFilter, `alertname="SpanpipeDrops"`)
		if err != nil {
			t.Logf("alertmanager: %v", err)
			return false
		}
		visible = as
		return len(as) == len(wants)
	})
	toVisible := time.Since(alertStart)
	for _, w := range wants {
		var found *amAlert
		for i, a := range visible {
			if a.Labels["reason"] == w.reason {
				found = &visible[i]
			}
		}
		if found == nil {
			t.Errorf("no %s alert among %+v", w.reason, visible)
			continue
		}
		wantLabels := map[string]string{"alertname": "SpanpipeDrops", "reason": w.reason, "signal": w.signal,
			"sink": "duckdb", "component": "consumer", "severity": w.severity, "scenario": s.group}
		for k, v := range wantLabels {
			if found.Labels[k] != v {
				t.Errorf("%s alert: label %s=%q, want %q (labels %v)", w.reason, k, found.Labels[k], v, found.Labels)
			}
		}
		n := spans
		if w.reason == "decode-error" {
			n = poison
		}
		if sum := found.Annotations["summary"]; !strings.Contains(sum, fmt.Sprintf("dropped %d ", n)) {
			t.Errorf("%s alert summary %q does not say %d records", w.reason, sum, n)
		}
		if found.Status.State != "active" || !found.EndsAt.After(time.Now()) {
			t.Errorf("%s alert: state %q, endsAt %s: want active and not ended", w.reason, found.Status.State, found.EndsAt)
		}
		if r := found.Annotations["replay"]; !strings.Contains(r, "spanpipe replay --reason "+w.reason) || found.Annotations["dead_letter_topic"] != s.dropTopic {
			t.Errorf("%s alert: annotations replay=%q dead_letter_topic=%q, want the replay command and %s", w.reason, r, found.Annotations["dead_letter_topic"], s.dropTopic)
		}
	}

	// No new drops: every alert resolves after the quiet period and leaves the active list.
	resolveStart := time.Now()
	s.eventually(quiet+window+10*time.Second, "the alerts to resolve after the quiet period", func() bool {
		as, err := am.alerts(t.Context(), scenarioFilter)
		if err != nil {
			return false
		}
		for _, a := range as {
			if a.EndsAt.After(time.Now()) {
				return false
			}
		}
		return true
	})
	toResolve := time.Since(resolveStart)
	if toResolve < quiet-time.Second {
		t.Errorf("alerts resolved %s after they were visible, before the quiet period (%s) passed", toResolve, quiet)
	}

	// The alerter exports the shared drop counter, and commits what it delivered.
	am2, err := scrapeURL(t.Context(), alertMetrics)
	if err != nil {
		t.Fatalf("scrape spanpipe alert: %v", err)
	}
	if !hasFamily(am2, "spanpipe_dropped_records_total") {
		t.Errorf("spanpipe alert does not export spanpipe_dropped_records_total")
	}
	if got := am2.sum("spanpipe_dropalerts_events_consumed_total"); got != float64(len(d.events)) {
		t.Errorf("spanpipe alert read %v drop events, want %d", got, len(d.events))
	}
	if got := am2.sum("spanpipe_dropalerts_alerts_sent_total", "outcome=ok"); got < 4 {
		t.Errorf("spanpipe alert delivered %v alerts to Alertmanager, want at least 4 (2 firing, 2 resolved)", got)
	}
	if code := alerter.stop(t); code != 0 {
		t.Errorf("spanpipe alert exited with %d after SIGTERM, want 0\n%s", code, alerter.logTail(20))
	}
	ends, err := s.adm.ListEndOffsets(t.Context(), s.dropTopic)
	if err != nil {
		t.Fatal(err)
	}
	commits, err := s.adm.FetchOffsets(t.Context(), alertGroup)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if c, _ := commits.Lookup(o.Topic, o.Partition); c.At != o.Offset {
			t.Errorf("alert group committed %s[%d] at %d, want the end %d", o.Topic, o.Partition, c.At, o.Offset)
		}
	})

	// 4. Fix the sink, replay twice: each dead-lettered span is stored exactly once.
	if err := os.Remove(fault); err != nil {
		t.Fatal(err)
	}
	replayLog := filepath.Join(s.dir, "replay.log")
	base := []string{"replay", "--brokers", strings.Join(brokers, ","), "--deadletter-topic", s.dropTopic, "--to-topics", s.topic, "--idle-timeout", "20s"}
	out := runSpanpipe(t, ctx, replayLog, append(base, "--dry-run")...)
	if mm := dryRunRE.FindStringSubmatch(out); mm == nil || atoiOr(mm[1]) != spans+poison {
		t.Errorf("replay --dry-run: want %d dead letters, got:\n%s", spans+poison, out)
	}
	replays := make([]string, 2)
	for i := range replays {
		args := append(base, "--reason", "retry-exhausted", "--source-topic", s.topic)
		if i > 0 {
			// Replay remembers what it replayed; the second run reads it all again.
			args = append(args, "--from-start")
		}
		out := runSpanpipe(t, ctx, replayLog, args...)
		replays[i] = strings.TrimSpace(out)
		if mm := replayedRE.FindStringSubmatch(out); mm == nil || atoiOr(mm[1]) != spans || mm[2] != "0" {
			t.Fatalf("replay run %d: want %d replayed, 0 failed, got:\n%s", i+1, spans, out)
		}
		s.waitCommitted(time.Minute)
	}
	c.stop()
	after := s.readDropTopic()
	if len(after.letters) != len(d.letters) || len(after.events) != len(d.events) {
		t.Errorf("replay caused new drops: %d dead letters and %d drop events, before %d and %d",
			len(after.letters), len(after.events), len(d.letters), len(d.events))
	}
	view := readStores(t, s.dbs())
	if view.rows != int64(spans) || view.distinct() != int64(spans) {
		t.Errorf("stores hold %d rows of %d distinct spans after two replays, want %d of %d", view.rows, view.distinct(), spans, spans)
	}
	for k := range want {
		if got, ok := view.spans[k]; !ok || got.copies != 1 || !got.ended {
			t.Errorf("span %s: stored=%v copies=%d ended=%v, want stored once and ended", k, ok, got.copies, got.ended)
		}
	}
	checkStore(t, view, s.readSpansTopic())
	total := time.Since(start)
	logFigures(t, "spans", spans, "poison", poison, "dead_letters", len(d.letters), "drop_events", len(d.events),
		"retry_exhausted", d.count("consumer", dropalerts.ReasonRetryExhausted), "decode_error", d.count("consumer", dropalerts.ReasonDecodeError),
		"produce_to_dropped_and_committed", dropped.Round(100*time.Millisecond), "alert_visible", toVisible.Round(100*time.Millisecond),
		"alert_resolved", toResolve.Round(100*time.Millisecond), "window", window, "quiet", quiet,
		"stored_rows", view.rows, "stored_distinct", view.distinct(), "scenario_wall", total.Round(100*time.Millisecond))
	t.Logf("replay 1: %s", replays[0])
	if total > 90*time.Second {
		t.Logf("the scenario took %s, more than its 90s budget", total.Round(time.Second))
	}
}

// hasFamily reports whether a scrape has at least one sample of the metric family
// name (a histogram's or summary's series count too).
func hasFamily(m metricSet, name string) bool {
	for _, x := range m {
		if x.name == name || strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(x.name, "_bucket"), "_sum"), "_count") == name {
			return true
		}
	}
	return false
}

// TestAlertmanagerExampleConfig checks deploy/alertmanager/alertmanager.yml with
// amtool (from Debian's prometheus-alertmanager) and that it routes critical spanpipe
// alerts to the pager and the team, and warnings to the team only.
func TestAlertmanagerExampleConfig(t *testing.T) {
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		alertmanagerBinary(t) // installs the package (with amtool) where it can, else skips
		if amtool, err = exec.LookPath("amtool"); err != nil {
			t.Skipf("amtool not found: %v", err)
		}
	}
	cfg := filepath.Join(repoRoot, "deploy", "alertmanager", "alertmanager.yml")
	if out, err := exec.Command(amtool, "check-config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("amtool check-config %s: %v\n%s", cfg, err, out)
	}
	for labels, want := range map[string]string{
		"alertname=SpanpipeDrops severity=critical reason=retry-exhausted": "spanpipe-pager,spanpipe-team",
		"alertname=SpanpipeDrops severity=warning reason=decode-error":     "spanpipe-team",
		"alertname=SpanpipeNoSuccessfulFlush severity=critical":            "spanpipe-pager,spanpipe-team",
	} {
		args := append([]string{"config", "routes", "test", "--config.file=" + cfg}, strings.Fields(labels)...)
		cmd := exec.Command(amtool, args...)
		var stdout strings.Builder
		cmd.Stdout = &stdout
		if err := cmd.Run(); err != nil {
			t.Fatalf("amtool %s: %v", strings.Join(args, " "), err)
		}
		if got := strings.TrimSpace(stdout.String()); got != want {
			t.Errorf("%s routes to %q, want %q", labels, got, want)
		}
	}
}
