package integration

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPoisonBatchLargerThanTheDropTopic is defect 2 of issue 10 on a real broker: the
// scenario's drop topic has the broker's default max.message.bytes (1 MiB), and 300
// incompressible 8 KB poison records arrive together, so the consumer dead-letters
// about 2.4 MB at once. Before, the publisher sent that as one batch, Kafka answered
// MESSAGE_TOO_LARGE, and the partition never advanced. Now every poison record is a
// dead letter with its original bytes and the group commits the end.
func TestPoisonBatchLargerThanTheDropTopic(t *testing.T) {
	s := newScenario(t, sharedBrokers(t), 1)
	// A dead-letter topic that does not exist: the publisher creates it with the
	// drops.* settings (16 MiB + 64 KiB per batch); the drop topic stays at 1 MiB.
	dlTopic := s.dropTopic + ".dl"
	c := s.startConsumer("c0", s.db(0), "SPANPIPE_DROPS_DEAD_LETTER_TOPIC="+dlTopic)
	s.waitAssigned(c)

	const n = 300
	var recs []*kgo.Record
	for i := range n {
		v := make([]byte, 8000)
		_, _ = crand.Read(v)
		v[0] = 0xff // never JSON: a decode-error
		recs = append(recs, &kgo.Record{Topic: s.topic, Key: []byte("trace-" + strconv.Itoa(i)), Value: v})
	}
	cl := newClient(t, s.brokers, kgo.ProducerLinger(50*time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	start := time.Now()
	if got := s.waitCommitted(3 * time.Minute); got != n {
		t.Fatalf("spans topic holds %d records, want %d", got, n)
	}
	took := time.Since(start)
	s.stopAll()
	drops := s.readDropTopic()
	byValue := map[string]bool{}
	letters := 0
	readTopic(t, s.brokers, dlTopic, func(r *kgo.Record) {
		if dropalerts.Kind(r) == dropalerts.KindDeadLetter {
			letters++
			byValue[string(r.Value)] = true
		}
	})
	for i, r := range recs {
		if !byValue[string(r.Value)] {
			t.Fatalf("poison record %d is not on the dead-letter topic whole (%d dead letters)", i, letters)
		}
	}
	rcs, err := s.adm.DescribeTopicConfigs(t.Context(), dlTopic)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"max.message.bytes": "16842752", "retention.ms": "604800000", "compression.type": "gzip"} {
		got := ""
		if rc, err := rcs.On(dlTopic, nil); err == nil {
			for _, c := range rc.Configs {
				if c.Key == key && c.Value != nil {
					got = *c.Value
				}
			}
		}
		if got != want {
			t.Errorf("created dead-letter topic: %s = %q, want %q", key, got, want)
		}
	}
	if got := drops.count(dropalerts.ComponentConsumer, dropalerts.ReasonDecodeError); got != n {
		t.Fatalf("drop events count %d decode-error records, want %d", got, n)
	}
	logFigures(t, "poison", n, "bytes_each", 8000, "dead_letters", letters, "drop_events", len(drops.events), "duration", took.Round(time.Second))
}

// TestPoisonReplayedTwice is issue 13's "replay multiplies poison", with the real
// binaries: 17 poison records are dead-lettered by `spanpipe consume`; `spanpipe
// replay` runs twice while the consumer keeps failing them. Before, the second run
// re-read the first run's failed copies too and replayed 34. Now each run replays the
// 17 and the dead letters stay 17 distinct failures (lineage header).
func TestPoisonReplayedTwice(t *testing.T) {
	s := newScenario(t, sharedBrokers(t), 2)
	c := s.startConsumer("c0", s.db(0))
	s.waitAssigned(c)

	const poisoned = 17
	var recs []*kgo.Record
	for i := range poisoned {
		recs = append(recs, &kgo.Record{Topic: s.topic, Key: []byte(randomHex(32)), Value: poison(i)})
	}
	for range 50 {
		trace := randomHex(32)
		recs = append(recs, &kgo.Record{Topic: s.topic, Key: []byte(trace), Value: endedSpan(trace, randomHex(16))})
	}
	cl := newClient(t, s.brokers)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	waitLetters := func(want int) dropTopic {
		t.Helper()
		var d dropTopic
		s.eventually(2*time.Minute, strconv.Itoa(want)+" dead letters", func() bool {
			d = s.readDropTopic()
			return len(d.letters) >= want
		})
		if len(d.letters) != want {
			t.Fatalf("%d dead letters, want %d", len(d.letters), want)
		}
		return d
	}
	waitLetters(poisoned)

	replay := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, spanpipeBinary(t), append([]string{"replay", "--brokers", strings.Join(s.brokers, ","),
			"--deadletter-topic", s.dropTopic, "--to-topics", s.topic, "--group", s.group + "-replay", "--idle-timeout", "20s"}, args...)...)
		cmd.Env = childEnv()
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("spanpipe replay %v: %v\n%s\n%s", args, err, out.String(), errOut.String())
		}
		return out.String()
	}
	for run, want := range []int{2 * poisoned, 3 * poisoned} {
		if out := replay(); !strings.Contains(out, "replayed "+strconv.Itoa(poisoned)+" dead letters (0 failed;") {
			t.Fatalf("replay run %d:\n%s", run+1, out)
		}
		d := waitLetters(want)
		roots := map[string]bool{}
		for _, l := range d.letters {
			info, err := dropalerts.ParseDeadLetter(l.Headers)
			if err != nil {
				t.Fatal(err)
			}
			roots[info.Root(l)] = true
		}
		if len(roots) != poisoned {
			t.Fatalf("after replay run %d: %d dead letters of %d distinct failures, want %d failures", run+1, len(d.letters), len(roots), poisoned)
		}
	}
	s.stopAll()
}
