package clickhouse_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/internal/demo"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/sinks/clickhouse"
)

// The end-to-end test runs producer → Kafka → consumer group → ClickHouse, against
// the ClickHouse of serverConfig (CLICKHOUSE_DSN, else testcontainers, else the local
// launcher) and the Kafka named by KAFKA_BROKERS, else kfake in-process. It skips,
// saying which servers it tried, when no ClickHouse answers.

// e2eKafka returns the brokers and a spans and a drops topic of the test's own.
func e2eKafka(t *testing.T) (brokers []string, spans, drops string) {
	t.Helper()
	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	spans, drops = "spanpipe.e2e.spans."+suffix, "spanpipe.e2e.drops."+suffix
	if v := strings.TrimSpace(os.Getenv("KAFKA_BROKERS")); v != "" {
		brokers = strings.Split(v, ",")
		adm := kadm.NewClient(kafkatest.Client(t, brokers))
		if _, err := adm.CreateTopics(t.Context(), 4, -1, nil, spans, drops); err != nil {
			t.Fatalf("KAFKA_BROKERS=%s: create topics: %v", v, err)
		}
		t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), spans, drops) })
		return brokers, spans, drops
	}
	return kafkatest.Cluster(t, 4, spans, drops).ListenAddrs(), spans, drops
}

// crashing wraps the ClickHouse writer of a consumer that dies mid-batch: its killAt-th
// Write stores the batch, then (before the pipeline can commit its offsets) kills the
// consumer and fails; from then on every Write fails, as nothing is left to write.
// Before it dies it repeats that stored batch once, as the pipeline's retry after a
// lost acknowledgement would, to check that the deduplication token makes the server
// skip it.
type crashing struct {
	*clickhouse.Writer
	raw    ch.Conn
	db     string
	killAt int
	kill   context.CancelFunc

	writes        int
	dead          atomic.Bool
	before, after uint64 // raw span rows before and after the repeated batch
	countErr      error
	killedRows    int
}

func (c *crashing) rawSpans(ctx context.Context) uint64 {
	var n uint64
	if err := c.raw.QueryRow(ctx, "SELECT count() FROM "+c.db+".spans").Scan(&n); err != nil && c.countErr == nil {
		c.countErr = err
	}
	return n
}

func (c *crashing) Write(ctx context.Context, b *pipeline.Batch) error {
	if c.dead.Load() {
		return errors.New("e2e: consumer killed")
	}
	if err := c.Writer.Write(ctx, b); err != nil {
		return err
	}
	if c.writes++; c.writes < c.killAt {
		return nil
	}
	c.before = c.rawSpans(ctx)
	if err := c.Writer.Write(ctx, b); err != nil {
		return err
	}
	c.after = c.rawSpans(ctx)
	c.killedRows = len(b.Spans)
	c.dead.Store(true)
	c.kill()
	return errors.New("e2e: killed after the write, before the commit")
}

func groupLag(t *testing.T, brokers []string, group string) int64 {
	t.Helper()
	lags, err := kadm.NewClient(kafkatest.Client(t, brokers)).Lag(context.Background(), group)
	if err != nil {
		return -1
	}
	gl, ok := lags[group]
	if !ok || gl.Error() != nil || len(gl.Lag) == 0 {
		return -1
	}
	return gl.Lag.Total()
}

