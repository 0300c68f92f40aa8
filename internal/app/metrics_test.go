package app

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

// TestMetricsEndpoint wires a whole consumer and a producer on one registry, serves it
// over real HTTP and lints every family.
func TestMetricsEndpoint(t *testing.T) {
	c := kafkatest.Cluster(t, 2, "spanpipe.spans", "spanpipe.drops")
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.Sink.DuckDB.Path = t.TempDir() + "/m.duckdb"
	log := slog.New(slog.DiscardHandler)
	reg := NewRegistry()
	sink, err := duckdb.Open(t.Context(), cfg.Sink.DuckDB)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	cons, err := NewConsumer(cfg, sink, log, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	defer func() { cancel(); <-done }()

	pcfg := producer.DefaultConfig()
	pcfg.Brokers, pcfg.ServiceName = c.ListenAddrs(), "m"
	p, err := producer.New(pcfg, producer.WithRegisterer(reg), producer.WithKgoOpts(KafkaOpts(reg, log, "producer")...))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	p.StartSpan(producer.SpanOptions{Name: "x", Type: "agent_run"}).End(producer.EndOptions{})
	p.Flush(t.Context())

	ms, err := ServeMetrics("127.0.0.1:0", false, reg, cons.Probes())
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close(context.Background())

	var body string
	kafkatest.Eventually(t, 30*time.Second, "the span to be counted as written", func() bool {
		body = get(t, "http://"+ms.Addr+"/metrics")
		return strings.Contains(body, `spanpipe_sink_rows_written_total{signal="tracing",sink="duckdb"} 1`)
	})
	// A scrape is no snapshot: the registry collects each family on its own goroutine, so
	// the scrape that first shows the row may predate the write's other metrics, which the
	// writer sets just before it counts the row. Every one of them is set by now.
	body = get(t, "http://"+ms.Addr+"/metrics")
	for _, want := range []string{
		"spanpipe_build_info", "spanpipe_pipeline_records_consumed_total", "spanpipe_dropped_records_total",
		"spanpipe_consumer_lag_records", "spanpipe_producer_records_sent_total", "spanpipe_kafka_",
		"spanpipe_sink_last_success_timestamp_seconds", "spanpipe_consumer_ready 1", "process_resident_memory_bytes", "go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if got := get(t, "http://"+ms.Addr+"/healthz"); !strings.HasPrefix(got, "ok poll-loop:") {
		t.Errorf("/healthz = %q", got)
	}
	problems, err := promlint.NewWithMetricFamilies(mustGather(t, reg)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		// kprom's own names are franz-go's choice; ours must be clean.
		if strings.HasPrefix(p.Metric, "spanpipe_") && !strings.HasPrefix(p.Metric, "spanpipe_kafka_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	_, body := probe(t, url)
	return body
}

func mustGather(t *testing.T, reg interface {
	Gather() ([]*dto.MetricFamily, error)
}) []*dto.MetricFamily {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}
