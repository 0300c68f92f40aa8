package replay_test

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/spanpipe/spanpipe/replay"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func cluster(t *testing.T, topics map[string]map[string]string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	adm := kadm.NewClient(kafkatest.Client(t, c.ListenAddrs()))
	for topic, configs := range topics {
		cfgs := map[string]*string{}
		for k, v := range configs {
			cfgs[k] = kadm.StringPtr(v)
		}
		resp, err := adm.CreateTopic(t.Context(), 2, 1, cfgs, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return c.ListenAddrs()
}

// deadLetter publishes records of topic as dead letters, through the real Publisher,
// the way the consumer does: each with its own error.
func deadLetter(t *testing.T, brokers []string, recs []*kgo.Record) {
	t.Helper()
	p, err := dropalerts.New(dropalerts.DefaultConfig(), []kgo.Opt{kgo.SeedBrokers(brokers...)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	var letters []dropalerts.DeadLetter
	for i, r := range recs {
		letters = append(letters, dropalerts.DeadLetter{Record: r, Attempts: 1, Err: fmt.Errorf("poison %d", i)})
	}
	ev := dropalerts.Event{Reason: dropalerts.ReasonDecodeError, Count: len(recs), Component: dropalerts.ComponentConsumer}
	if err := p.Publish(t.Context(), ev, letters); err != nil {
		t.Fatal(err)
	}
}

func config(allowed ...string) replay.Config {
	cfg := replay.DefaultConfig()
	cfg.AllowedTopics = allowed
	cfg.IdleTimeout = 10 * time.Second
	return cfg
}

func run(t *testing.T, brokers []string, cfg replay.Config) *replay.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	res, err := replay.Run(ctx, cfg, []kgo.Opt{kgo.SeedBrokers(brokers...)}, nil)
	if err != nil {
		t.Fatalf("replay: %v (result %+v)", err, res)
	}
	return res
}

// consume reads every record of topic that arrived after the offsets in from, and
// returns them with the new end offsets.
func consume(t *testing.T, brokers []string, topic string, from map[int32]int64) ([]*kgo.Record, map[int32]int64) {
	t.Helper()
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	ends, err := adm.ListEndOffsets(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	parts := map[int32]kgo.Offset{}
	next := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		next[o.Partition] = o.Offset
		want += int(o.Offset - from[o.Partition])
		parts[o.Partition] = kgo.NewOffset().At(from[o.Partition])
	})
	cl := kafkatest.Client(t, brokers, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}), kgo.FetchMaxBytes(64<<20))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", len(out), want, topic)
		}
		out = append(out, fs.Records()...)
	}
	return out, next
}

// TestReplayingPoisonTwiceLeavesTheSameFailures is issue 13's "replay multiplies
// poison": 17 dead letters; a consumer that fails every record again (poison stays
// poison) dead-letters each replayed copy. Before, every run re-read the whole
// dead-letter topic, copies included: 17 → 34 → 68 replayed. Now each run replays 17,
// and the dead letters on the topic stay 17 distinct failures (lineages), however
// often they are replayed, also when a run reads everything again (--from-start).
func TestReplayingPoisonTwiceLeavesTheSameFailures(t *testing.T) {
	brokers := cluster(t, map[string]map[string]string{"spanpipe.spans": nil, "spanpipe.drops": nil})
	var poison []*kgo.Record
	for i := range 17 {
		poison = append(poison, &kgo.Record{Topic: "spanpipe.spans", Partition: int32(i % 2), Offset: int64(100 + i),
			Key: []byte("trace-" + strconv.Itoa(i)), Value: []byte("{not json " + strconv.Itoa(i))})
	}
	deadLetter(t, brokers, poison)

	spansSeen := map[int32]int64{}
	refail := func() {
		// The consumer's part: everything replayed onto spanpipe.spans fails again.
		var recs []*kgo.Record
		recs, spansSeen = consume(t, brokers, "spanpipe.spans", spansSeen)
		deadLetter(t, brokers, recs)
	}
	roots := func() (letters int, distinct map[string]bool) {
		recs, _ := consume(t, brokers, "spanpipe.drops", nil)
		distinct = map[string]bool{}
		for _, r := range recs {
			if d, err := dropalerts.ParseDeadLetter(r.Headers); err == nil {
				letters++
				distinct[d.Root(r)] = true
			}
		}
		return letters, distinct
	}

	cfg := config("spanpipe.spans")
	for i, wantLetters := range []int{34, 51} {
		res := run(t, brokers, cfg)
		if res.Published != 17 || res.Matched != 17 {
			t.Fatalf("run %d replayed %d (matched %d), want 17: %+v", i+1, res.Published, res.Matched, res.Stats)
		}
		refail()
		letters, distinct := roots()
		if letters != wantLetters || len(distinct) != 17 {
			t.Fatalf("after run %d: %d dead letters of %d distinct failures, want %d of 17", i+1, letters, len(distinct), wantLetters)
		}
	}
	// Reading everything again replays each failure once, the newest copy's lineage.
	cfg.FromStart = true
	res := run(t, brokers, cfg)
	if res.Published != 17 || res.Repeated != 34 {
		t.Fatalf("--from-start over 51 dead letters of 17 failures: published %d, repeats %d; want 17 and 34", res.Published, res.Repeated)
	}
	refail()
	if _, distinct := roots(); len(distinct) != 17 {
		t.Fatalf("%d distinct failures after a --from-start run, want 17", len(distinct))
	}
	// Nothing new: the next run has nothing to do.
	cfg.FromStart = false
	run(t, brokers, cfg) // the 17 copies of the --from-start run
	if res := run(t, brokers, cfg); res.Read != 0 || res.Published != 0 {
		t.Fatalf("a run with nothing new read %d and published %d", res.Read, res.Published)
	}
}

