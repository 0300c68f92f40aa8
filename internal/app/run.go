package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spanpipe/spanpipe/consumer"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kslog"
)

// NewLogger builds the process logger.
func NewLogger(c LogConfig) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	ho := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, ho))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, ho))
}

// NewRegistry returns a registry with the Go, process and build-info collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b := BuildInfo()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "spanpipe_build_info",
		Help:        "Build information; always 1.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion},
	}, func() float64 { return 1 }))
	return reg
}

// KafkaLogger is the logger for franz-go clients: c with the level c.KafkaLevel (warn
// when empty), so that the client's INFO lines do not drown spanpipe's own.
func KafkaLogger(c LogConfig) *slog.Logger {
	c.Level = c.KafkaLevel
	if c.Level == "" {
		c.Level = "warn"
	}
	return NewLogger(c)
}

// KafkaOpts returns franz-go options that export the client's metrics (kprom, with a
// "client" label naming its role, since every client needs its own kprom instance) and
// bridge its logs into slog: log is the clients' logger (KafkaLogger).
func KafkaOpts(reg prometheus.Registerer, log *slog.Logger, role string) []kgo.Opt {
	kp := kprom.NewMetrics("spanpipe", kprom.Registerer(reg), kprom.Subsystem("kafka"),
		kprom.WithStaticLabel(prometheus.Labels{"client": role}))
	return []kgo.Opt{kgo.WithHooks(kp), kgo.WithLogger(kslog.New(log.With("component", "kafka", "client", role)))}
}

// MetricsServer serves /metrics, /livez, /readyz and /healthz.
type MetricsServer struct {
	Addr string // the address actually bound, useful with port 0
	srv  *http.Server
	wg   sync.WaitGroup
}