func TestEndToEndConsumerKilledMidBatchStoresEverySpanOnce(t *testing.T) {
	chCfg := serverConfig(t) // skips when no ClickHouse server answers
	brokers, spansTopic, dropsTopic := e2eKafka(t)
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))

	cfg := app.DefaultConfig()
	cfg.Kafka.Brokers, cfg.Kafka.Topics, cfg.Drops.Topic = brokers, []string{spansTopic}, dropsTopic
	cfg.Kafka.Group = "e2e-clickhouse-" + spansTopic
	// Small polls: a poll in progress when the consumer is killed enqueues at most a
	// unit or two. The consumer's enqueue does not watch ctx, so a large poll meeting a
	// dead sink would fill the write queue and block its shutdown for good.
	cfg.Kafka.MaxPollRecords = 100
	cfg.Kafka.ShutdownTimeout = 2 * time.Second // the killed consumer's drain gives up quickly
	cfg.Pipeline.Strategy = pipeline.InsertOnly
	cfg.Pipeline.MaxBatchSize, cfg.Pipeline.MaxBatchWait, cfg.Pipeline.MaxBufferSize = 200, 100*time.Millisecond, 1000
	cfg.Pipeline.OnRetryExhausted = pipeline.OnExhaustedBlock // a dead consumer must not dead-letter
	cfg.Pipeline.RetryDelay, cfg.Pipeline.MaxRetryDelay = 10*time.Millisecond, 50*time.Millisecond
	cfg.Sink.Type, cfg.Sink.ClickHouse = app.SinkClickHouse, chCfg
	raw := rawConn(t, chCfg)

	pcfg := producer.DefaultConfig()
	pcfg.Brokers, pcfg.Topic, pcfg.DropTopic, pcfg.ServiceName = brokers, spansTopic, dropsTopic, "e2e"
	pcfg.OnBufferFull, pcfg.BlockTimeout = producer.OnFullBlock, time.Minute
	p, err := producer.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	g := demo.New(p, demo.Options{MinPayload: 100, MaxPayload: 2000, Seed: 11})
	emitted := 0
	for range 300 {
		emitted += g.Trace()
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	run := func(sink pipeline.Sink, runCtx context.Context) *sync.WaitGroup {
		c, err := app.NewConsumer(cfg, sink, log, reg, nil)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := c.Run(runCtx); err != nil {
				t.Errorf("consumer: %v", err)
			}
		})
		return &wg
	}

	// First consumer: dies right after its third write reached ClickHouse.
	w1, err := clickhouse.Open(ctx, chCfg, clickhouse.WithLogger(log))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = w1.Close() })
	ctx1, kill := context.WithCancel(ctx)
	defer kill()
	crash := &crashing{Writer: w1, raw: raw, db: chCfg.Database, killAt: 3, kill: kill}
	wg := run(crash, ctx1)
	select {
	case <-ctx1.Done():
	case <-time.After(2 * time.Minute):
		t.Fatal("the first consumer never reached its third write")
	}
	wg.Wait()
	if crash.countErr != nil {
		t.Fatalf("count raw span rows: %v", crash.countErr)
	}
	if crash.after != crash.before {
		t.Errorf("raw span rows %d before and %d after repeating a stored batch of %d spans with the same token; want equal (insert_deduplication_token)",
			crash.before, crash.after, crash.killedRows)
	}
	if l := groupLag(t, brokers, cfg.Kafka.Group); l <= 0 {
		t.Errorf("group lag after the kill = %d, want > 0: the killed batch must stay uncommitted", l)
	}
	_ = w1.Close()

	// Second consumer: picks up from the committed offsets; the killed batch is
	// delivered again and collapses with the rows it had stored.
	w2, err := clickhouse.Open(ctx, chCfg, clickhouse.WithLogger(log))
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { _ = w2.Close() })
	ctx2, stop := context.WithCancel(ctx)
	defer stop()
	wg = run(w2, ctx2)
	kafkatest.Eventually(t, 2*time.Minute, "committed offsets to reach the end of the topic", func() bool {
		return groupLag(t, brokers, cfg.Kafka.Group) == 0
	})
	stop()
	wg.Wait()

	final, err := w2.CountSpans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rows, distinct, running uint64
	q := "SELECT count(), uniqExact(trace_id, span_id), countIf(ended_at IS NULL AND NOT is_event) FROM " + chCfg.Database + ".spans"
	if err := raw.QueryRow(ctx, q).Scan(&rows, &distinct, &running); err != nil {
		t.Fatal(err)
	}
	t.Logf("emitted %d spans; killed batch %d spans; raw rows %d, distinct %d, FINAL %d", emitted, crash.killedRows, rows, distinct, final)
	if final != int64(emitted) || distinct != uint64(emitted) {
		t.Errorf("FINAL count %d, distinct keys %d; want both = emitted %d (exactly once)", final, distinct, emitted)
	}
	if rows < distinct {
		t.Errorf("raw rows %d < distinct %d", rows, distinct)
	}
	if running != 0 {
		t.Errorf("%d spans stored as running under insert-only", running)
	}
	if got := kafkatest.ReadAll(t, brokers, dropsTopic, 1, 2*time.Second); len(got) != 0 {
		t.Errorf("%d records on the drop topic, want none", len(got))
	}
	// The materialized view saw the redelivered batch too; FINAL collapses it.
	var rootSpans uint64
	if err := raw.QueryRow(ctx, "SELECT count() FROM "+chCfg.Database+".spans FINAL WHERE parent_span_id = ''").Scan(&rootSpans); err != nil {
		t.Fatal(err)
	}
	roots, err := w2.CountRows(ctx, "trace_roots")
	if err != nil || roots != int64(rootSpans) || roots == 0 {
		t.Errorf("trace_roots FINAL: got %d, %v; want the %d root spans", roots, err, rootSpans)
	}
}