// TestReplayPublishesOnlyToAllowedTopics: a dead letter's source topic is data
// (anyone who can write to the drop topic can forge one); replay publishes only to
// the topics the operator allows and leaves the others, counted.
func TestReplayPublishesOnlyToAllowedTopics(t *testing.T) {
	brokers := cluster(t, map[string]map[string]string{"spanpipe.spans": nil, "payments": nil, "spanpipe.drops": nil})
	deadLetter(t, brokers, []*kgo.Record{
		{Topic: "spanpipe.spans", Key: []byte("a"), Value: []byte("1")},
		{Topic: "payments", Key: []byte("b"), Value: []byte(`{"refund":1000000}`)},
		{Topic: "spanpipe.drops", Key: []byte("c"), Value: []byte("loop")},
	})
	res := run(t, brokers, config("spanpipe.spans"))
	if res.Published != 1 || res.NotAllowed != 2 {
		t.Fatalf("published %d, not allowed %d; want 1 and 2", res.Published, res.NotAllowed)
	}
	if got := kafkatest.ReadAll(t, brokers, "payments", 1, time.Second); len(got) != 0 {
		t.Fatalf("replay wrote %d records to a topic it was not allowed to", len(got))
	}
	// What was left is not remembered as done: allowing the topic later replays it.
	res = run(t, brokers, config("spanpipe.spans", "payments"))
	if res.Published != 1 || res.NotAllowed != 1 {
		t.Fatalf("second run, payments allowed: published %d, not allowed %d; want 1 and 1", res.Published, res.NotAllowed)
	}
	if err := config("spanpipe.drops").Validate(); err == nil {
		t.Fatal("the dead-letter topic itself accepted as a target")
	}
}

// TestReplayFitsTheSourceTopicsLimit is defect 2's twin on the replay side: 300
// incompressible 8 KB dead letters of one source partition whose topic accepts 1 MiB
// per batch. Before, replay built 16 MiB batches and every record failed with
// MESSAGE_TOO_LARGE. A truncated dead letter is never re-published.
func TestReplayFitsTheSourceTopicsLimit(t *testing.T) {
	brokers := cluster(t, map[string]map[string]string{"spanpipe.spans": {"max.message.bytes": strconv.Itoa(1 << 20)},
		"spanpipe.drops": {"max.message.bytes": strconv.Itoa(4 << 20)}})
	var recs []*kgo.Record
	for i := range 300 {
		v := make([]byte, 8000)
		_, _ = crand.Read(v)
		recs = append(recs, &kgo.Record{Topic: "spanpipe.spans", Partition: 1, Offset: int64(i), Key: []byte("k"), Value: v})
	}
	big := make([]byte, 5<<20) // larger than the drop topic accepts: dead-lettered truncated
	recs = append(recs, &kgo.Record{Topic: "spanpipe.spans", Partition: 1, Offset: 300, Key: []byte("k"), Value: big})
	deadLetter(t, brokers, recs)
	res := run(t, brokers, config("spanpipe.spans"))
	if res.Published != 300 || res.Failed != 0 || res.Truncated != 1 {
		t.Fatalf("published %d, failed %d, truncated %d; want 300, 0, 1", res.Published, res.Failed, res.Truncated)
	}
	if got := kafkatest.ReadAll(t, brokers, "spanpipe.spans", 300, 30*time.Second); len(got) != 300 {
		t.Fatalf("spanpipe.spans holds %d records, want 300", len(got))
	}
}
