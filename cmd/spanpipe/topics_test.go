package main

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
)

// produceTo writes n records to topic[partition].
func produceTo(t *testing.T, brokers []string, topic string, partition int32, n int) {
	t.Helper()
	cl := kafkatest.Client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range n {
		r := &kgo.Record{Topic: topic, Partition: partition, Value: []byte("v" + strconv.Itoa(i))}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func commitAt(t *testing.T, adm *kadm.Client, group, topic string, partition int32, at int64) {
	t.Helper()
	var o kadm.Offsets
	o.Add(kadm.Offset{Topic: topic, Partition: partition, At: at, LeaderEpoch: -1})
	resp, err := adm.CommitOffsets(context.Background(), group, o)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
}

func committed(t *testing.T, adm *kadm.Client, group, topic string, partition int32) int64 {
	t.Helper()
	resp, err := adm.FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := resp.Lookup(topic, partition)
	if !ok {
		return -1
	}
	return o.At
}

// TestTopicsCreateDescribe runs `spanpipe topics create` and `describe` against a
// broker: the spans topic gets the configured partitions and configs (a broker
// auto-creating it gives its num.partitions, 1 by default), the drop topic the
// drops.* ones; describe shows them with per-partition offsets and the group's lag.
func TestTopicsCreateDescribe(t *testing.T) {
	c := kafkatest.Cluster(t, 1)
	addr := c.ListenAddrs()[0]
	env := []string{"SPANPIPE_KAFKA_BROKERS=" + addr}
	out, stderr, code := spanpipe(t, env, "topics", "create", "--partitions", "6", "--topic-config", "retention.ms=3600000")
	if code != 0 {
		t.Fatalf("topics create: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"created spanpipe.spans: 6 partitions, replication factor the broker's default, retention.ms=3600000\n",
		"created spanpipe.drops: 3 partitions"} {
		if !strings.Contains(out, want) {
			t.Errorf("topics create printed %q, want %q", out, want)
		}
	}
	adm := kadm.NewClient(kafkatest.Client(t, []string{addr}))
	td, err := adm.ListTopics(context.Background(), "spanpipe.spans", "spanpipe.drops")
	if err != nil || len(td["spanpipe.spans"].Partitions) != 6 || len(td["spanpipe.drops"].Partitions) != 3 {
		t.Fatalf("topics on the broker: %v, %v; want spans with 6 partitions, drops with 3", td, err)
	}
	if out, _, code := spanpipe(t, env, "topics", "create", "--partitions", "6"); code != 0 || !strings.Contains(out, "exists  spanpipe.spans: 6 partitions, replication factor 1") {
		t.Errorf("second topics create: exit %d, %q", code, out)
	}
	if out, _, code := spanpipe(t, env, "topics", "create", "--partitions", "8"); code != 0 || !strings.Contains(out, "exists  spanpipe.spans: 6 partitions, fewer than 8: no more consumers of a group than that work at once (--grow adds partitions)") {
		t.Errorf("topics create with more partitions: exit %d, %q", code, out)
	}
	if out, _, code := spanpipe(t, env, "topics", "create", "--partitions", "8", "--grow"); code != 0 || !strings.Contains(out, "grown   spanpipe.spans: from 6 to 8 partitions") {
		t.Errorf("topics create --grow: exit %d, %q", code, out)
	}

	produceTo(t, []string{addr}, "spanpipe.spans", 2, 4)
	commitAt(t, adm, "spanpipe", "spanpipe.spans", 2, 1)
	out, stderr, code = spanpipe(t, env, "topics", "describe")
	if code != 0 {
		t.Fatalf("topics describe: exit %d: %s", code, stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`topic spanpipe.spans: 8 partitions, replication factor 1\n  configs set on the topic: .*retention.ms=3600000`),
		regexp.MustCompile(`partition +leader +replicas +in-sync +start +end +committed \(spanpipe\) +lag\n`),
		regexp.MustCompile(`\n  2 +\d+ +\[\d+\] +\[\d+\] +0 +4 +1 +3\n`),
		regexp.MustCompile(`topic spanpipe.drops: 3 partitions`),
	} {
		if !want.MatchString(out) {
			t.Errorf("topics describe lacks %s:\n%s", want, out)
		}
	}
	if _, stderr, code := spanpipe(t, env, "topics", "describe", "no.such.topic"); code != 1 || !strings.Contains(stderr, "1 topic missing") {
		t.Errorf("describe of a missing topic: exit %d, %q", code, stderr)
	}
}

// TestProduceCreatesTopicWithPartitions: the first produce creates spanpipe.spans
// with topics.partitions (12), not the broker's num.partitions (1), which left
// "start as many consumers as you want" with one consumer at work.
func TestProduceCreatesTopicWithPartitions(t *testing.T) {
	// Like a broker with Kafka's defaults: num.partitions 1, auto-creation on.
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]
	if _, stderr, code := spanpipe(t, nil, "produce", "--brokers", addr, "--traces", "3"); code != 0 {
		t.Fatalf("produce: exit %d: %s", code, stderr)
	}
	td, err := kadm.NewClient(kafkatest.Client(t, []string{addr})).ListTopics(context.Background(), "spanpipe.spans")
	if err != nil || len(td["spanpipe.spans"].Partitions) != 12 {
		t.Fatalf("spanpipe.spans has %d partitions (%v), want 12", len(td["spanpipe.spans"].Partitions), err)
	}
}

// TestOffsetsSkip moves a stopped group past a range with `spanpipe offsets skip`:
// the group is moved, and the skip is a skipped-by-operator drop event with the
// range on the drop topic. With an active member it refuses and changes nothing.
func TestOffsetsSkip(t *testing.T) {
	c := kafkatest.Cluster(t, 2, "spans")
	addr := c.ListenAddrs()[0]
	brokers := []string{addr}
	env := []string{"SPANPIPE_KAFKA_BROKERS=" + addr}
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	produceTo(t, brokers, "spans", 1, 10)
	commitAt(t, adm, "g", "spans", 1, 3)

	skip := func(args ...string) (string, string, int) {
		return spanpipe(t, env, append([]string{"offsets", "skip", "--topic", "spans", "--partition", "1"}, args...)...)
	}
	if _, stderr, code := skip("--group", "g", "--from-offset", "2", "--to-offset", "8"); code != 1 || !strings.Contains(stderr, "group g stands at 3 on spans[1], not --from-offset 2; nothing moved") {
		t.Errorf("skip from the wrong offset: exit %d, %q", code, stderr)
	}
	if _, stderr, code := skip("--group", "g", "--to-offset", "11"); code != 1 || !strings.Contains(stderr, "past the end of spans[1] (10)") {
		t.Errorf("skip past the end: exit %d, %q", code, stderr)
	}
	out, stderr, code := skip("--group", "g", "--from-offset", "3", "--to-offset", "8", "--why", "poison loop")
	if code != 0 || !strings.Contains(out, "skipped spans[1] offsets 3..7 (5 offsets) for group g; recorded as a skipped-by-operator drop event on spanpipe.drops") {
		t.Fatalf("skip: exit %d, %s%s", code, out, stderr)
	}
	if at := committed(t, adm, "g", "spans", 1); at != 8 {
		t.Errorf("group g at %d after the skip, want 8", at)
	}
	recs := kafkatest.ReadAll(t, brokers, "spanpipe.drops", 1, time.Minute)
	if len(recs) != 1 {
		t.Fatalf("%d records on the drop topic, want 1 drop event", len(recs))
	}
	ev, err := dropalerts.ParseEvent(recs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Reason != dropalerts.ReasonSkippedByOperator || ev.Count != 5 || ev.Component != dropalerts.ComponentOperator || ev.Source == nil ||
		*ev.Source != (dropalerts.Source{Topic: "spans", Partition: 1, FirstOffset: 3, LastOffset: 7}) || !strings.Contains(ev.Error, "poison loop") {
		t.Errorf("drop event %+v (source %+v): want skipped-by-operator of spans[1] 3..7, 5 records, with the reason given", ev, ev.Source)
	}

	// A group with a live member: refused, nothing published, nothing moved.
	member := kafkatest.Client(t, brokers, kgo.ConsumerGroup("busy"), kgo.ConsumeTopics("spans"))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			member.PollFetches(ctx)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	kafkatest.Eventually(t, time.Minute, "the member to join group busy", func() bool {
		g, err := adm.DescribeGroups(context.Background(), "busy")
		return err == nil && len(g["busy"].Members) == 1
	})
	before := committed(t, adm, "busy", "spans", 1)
	if _, stderr, code := skip("--group", "busy", "--to-offset", "9"); code != 1 || !strings.Contains(stderr, "group busy has 1 active member") {
		t.Errorf("skip under a live group: exit %d, %q", code, stderr)
	}
	if at := committed(t, adm, "busy", "spans", 1); at != before {
		t.Errorf("group busy moved from %d to %d although the skip was refused", before, at)
	}
	if recs := kafkatest.ReadAll(t, brokers, "spanpipe.drops", 2, 2*time.Second); len(recs) != 1 {
		t.Errorf("%d records on the drop topic after a refused skip, want still 1", len(recs))
	}
}

// TestEnsureTopicsWarnsWhenItWillWait: a consumer that may not create its missing
// topic says at WARN that it waits for it, instead of waiting in silence.
func TestEnsureTopicsWarnsWhenItWillWait(t *testing.T) {
	c := kafkatest.Cluster(t, 1, "present")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tc := app.DefaultConfig().Topics
	tc.Create = false
	if created := ensureTopics(t.Context(), c.ListenAddrs(), []string{"present", "absent"}, tc, nil, log); len(created) != 0 {
		t.Errorf("created %v with topics.create false", created)
	}
	if !strings.Contains(logs.String(), `level=WARN msg="topic does not exist; waiting for it`) || !strings.Contains(logs.String(), "topic=absent") ||
		strings.Contains(logs.String(), "topic=present") {
		t.Errorf("logs:\n%s\nwant one WARN naming the absent topic", logs.String())
	}
}
