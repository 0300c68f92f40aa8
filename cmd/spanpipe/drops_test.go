package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
)

var dropTime = time.Date(2025, 3, 1, 12, 0, 1, 0, time.UTC)

// publishDrop publishes a consumer-side drop of spanpipe.spans[partition] at offsets
// through the real Publisher, with the given original headers on every record.
func publishDrop(t *testing.T, brokers []string, reason dropalerts.Reason, partition int32, offsets []int64, headers []kgo.RecordHeader) []*kgo.Record {
	t.Helper()
	p, err := dropalerts.New(dropalerts.DefaultConfig(), []kgo.Opt{kgo.SeedBrokers(brokers...)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ev := dropalerts.Event{
		Signal: "tracing", Reason: reason, Count: len(offsets), FirstTime: dropTime.Add(-time.Second), LastTime: dropTime,
		Component: "consumer", Instance: "spanpipe/h/1", Sink: "duckdb", Error: "duckdb: disk full",
		Source: &dropalerts.Source{Topic: "spanpipe.spans", Partition: partition, FirstOffset: offsets[0], LastOffset: offsets[len(offsets)-1]},
	}
	var letters []dropalerts.DeadLetter
	var originals []*kgo.Record
	for _, o := range offsets {
		r := &kgo.Record{
			Topic: "spanpipe.spans", Partition: partition, Offset: o, Timestamp: time.UnixMilli(1700000000000 + o),
			Key: []byte("trace-" + itoa(o)), Value: []byte(`{"type":"span_ended","n":` + itoa(o) + `}`), Headers: headers,
		}
		originals = append(originals, r)
		letters = append(letters, dropalerts.DeadLetter{Record: r, Attempts: 5, FirstFailure: dropTime.Add(-time.Second)})
	}
	if err := p.Publish(context.Background(), ev, letters); err != nil {
		t.Fatal(err)
	}
	return originals
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestDropsTailPrintsOneLinePerEvent(t *testing.T) {
	c := kafkatest.Cluster(t, 2, "spanpipe.drops")
	brokers := strings.Join(c.ListenAddrs(), ",")
	orig := publishDrop(t, c.ListenAddrs(), dropalerts.ReasonRetryExhausted, 1, []int64{10, 11}, nil)

	tail := func(args ...string) []string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := dropsTail(t.Context(), append([]string{"--brokers", brokers, "--from-beginning", "--timeout", "20s"}, args...), &out, &errOut); err != nil {
			t.Fatalf("drops tail %v: %v\n%s", args, err, errOut.String())
		}
		return strings.Split(strings.TrimSpace(out.String()), "\n")
	}
	lines := tail("--exit-after", "1")
	want := `2025-03-01T12:00:01.000Z retry-exhausted tracing count=2 from=consumer/spanpipe/h/1 sink=duckdb source=spanpipe.spans[1]:10-11 dead_letters=2 error="duckdb: disk full"`
	if len(lines) != 1 || lines[0] != want {
		t.Fatalf("got %q\nwant %q", lines, want)
	}

	lines = tail("--dead-letters", "--exit-after", "3")
	wantDL := fmt.Sprintf(`2025-03-01T12:00:00.000Z dead-letter retry-exhausted source=spanpipe.spans[1]:10 key="trace-10" bytes=%d attempts=5 from=consumer error="duckdb: disk full"`, len(orig[0].Value))
	slices.Sort(lines) // partitions interleave; the dead letters sort first (earlier time)
	if len(lines) != 3 || lines[2] != want || lines[0] != wantDL {
		t.Fatalf("with --dead-letters got:\n%s", strings.Join(lines, "\n"))
	}

	lines = tail("--json", "--exit-after", "1")
	ev, err := dropalerts.ParseEvent([]byte(lines[0]))
	if err != nil || ev.Reason != dropalerts.ReasonRetryExhausted || ev.Count != 2 || ev.DeadLetters != 2 || ev.Source.FirstOffset != 10 {
		t.Fatalf("--json line %q: %+v, %v", lines[0], ev, err)
	}
}

func TestDropsTailStartsAtEndAndStopsAtTimeout(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.drops")
	publishDrop(t, c.ListenAddrs(), dropalerts.ReasonDecodeError, 0, []int64{1}, nil)
	var out, errOut bytes.Buffer
	start := time.Now()
	if err := dropsTail(t.Context(), []string{"--brokers", c.ListenAddrs()[0], "--timeout", "500ms"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 || time.Since(start) > 10*time.Second {
		t.Fatalf("without --from-beginning: printed %q in %s, want nothing (the event was there before)", out.String(), time.Since(start))
	}
	err := runDrops(t.Context(), []string{"rotate"})
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("unknown subcommand: %v, want exit status 2", err)
	}
}

// TestAlertCommandPostsToAlertmanager runs `spanpipe alert` against kfake and a fake
// Alertmanager until cancelled: the wiring of flags, metrics server and alerter.
func TestAlertCommandPostsToAlertmanager(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.drops")
	var posts atomic.Int64
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v2/alerts" {
			posts.Add(1)
		}
	}))
	defer am.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- runAlert(ctx, []string{"--brokers", c.ListenAddrs()[0], "--alertmanager", am.URL, "--metrics-addr", "127.0.0.1:0",
			"--threshold", "decode-error=1", "--severity", "decode-error=critical", "--label", "cluster=test", "--log-level", "warn"})
	}()
	publishDrop(t, c.ListenAddrs(), dropalerts.ReasonDecodeError, 0, []int64{1}, nil)
	kafkatest.Eventually(t, 20*time.Second, "a post to Alertmanager", func() bool { return posts.Load() > 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("alert: %v", err)
	}

	err := runAlert(t.Context(), []string{"--check", "--alertmanager", "localhost:9093", "--threshold", "too-large=x"})
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "alertmanager_urls[0]") || !strings.Contains(err.Error(), "too-large=x") {
		t.Fatalf("bad flags: %v, want exit status 2 naming both problems", err)
	}
}

