package query_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/query"
	"github.com/spanpipe/spanpipe/schema"
)

const dropTopic = "spanpipe.drops"

// dropsServer is an explorer whose drop summary reads a kfake drop topic that
// already holds recs (published before the explorer starts: it reads from the start).
func dropsServer(t *testing.T, recs ...*kgo.Record) *httptest.Server {
	t.Helper()
	c, err := kfake.NewCluster(kfake.SeedTopics(2, dropTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(dropTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	feed, err := query.StartDropFeed(context.Background(), dropTopic, nil, kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(feed.Close)
	srv := httptest.NewServer(query.NewHandler(nil, "", nil, query.WithDrops(feed.Drops)))
	t.Cleanup(srv.Close)
	return srv
}

func dropEvent(t *testing.T, e dropalerts.Event) *kgo.Record {
	t.Helper()
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Value: b, Headers: []kgo.RecordHeader{{Key: dropalerts.HeaderKind, Value: []byte(dropalerts.KindDropEvent)}}}
}

// TestDropSummary: drop events on the drop topic are counted by reason and signal,
// the newest come back as samples; dead letters, events older than the window and
// unreadable events are not counted (the last are reported), and a hostile reason
// is reported as "unknown", not as a new key.
func TestDropSummary(t *testing.T) {
	now := time.Now().UTC()
	ev := func(r dropalerts.Reason, sig schema.Signal, n int, at time.Time, msg string) *kgo.Record {
		return dropEvent(t, dropalerts.Event{Reason: r, Signal: sig, Count: n, FirstTime: at, LastTime: at,
			Component: "consumer", Error: msg})
	}
	letter := &kgo.Record{Value: []byte("{poison"), Headers: []kgo.RecordHeader{{Key: dropalerts.HeaderKind, Value: []byte(dropalerts.KindDeadLetter)}}}
	broken := &kgo.Record{Value: []byte("not json"), Headers: []kgo.RecordHeader{{Key: dropalerts.HeaderKind, Value: []byte(dropalerts.KindDropEvent)}}}
	srv := dropsServer(t,
		ev(dropalerts.ReasonDecodeError, schema.SignalTracing, 1, now.Add(-2*time.Hour), "invalid character 'p'"),
		ev(dropalerts.ReasonDecodeError, schema.SignalTracing, 2, now.Add(-time.Hour), "invalid character 'q'"),
		ev(dropalerts.ReasonSinkRejected, schema.SignalLog, 5, now.Add(-10*time.Minute), "VIOLATED_CONSTRAINT"),
		ev(dropalerts.ReasonTooLarge, schema.SignalTracing, 7, now.Add(-48*time.Hour), "too old to count"),
		ev("<script>alert(1)</script>", schema.SignalTracing, 1, now.Add(-time.Minute), "hostile"),
		letter, broken)

	var s query.DropSummary
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := get(t, srv, "/api/v1/drops?bucket=1h", &s)
		if code != 200 {
			t.Fatalf("GET /api/v1/drops: %d %s", code, body)
		}
		if len(s.Samples) == 4 && s.Unreadable == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	totals := map[string]int64{}
	for _, c := range s.Totals {
		totals[c.Reason+"/"+c.Signal] = c.Count
	}
	want := map[string]int64{"decode-error/tracing": 3, "sink-rejected/log": 5, "unknown/tracing": 1}
	if len(totals) != len(want) || s.Unreadable != 1 || s.Topic != dropTopic || s.BucketSeconds != 3600 {
		t.Fatalf("summary = %+v, want totals %v, 1 unreadable, 1h buckets of %s", s, want, dropTopic)
	}
	for k, n := range want {
		if totals[k] != n {
			t.Errorf("total %s = %d, want %d (%+v)", k, totals[k], n, s.Totals)
		}
	}
	var series int64
	for _, b := range s.Series {
		for _, c := range b.Counts {
			series += c.Count
		}
	}
	if series != 9 || len(s.Series) < 2 {
		t.Errorf("series sum %d over %d buckets, want 9 over at least 2: %+v", series, len(s.Series), s.Series)
	}
	if len(s.Samples) != 4 || s.Samples[0].Error != "hostile" || s.Samples[3].Error != "invalid character 'p'" {
		t.Errorf("samples = %+v, want the 4 events of the window, newest first", s.Samples)
	}

	get(t, srv, "/api/v1/drops?reason=decode-error&samples=1&from="+now.Add(-90*time.Minute).Format(time.RFC3339), &s)
	if len(s.Totals) != 1 || s.Totals[0].Count != 2 || len(s.Samples) != 1 || s.Samples[0].Error != "invalid character 'q'" {
		t.Errorf("decode-error in the last 90 minutes = %+v, want 2 records and 1 sample", s)
	}
}

// TestDropSummaryBadRequests: bad parameters are 400s naming them; an explorer
// without a drop feed says so with a 404.
func TestDropSummaryBadRequests(t *testing.T) {
	srv := dropsServer(t)
	for _, tt := range []struct{ path, want string }{
		{"/api/v1/drops?reason=nope", "reason: unknown"},
		{"/api/v1/drops?signal=trace", "signal: unknown"},
		{"/api/v1/drops?samples=51", "samples must be 0 to 50"},
		{"/api/v1/drops?samples=x", "samples must be 0 to 50"},
		{"/api/v1/drops?bucket=30s", "bucket must be whole minutes"},
		{"/api/v1/drops?bucket=90s", "bucket must be whole minutes"},
		{"/api/v1/drops?bucket=48h", "bucket must be whole minutes"},
		{"/api/v1/drops?from=soon", "from: want RFC 3339"},
		{"/api/v1/drops?from=0&to=1000", "from must be before to"},
		{"/api/v1/drops?limit=5", `unknown parameter \"limit\"`},
		{"/api/v1/drops?reason=a&reason=b", "given 2 times"},
	} {
		code, body := get(t, srv, tt.path, nil)
		if code != 400 || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s: got %d %s, want 400 with %q", tt.path, code, body, tt.want)
		}
	}
	off := httptest.NewServer(query.NewHandler(nil, "", nil))
	defer off.Close()
	if code, body := get(t, off, "/api/v1/drops", nil); code != 404 || !strings.Contains(body, "no drop topic") {
		t.Errorf("without a drop feed: %d %s, want 404 saying so", code, body)
	}
}
