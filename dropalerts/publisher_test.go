package dropalerts_test

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// createTopic creates topic on the cluster with the given configs, as an operator
// (or a broker's auto-creation) would before spanpipe starts.
func createTopic(t *testing.T, brokers []string, topic string, partitions int32, configs map[string]string) {
	t.Helper()
	cfgs := map[string]*string{}
	for k, v := range configs {
		cfgs[k] = kadm.StringPtr(v)
	}
	resp, err := kadm.NewClient(kafkatest.Client(t, brokers)).CreateTopic(t.Context(), partitions, 1, cfgs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
}

func topicConfig(t *testing.T, brokers []string, topic, key string) string {
	t.Helper()
	rcs, err := kadm.NewClient(kafkatest.Client(t, brokers)).DescribeTopicConfigs(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Configs {
		if c.Key == key && c.Value != nil {
			return *c.Value
		}
	}
	return ""
}

func emptyCluster(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func incompressible(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := crand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPublishFitsTheDropTopicsLimit is defect 2 of issue 10: a drop topic that
// exists with max.message.bytes = 1 MiB (a broker's default), and a batch of 300
// incompressible 8 KB records dead-lettered at once. Before, the publisher wrote them
// as one 2.4 MB batch, Kafka answered MESSAGE_TOO_LARGE, and the caller retried that
// forever: the partition was blocked. Now every record lands, in order; a 3 MiB
// record is kept truncated with headers saying so (and replay refuses it); each dead
// letter carries its own error when it has one.
func TestPublishFitsTheDropTopicsLimit(t *testing.T) {
	brokers := emptyCluster(t)
	createTopic(t, brokers, "spanpipe.drops", 3, map[string]string{"max.message.bytes": strconv.Itoa(1 << 20)})
	reg := prometheus.NewRegistry()
	p, err := dropalerts.New(dropalerts.DefaultConfig(), []kgo.Opt{kgo.SeedBrokers(brokers...)}, dropalerts.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())

	const n = 300
	var letters []dropalerts.DeadLetter
	for i := range n {
		letters = append(letters, dropalerts.DeadLetter{Attempts: 5, Record: &kgo.Record{
			Topic: "spanpipe.spans", Partition: 2, Offset: int64(i), Key: []byte("trace-" + strconv.Itoa(i)), Value: incompressible(t, 8000),
		}})
	}
	letters[7].Err = errors.New("invalid character 'h' in literal true")
	big := &kgo.Record{Topic: "spanpipe.spans", Partition: 2, Offset: n, Key: []byte("trace-big"), Value: incompressible(t, 3<<20),
		Headers: []kgo.RecordHeader{{Key: "spanpipe-codec", Value: []byte("json")}}}
	letters = append(letters, dropalerts.DeadLetter{Record: big, Attempts: 5})
	ev := dropalerts.Event{Signal: "tracing", Reason: dropalerts.ReasonSinkRejected, Count: len(letters), Component: "consumer", Error: "batch rejected"}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := p.Publish(ctx, ev, letters); err != nil {
		t.Fatalf("publish %d dead letters of 8 KB to a 1 MiB topic: %v", n, err)
	}

	recs := kafkatest.ReadAll(t, brokers, "spanpipe.drops", len(letters)+1, 30*time.Second)
	if len(recs) != len(letters)+1 {
		t.Fatalf("read %d records, want %d dead letters and a drop event", len(recs), len(letters)+1)
	}
	byOffset := map[int64]*kgo.Record{}
	events := 0
	for _, r := range recs {
		if dropalerts.Kind(r) == dropalerts.KindDropEvent {
			events++
			continue
		}
		d, err := dropalerts.ParseDeadLetter(r.Headers)
		if err != nil {
			t.Fatal(err)
		}
		byOffset[d.SourceOffset] = r
	}
	if events != 1 || len(byOffset) != len(letters) {
		t.Fatalf("%d drop events and %d distinct dead letters, want 1 and %d", events, len(byOffset), len(letters))
	}
	for i := range n {
		r := byOffset[int64(i)]
		d, _ := dropalerts.ParseDeadLetter(r.Headers)
		wantErr := "batch rejected"
		if i == 7 {
			wantErr = "invalid character 'h' in literal true"
		}
		if !bytes.Equal(r.Value, letters[i].Record.Value) || d.Truncated || d.Error != wantErr {
			t.Fatalf("dead letter %d: %d bytes (want 8000 intact), truncated %v, error %q (want %q)", i, len(r.Value), d.Truncated, d.Error, wantErr)
		}
	}
	r := byOffset[n]
	_, d, err := dropalerts.OriginalRecord(r)
	if !errors.Is(err, dropalerts.ErrTruncated) || d == nil || !d.Truncated || d.OriginalSize != 3<<20 || len(r.Value) >= 1<<20 ||
		!bytes.HasPrefix(big.Value, r.Value) || len(r.Value) < 1<<19 {
		t.Fatalf("3 MiB dead letter: %d bytes kept, info %+v, OriginalRecord err %v; want a prefix of at least 512 KiB, truncated=true, original size %d, ErrTruncated",
			len(r.Value), d, err, 3<<20)
	}
	if got := sum(t, reg, "spanpipe_dropalerts_truncated_dead_letters_total"); got != 1 {
		t.Fatalf("truncated counter = %v, want 1", got)
	}
	if got := sum(t, reg, "spanpipe_dropalerts_dead_letters_total"); got != n+1 {
		t.Fatalf("dead letters counter = %v, want %d", got, n+1)
	}
}

// TestPublishFollowsALoweredLimit: the topic's max.message.bytes is lowered while the
// publisher runs; the next publish is rejected as too large once, re-reads the limit
// and goes through in smaller writes instead of failing for ever.
func TestPublishFollowsALoweredLimit(t *testing.T) {
	brokers := emptyCluster(t)
	p := kafkatest.Publisher(t, brokers)
	if err := p.Prepare(t.Context()); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	resp, err := adm.AlterTopicConfigs(t.Context(), []kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr("65536")}}, "spanpipe.drops")
	if err == nil {
		_, err = resp.On("spanpipe.drops", nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	var letters []dropalerts.DeadLetter
	for i := range 40 {
		letters = append(letters, dropalerts.DeadLetter{Record: &kgo.Record{Topic: "spanpipe.spans", Offset: int64(i), Key: []byte("k"), Value: incompressible(t, 8000)}})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := p.Publish(ctx, dropalerts.Event{Reason: dropalerts.ReasonDecodeError, Count: 40, Component: "consumer"}, letters); err != nil {
		t.Fatalf("publish after the limit was lowered to 64 KiB: %v", err)
	}
	if got := len(kafkatest.ReadAll(t, brokers, "spanpipe.drops", 41, 30*time.Second)); got < 41 {
		t.Fatalf("read %d records, want at least 41", got)
	}
}

// TestPublisherCreatesTopicsWithItsConfig: missing drop and dead-letter topics are
// created with the drops.* settings, not left to auto-creation's broker defaults.
func TestPublisherCreatesTopicsWithItsConfig(t *testing.T) {
	brokers := emptyCluster(t)
	cfg := dropalerts.DefaultConfig()
	cfg.DeadLetterTopic = "spanpipe.deadletters"
	cfg.Partitions = 2
	cfg.MaxMessageBytes = 2 << 20
	cfg.Retention = 48 * time.Hour
	cfg.Compression = "zstd"
	p, err := dropalerts.New(cfg, []kgo.Opt{kgo.SeedBrokers(brokers...)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := p.Prepare(t.Context()); err != nil {
		t.Fatal(err)
	}
	details, err := kadm.NewClient(kafkatest.Client(t, brokers)).ListTopics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"spanpipe.drops", "spanpipe.deadletters"} {
		if d, ok := details[topic]; !ok || len(d.Partitions) != 2 {
			t.Errorf("%s: exists %v with %d partitions, want 2", topic, ok, len(d.Partitions))
		}
		for key, want := range map[string]string{"max.message.bytes": "2097152", "retention.ms": "172800000", "compression.type": "zstd"} {
			if got := topicConfig(t, brokers, topic, key); got != want {
				t.Errorf("%s %s = %q, want %q", topic, key, got, want)
			}
		}
	}
}

// TestPublishedCompression: drops.compression picks the codec on the wire (gzip by
// default, which kafkajs reads without a plugin).
func TestPublishedCompression(t *testing.T) {
	for _, codec := range []string{"", "none", "snappy"} {
		t.Run("codec="+codec, func(t *testing.T) {
			brokers := emptyCluster(t)
			cfg := dropalerts.DefaultConfig()
			if codec != "" {
				cfg.Compression = codec
			}
			hook := &batchCodecs{}
			p, err := dropalerts.New(cfg, []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.WithHooks(hook)})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			letters := []dropalerts.DeadLetter{{Record: &kgo.Record{Topic: "spanpipe.spans", Value: bytes.Repeat([]byte("compress me "), 100)}}}
			if err := p.Publish(t.Context(), dropalerts.Event{Reason: dropalerts.ReasonDecodeError, Count: 1, Component: "consumer"}, letters); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"": "gzip", "none": "none", "snappy": "snappy"}[codec]
			if seen := hook.codecs(); len(seen) == 0 || seen[0] != want {
				t.Fatalf("batch codecs %v, want %s", seen, want)
			}
		})
	}
	if err := (dropalerts.Config{Topic: "t", MaxRecordBytes: 1, Compression: "brotli", RetryDelay: 1, MaxRetryDelay: 1}).Validate(); err == nil {
		t.Fatal("drops.compression brotli accepted")
	}
}

// batchCodecs records the codec of every produced batch (called from the client's
// goroutines).
type batchCodecs struct {
	mu   sync.Mutex
	seen []string
}

func (h *batchCodecs) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, map[uint8]string{0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}[m.CompressionType])
}

func (h *batchCodecs) codecs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.seen)
}