// ServeMetrics starts the HTTP server on addr; probes answers /livez and /readyz
// (nil: both always pass), and /healthz is /livez, as it was before /livez existed.
// If addr is taken and fallback is true, a free port is used instead.
func ServeMetrics(addr string, fallback bool, reg *prometheus.Registry, probes Probes) (*MetricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil && fallback {
		host, _, _ := net.SplitHostPort(addr)
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if probes == nil {
		probes = noProbes{}
	}
	live := healthHandler(probes.Live)
	mux.Handle("/livez", live)
	mux.Handle("/healthz", live)
	mux.Handle("/readyz", healthHandler(probes.Ready))
	s := &MetricsServer{Addr: ln.Addr().String(), srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	s.wg.Go(func() { _ = s.srv.Serve(ln) })
	return s, nil
}

// Close stops the server and waits for it.
func (s *MetricsServer) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Consumer is a ready-to-run consume process: batcher, writer, drop publisher and
// group member around a sink.
type Consumer struct {
	Batcher *pipeline.Batcher
	Member  *consumer.Consumer
	writer  *pipeline.Writer
	sink    pipeline.Sink
	drops   *trackedDrops
	health  *health
	log     *slog.Logger
}

// Probes are the consumer's /livez and /readyz checks.
func (c *Consumer) Probes() Probes { return c.health }

// NewConsumer wires the consume path around sink. kopts are extra client options
// (TLS, SASL) for both of its Kafka clients.
func NewConsumer(cfg Config, sink pipeline.Sink, log *slog.Logger, reg prometheus.Registerer, kopts []kgo.Opt) (*Consumer, error) {
	host, _ := os.Hostname()
	instance := cfg.Kafka.Group + "/" + host + "/" + fmt.Sprint(os.Getpid())
	pub, err := dropalerts.New(cfg.Drops, append([]kgo.Opt{kgo.SeedBrokers(cfg.Kafka.Brokers...), kgo.ClientID(cfg.Kafka.ClientID + "-drops")}, append(KafkaOpts(reg, KafkaLogger(cfg.Log), "drops"), kopts...)...),
		dropalerts.WithLogger(log), dropalerts.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	drops := &trackedDrops{Publisher: pub}
	popts := []pipeline.Option{pipeline.WithLogger(log), pipeline.WithRegisterer(reg), pipeline.WithInstance(instance)}
	b, err := pipeline.NewBatcher(cfg.Pipeline, sink.Capabilities(), popts...)
	if err != nil {
		_ = drops.Close(context.Background())
		return nil, err
	}
	w, err := pipeline.NewWriter(cfg.Pipeline, sink, drops, popts...)
	if err != nil {
		_ = drops.Close(context.Background())
		return nil, err
	}
	kcfg := cfg.Kafka
	kcfg.FetchMaxBytes = FetchMaxBytes(cfg, sink.Capabilities())
	member, err := consumer.New(kcfg, b, w, drops, consumer.WithLogger(log), consumer.WithRegisterer(reg),
		consumer.WithDropSource(instance, sink.Name()), consumer.WithKgoOpts(append(KafkaOpts(reg, KafkaLogger(cfg.Log), "consumer"), kopts...)...))
	if err != nil {
		_ = drops.Close(context.Background())
		return nil, err
	}
	log.Info("pipeline", "strategy", b.Strategy(), "sink", sink.Name(), "max_buffer_size", b.BufferSize(), "fetch_max_bytes", kcfg.FetchMaxBytes)
	c := &Consumer{Batcher: b, Member: member, writer: w, drops: drops, log: log}
	c.sink = sink
	c.health = &health{cfg: cfg.Metrics, c: c, start: time.Now(), now: time.Now}
	registerReady(reg, c.health)
	return c, nil
}

// Run consumes until ctx ends, drains, commits and leaves the group, then flushes
// the drop publisher.
func (c *Consumer) Run(ctx context.Context) error {
	err := c.Member.Run(ctx)
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cerr := c.drops.Close(fctx); cerr != nil {
		c.log.Error("closing drop publisher", "err", cerr)
	}
	return err
}

// goMemoryHeadroom is what the derived Go memory limit allows beyond the buffered
// records and fetches: decoded spans (which alias the records), the Kafka clients,
// metrics and the sink's Go side.
const goMemoryHeadroom = 32 << 20

// inProcessFetchMaxBytes is the fetch size derived for a sink that keeps its data in
// this process, where the fetched records' memory adds up with the sink's in one
// RSS. At the RSS peak of `spanpipe bench --sink duckdb` (200k 1 KB spans, GOGC 50,
// 3 runs each, alternated) it held the Go side to 35–38 MB against 41–49 MB with 4
// MiB; the drain was 76–89% of DuckDB's append ceiling against 78–96%. A remote
// sink keeps 4 MiB: the null drain, with nothing but fetching and decoding, lost
// ~7% of its rate with 2 MiB.
const inProcessFetchMaxBytes int32 = 2 << 20

// FetchMaxBytes is kafka.fetch_max_bytes, or when it is 0 the size derived for a
// sink of caps: smaller for one whose memory shares the process's RSS with the
// fetched records, never below kafka.fetch_max_partition_bytes.
func FetchMaxBytes(cfg Config, caps pipeline.Capabilities) int32 {
	switch {
	case cfg.Kafka.FetchMaxBytes > 0:
		return cfg.Kafka.FetchMaxBytes
	case caps.InProcess:
		return max(inProcessFetchMaxBytes, cfg.Kafka.FetchMaxPartitionBytes)
	default:
		return consumer.DefaultFetchMaxBytes
	}
}

// GoGCPercent is the Go collector's target cfg asks for with a sink of caps (see
// pipeline.go_gc_percent).
func GoGCPercent(cfg Config, caps pipeline.Capabilities) int {
	switch p := cfg.Pipeline.GoGCPercent; {
	case p != 0:
		return p
	case caps.InProcess:
		return 50
	default:
		return 100
	}
}

// GoMemoryLimit is the Go runtime's soft memory limit cfg asks for with a sink of
// caps (see pipeline.go_memory_limit_bytes): 0 when none.
func GoMemoryLimit(cfg Config, caps pipeline.Capabilities) int64 {
	switch l := cfg.Pipeline.GoMemoryLimitBytes; {
	case l > 0:
		return l
	case l < 0:
		return 0
	}
	l := cfg.Pipeline.MaxBufferBytes + 4*int64(FetchMaxBytes(cfg, caps)) + goMemoryHeadroom
	if cfg.Sink.Type == SinkClickHouse {
		// The insert being built holds its columns in Go, up to max_bytes_per_insert:
		// without them the limit binds on a full insert and the collector runs
		// continuously (the bench's ClickHouse drain peaked at the limit, p99 6.0 s).
		l += cfg.Sink.ClickHouse.MaxBytesPerInsert
	}
	return l
}

// ApplyGoRuntime sets the process's Go memory limit to [GoMemoryLimit] and the
// collector's target to [GoGCPercent] for a sink of caps, except where the GOMEMLIMIT
// or GOGC environment variable set one (the runtime read them at start), and logs
// what is in force. Call it once the sink is open: both depend on it.
func ApplyGoRuntime(cfg Config, caps pipeline.Capabilities, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		log.Info("Go memory limit from GOMEMLIMIT; pipeline.go_memory_limit_bytes ignored")
	} else if l := GoMemoryLimit(cfg, caps); l > 0 {
		debug.SetMemoryLimit(l)
	} else {
		debug.SetMemoryLimit(math.MaxInt64)
	}
	if os.Getenv("GOGC") != "" {
		log.Info("Go GC target from GOGC; pipeline.go_gc_percent ignored")
	} else {
		debug.SetGCPercent(GoGCPercent(cfg, caps))
	}
	// Read back rather than derived, so that the line shows what the environment set
	// too; the runtime reports an off target as the largest uint64, logged as -1.
	m := []metrics.Sample{{Name: "/gc/gomemlimit:bytes"}, {Name: "/gc/gogc:percent"}}
	metrics.Read(m)
	log.Info("Go runtime", "memory_limit_bytes", int64(m[0].Value.Uint64()), "gc_percent", int64(m[1].Value.Uint64()))
}