// TestDropsTailShowsEachLettersErrorAndTruncation: dead letters of one drop event
// each say their own error, and one larger than the drop topic accepts (1 MiB, the
// broker default) is shown truncated with its original size.
func TestDropsTailShowsEachLettersErrorAndTruncation(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "spanpipe.drops")
	p, err := dropalerts.New(dropalerts.DefaultConfig(), []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	letters := []dropalerts.DeadLetter{
		{Record: &kgo.Record{Topic: "spanpipe.spans", Offset: 1, Key: []byte("a"), Value: []byte("tru")}, Err: errors.New("invalid character 'h' in literal true")},
		{Record: &kgo.Record{Topic: "spanpipe.spans", Offset: 2, Key: []byte("b"), Value: []byte("{")}, Err: errors.New("unexpected end of JSON input")},
		{Record: &kgo.Record{Topic: "spanpipe.spans", Offset: 3, Key: []byte("c"), Value: bytes.Repeat([]byte("x"), 2<<20)}},
	}
	ev := dropalerts.Event{Reason: dropalerts.ReasonDecodeError, Count: 3, Component: "consumer", Error: "3 records do not decode"}
	if err := p.Publish(t.Context(), ev, letters); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := dropsTail(t.Context(), []string{"--brokers", c.ListenAddrs()[0], "--from-beginning", "--dead-letters", "--exit-after", "3", "--timeout", "20s"}, &out, &errOut); err != nil {
		t.Fatalf("drops tail: %v\n%s", err, errOut.String())
	}
	got := out.String()
	for _, want := range []string{
		`source=spanpipe.spans[0]:1 key="a" bytes=3 attempts=0 from=consumer error="invalid character 'h' in literal true"`,
		`source=spanpipe.spans[0]:2 key="b" bytes=1 attempts=0 from=consumer error="unexpected end of JSON input"`,
		`source=spanpipe.spans[0]:3 key="c" bytes=`, `truncated_from=2097152 error="3 records do not decode"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("drops tail output lacks %q:\n%s", want, got)
		}
	}
}
