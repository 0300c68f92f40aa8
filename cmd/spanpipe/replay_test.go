package main

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestReplayRepublishesExactlyTheMatchingDeadLetters publishes dead letters of three
// reasons from three source partitions through the real Publisher; a dry run counts
// the matching ones per reason, topic and partition and publishes nothing; a real run
// with a reason and partition filter re-publishes exactly those records to their
// source partition with key, value, timestamp and original headers restored.
func TestReplayRepublishesExactlyTheMatchingDeadLetters(t *testing.T) {
	c := kafkatest.Cluster(t, 3, "spanpipe.spans", "spanpipe.drops")
	brokers := c.ListenAddrs()
	hs := []kgo.RecordHeader{{Key: "spanpipe-codec", Value: []byte("json")}, {Key: "x-tenant", Value: []byte("acme")}}
	var orig []*kgo.Record
	orig = append(orig, publishDrop(t, brokers, dropalerts.ReasonRetryExhausted, 0, []int64{1, 2}, hs)...)
	orig = append(orig, publishDrop(t, brokers, dropalerts.ReasonRetryExhausted, 1, []int64{5}, hs)...)
	orig = append(orig, publishDrop(t, brokers, dropalerts.ReasonSinkRejected, 1, []int64{6}, hs)...)
	orig = append(orig, publishDrop(t, brokers, dropalerts.ReasonDecodeError, 2, []int64{9}, nil)...)

	run := func(args ...string) (string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := replayCmd(t.Context(), append([]string{"--brokers", strings.Join(brokers, ","), "--idle-timeout", "10s"}, args...), &out, &errOut)
		if err != nil {
			t.Fatalf("replay %v: %v\n%s", args, err, errOut.String())
		}
		return out.String(), errOut.String()
	}

	out, progress := run("--dry-run", "--reason", "retry-exhausted")
	for _, want := range []string{
		"REASON           SOURCE TOPIC    PARTITION  DEAD LETTERS  SOURCE OFFSETS\n" +
			"retry-exhausted  spanpipe.spans  0          2             1-2\n" +
			"retry-exhausted  spanpipe.spans  1          1             5-5\n",
		"dry run: 3 dead letters would be replayed (9 records read: 4 not dead letters, 2 filtered out, 0 repeats",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(progress, "replay: read 9/9 records of spanpipe.drops") {
		t.Errorf("progress on stderr: %q", progress)
	}
	if n := len(kafkatest.ReadAll(t, brokers, "spanpipe.spans", 1, 500*time.Millisecond)); n != 0 {
		t.Fatalf("a dry run published %d records", n)
	}

	out, _ = run("--reason", "retry-exhausted,sink-rejected", "--source-partition", "1", "--since", "2025-03-01T11:00:00Z", "--until", "2025-03-01T13:00:00Z")
	if !strings.Contains(out, "replayed 2 dead letters (0 failed;") {
		t.Fatalf("output:\n%s", out)
	}
	got := kafkatest.ReadAll(t, brokers, "spanpipe.spans", 2, 10*time.Second)
	if extra := kafkatest.ReadAll(t, brokers, "spanpipe.spans", 3, 500*time.Millisecond); len(extra) != 2 {
		t.Fatalf("spanpipe.spans has %d records, want exactly the 2 replayed", len(extra))
	}
	slices.SortFunc(got, func(a, b *kgo.Record) int { return strings.Compare(string(a.Key), string(b.Key)) })
	for i, want := range []*kgo.Record{orig[2], orig[3]} { // partition 1, offsets 5 and 6
		r := got[i]
		if r.Partition != 1 || !bytes.Equal(r.Key, want.Key) || !bytes.Equal(r.Value, want.Value) || !r.Timestamp.Equal(want.Timestamp) {
			t.Errorf("replayed %s[%d] key %q value %q ts %v, want partition 1 key %q value %q ts %v",
				r.Topic, r.Partition, r.Key, r.Value, r.Timestamp, want.Key, want.Value, want.Timestamp)
		}
		// The original headers, then the lineage: which dead letter this is a replay of.
		if len(r.Headers) != len(hs)+2 {
			t.Errorf("replayed headers %v, want the original %v and the lineage", r.Headers, hs)
			continue
		}
		for j, h := range hs {
			if r.Headers[j].Key != h.Key || !bytes.Equal(r.Headers[j].Value, h.Value) || dropalerts.IsDeadLetterHeader(r.Headers[j].Key) {
				t.Errorf("replayed header %d: %s=%q, want %s=%q", j, r.Headers[j].Key, r.Headers[j].Value, h.Key, h.Value)
			}
		}
		if of, n := r.Headers[len(hs)], r.Headers[len(hs)+1]; of.Key != dropalerts.HeaderReplayOf || !strings.HasPrefix(string(of.Value), "spanpipe.drops/") ||
			n.Key != dropalerts.HeaderReplayCount || string(n.Value) != "1" {
			t.Errorf("lineage headers %s=%q %s=%q, want %s=spanpipe.drops/<partition>/<offset> %s=1", of.Key, of.Value, n.Key, n.Value,
				dropalerts.HeaderReplayOf, dropalerts.HeaderReplayCount)
		}
	}

	// Filters that match nothing, and filters that make no sense.
	if out, _ = run("--dry-run", "--since", "1h"); !strings.Contains(out, "dry run: 0 dead letters") {
		t.Errorf("--since 1h (the dead letters failed in 2025): %s", out)
	}
	for _, args := range [][]string{{"--from-offset", "3"}, {"--reason", "retry-exausted"}, {"--since", "yesterday"}} {
		err := replayCmd(t.Context(), append([]string{"--brokers", brokers[0]}, args...), &bytes.Buffer{}, &bytes.Buffer{})
		var ee exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("replay %v: %v, want exit status 2", args, err)
		}
	}
}