func TestConfigValidateNamesEveryKey(t *testing.T) {
	cfg := dropalerts.Config{Topic: "bad topic", DeadLetterTopic: "x/y", Compression: "brotli", CreateTopics: true, ReplicationFactor: 0, RetryDelay: time.Second}
	err := cfg.Validate()
	for _, key := range []string{"drops.topic", "drops.dead_letter_topic", "drops.max_record_bytes", "drops.compression", "drops.partitions",
		"drops.replication_factor", "drops.max_message_bytes", "drops.retention", "drops.max_retry_delay"} {
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(key)) {
			t.Errorf("Validate() = %v, want it to name %s", err, key)
		}
	}
}

// sum adds up every sample of the counter name.
func sum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

// TestPublishReturnsPermanentErrorsAtOnce: a drop topic this principal may not write
// is not retried for ever inside Publish; the error says it is permanent.
func TestPublishReturnsPermanentErrorsAtOnce(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "spanpipe.drops"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kafkatest.RefuseProduce(c, kerr.TopicAuthorizationFailed.Code, func(*kmsg.ProduceRequest) bool { return true })
	reg := prometheus.NewRegistry()
	p, err := dropalerts.New(dropalerts.DefaultConfig(), []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, dropalerts.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err = p.Publish(ctx, dropalerts.Event{Reason: dropalerts.ReasonDecodeError, Count: 1, Component: "consumer"},
		[]dropalerts.DeadLetter{{Record: &kgo.Record{Topic: "spanpipe.spans", Value: []byte("x")}}})
	if !errors.Is(err, dropalerts.ErrPermanent) || !errors.Is(err, kerr.TopicAuthorizationFailed) || ctx.Err() != nil {
		t.Fatalf("publish to a topic we may not write: %v (ctx %v), want ErrPermanent wrapping TOPIC_AUTHORIZATION_FAILED at once", err, ctx.Err())
	}
	if got := sum(t, reg, "spanpipe_dropalerts_publish_failures_total"); got != 1 {
		t.Fatalf("publish failures = %v, want 1", got)
	}
}
