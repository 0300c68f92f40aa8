// Package bench is `spanpipe bench`: an end-to-end benchmark against a real broker.
// It produces a fixed workload through the producer library, drains it with K
// consumers into a sink, measures a raw franz-go consumer on the same topic as the
// ceiling, and measures produce→stored latency at a steady rate below the maximum.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/internal/chlocal"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/clickhouse"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Options describe one benchmark run.
type Options struct {
	Brokers    []string
	Spans      int    // distinct spans in the drain workload
	PayloadAvg int    // average input+output bytes per span
	Lifecycle  string // "insert-only": one ended snapshot per span; "updates": started+updated+ended
	Consumers  int
	Sink       string // duckdb, clickhouse or null
	DSN        string // ClickHouse, for Sink "clickhouse"; empty starts deploy/local/clickhouse.sh
	Strategy   pipeline.Strategy
	Partitions int
	DBDir      string
	// LatencySeconds is how long the steady-rate latency phase runs (0 skips it).
	LatencySeconds int
	Progress       io.Writer
	// CPUProfile, when set, receives a CPU profile of the drain phase alone.
	CPUProfile io.Writer
}

// Result is what a run measured.
type Result struct {
	Spans              int     `json:"spans"`
	Records            int     `json:"records"`
	PayloadAvgBytes    int     `json:"payload_avg_bytes"`
	Lifecycle          string  `json:"lifecycle"`
	Sink               string  `json:"sink"`
	Strategy           string  `json:"strategy"`
	Consumers          int     `json:"consumers"`
	Partitions         int     `json:"partitions"`
	ProduceSpansPerSec float64 `json:"produce_spans_per_s"`
	ProduceMBPerSec    float64 `json:"produce_mb_per_s"`
	DrainSpansPerSec   float64 `json:"drain_spans_per_s"`
	DrainRecordsPerSec float64 `json:"drain_records_per_s"`
	RawRecordsPerSec   float64 `json:"raw_baseline_records_per_s"`
	RatioToRaw         float64 `json:"drain_to_raw_ratio"`
	CPUSecondsPer1k    float64 `json:"consumer_cpu_seconds_per_1k_spans"`
	PeakRSSMB          float64 `json:"peak_rss_mb"`
	// ServerCPUSecondsPer1k is the CPU the ClickHouse server used during the drain,
	// when the bench started it (the local launcher), per 1k spans.
	ServerCPUSecondsPer1k float64 `json:"clickhouse_server_cpu_seconds_per_1k_spans,omitempty"`
	RowsPerSpan           float64 `json:"rows_written_per_span"`
	Stored                int64   `json:"spans_stored"`
	LatencyRate           float64 `json:"latency_phase_spans_per_s"`
	LatencyP50ms          float64 `json:"latency_p50_ms"`
	LatencyP95ms          float64 `json:"latency_p95_ms"`
	LatencyP99ms          float64 `json:"latency_p99_ms"`
}

// Run executes the benchmark.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	res := &Result{Spans: o.Spans, PayloadAvgBytes: o.PayloadAvg, Lifecycle: o.Lifecycle, Sink: o.Sink,
		Consumers: o.Consumers, Partitions: o.Partitions}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	topic, drops := "bench.spans."+run, "bench.drops."+run
	var server *chlocal.Server
	if o.Sink == "clickhouse" && o.DSN == "" {
		srv, dsn, stop, err := startLocalClickHouse(ctx, o.Progress)
		if err != nil {
			return nil, err
		}
		defer stop()
		server, o.DSN = srv, dsn
	}
	adm, err := kgo.NewClient(kgo.SeedBrokers(o.Brokers...))
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, int32(o.Partitions), -1, nil, topic); err != nil {
		return nil, fmt.Errorf("bench: create topic %s: %w", topic, err)
	}

	// Phase 1: produce everything first, so the drain measures the consumer alone and
	// the producers are "10x ahead of the sink" (all of it ahead).
	records, bytes, dur, err := produce(ctx, o, topic, o.Spans, 0, nil)
	if err != nil {
		return nil, err
	}
	res.Records = records
	res.ProduceSpansPerSec = float64(o.Spans) / dur.Seconds()
	res.ProduceMBPerSec = float64(bytes) / dur.Seconds() / 1e6
	fmt.Fprintf(o.Progress, "bench: produced %d spans (%d records, %.1f MB) in %s: %.0f spans/s\n",
		o.Spans, records, float64(bytes)/1e6, dur.Round(time.Millisecond), res.ProduceSpansPerSec)

	// Phase 2: the raw baseline, a bare consumer that fetches and discards.
	rawDur, err := rawDrain(ctx, o.Brokers, topic, records)
	if err != nil {
		return nil, err
	}
	res.RawRecordsPerSec = float64(records) / rawDur.Seconds()
	fmt.Fprintf(o.Progress, "bench: raw baseline read %d records in %s: %.0f records/s\n", records, rawDur.Round(time.Millisecond), res.RawRecordsPerSec)

	// Phase 3: drain with spanpipe consumers. What the producer and the raw consumer
	// allocated goes back to the OS first, so that peak RSS is the consumers'.
	runtime.GC()
	debug.FreeOSMemory()
	rss0 := readRSS()
	if o.CPUProfile != nil {
		if err := pprof.StartCPUProfile(o.CPUProfile); err != nil {
			return nil, fmt.Errorf("bench: start CPU profile: %w", err)
		}
	}
	cs, err := startConsumers(ctx, o, topic, drops, run)
	if err != nil {
		return nil, err
	}
	defer cs.stop()
	start := time.Now()
	cpu0 := cpuSeconds()
	srvCPU0 := serverCPU(server)
	var peakRSS atomic.Int64
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sw sync.WaitGroup
	sw.Go(func() { sampleRSS(sampleCtx, &peakRSS) })
	if err := waitDrained(ctx, adm, cs.group, o.Progress, records); err != nil {
		stopSampling()
		return nil, err
	}
	drain := time.Since(start)
	cpu := cpuSeconds() - cpu0
	if o.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	stopSampling()
	sw.Wait()
	res.DrainSpansPerSec = float64(o.Spans) / drain.Seconds()
	res.DrainRecordsPerSec = float64(records) / drain.Seconds()
	res.RatioToRaw = res.DrainRecordsPerSec / res.RawRecordsPerSec
	res.CPUSecondsPer1k = cpu / float64(o.Spans) * 1000
	res.ServerCPUSecondsPer1k = (serverCPU(server) - srvCPU0) / float64(o.Spans) * 1000
	res.PeakRSSMB = float64(peakRSS.Load()) / (1 << 20)
	res.RowsPerSpan = cs.rows() / float64(o.Spans)
	res.Strategy = string(cs.strategy)
	res.Stored = cs.stored(ctx)
	fmt.Fprintf(o.Progress, "bench: drained in %s: %.0f spans/s, %.3f CPU s per 1k spans, peak RSS %.0f MB (%.0f MB before the consumers started)\n",
		drain.Round(time.Millisecond), res.DrainSpansPerSec, res.CPUSecondsPer1k, res.PeakRSSMB, float64(rss0)/(1<<20))
	if server != nil {
		fmt.Fprintf(o.Progress, "bench: the ClickHouse server used %.3f CPU s per 1k spans\n", res.ServerCPUSecondsPer1k)
	}

	// Phase 4: latency at half the measured drain rate.
	if o.LatencySeconds > 0 {
		rate := res.DrainSpansPerSec / 2
		n := int(rate * float64(o.LatencySeconds))
		cs.lat.reset()
		if _, _, _, err := produce(ctx, o, topic, n, rate, cs.lat); err != nil {
			return nil, err
		}
		if err := waitDrained(ctx, adm, cs.group, io.Discard, 0); err != nil {
			return nil, err
		}
		res.LatencyRate = rate
		res.LatencyP50ms, res.LatencyP95ms, res.LatencyP99ms = cs.lat.percentiles()
		fmt.Fprintf(o.Progress, "bench: latency at %.0f spans/s: p50 %.0f ms, p95 %.0f ms, p99 %.0f ms\n",
			rate, res.LatencyP50ms, res.LatencyP95ms, res.LatencyP99ms)
	}
	return res, nil
}

// startLocalClickHouse starts a throw-away server with deploy/local/clickhouse.sh and
// returns it, the DSN of a database of its own, and a function that stops it and
// deletes its data.
func startLocalClickHouse(ctx context.Context, progress io.Writer) (*chlocal.Server, string, func(), error) {
	dir, err := os.MkdirTemp("", "spanpipe-bench-clickhouse-")
	if err != nil {
		return nil, "", nil, err
	}
	fmt.Fprintf(progress, "bench: no --dsn: starting a local ClickHouse server (deploy/local/clickhouse.sh, data %s)\n", dir)
	srv, err := chlocal.Start(ctx, dir)
	stop := func() {
		if srv != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			_ = srv.Stop(sctx)
			cancel()
		}
		_ = os.RemoveAll(dir)
	}
	if err != nil {
		stop()
		return nil, "", nil, fmt.Errorf("bench: --sink clickhouse without --dsn: %w", err)
	}
	return srv, strings.TrimSuffix(srv.DSN, "/default") + "/spanpipe_bench", stop, nil
}

// serverCPU is the CPU seconds srv has used so far; 0 without a server of ours.
func serverCPU(srv *chlocal.Server) float64 {
	if srv == nil {
		return 0
	}
	s, _ := srv.CPUSeconds()
	return s
}

// textGen writes prose-like payloads that compress about as well as LLM text (zstd
// 3-4x): words drawn from a vocabulary of 4096 random ones. A repeated phrase would
// compress 20x and understate what a consumer decompresses and holds per fetch.
type textGen struct {
	rnd   *rand.Rand
	words []string
	b     strings.Builder
}

func newTextGen(rnd *rand.Rand) *textGen {
	g := &textGen{rnd: rnd}
	const letters = "etaoinshrdlcumwfgypbvkjxqz"
	for range 4096 {
		w := make([]byte, 2+rnd.IntN(9))
		for i := range w {
			// Skewed towards frequent letters, as in English.
			w[i] = letters[min(rnd.IntN(len(letters)), rnd.IntN(len(letters)))]
		}
		g.words = append(g.words, string(w))
	}
	return g
}

func (g *textGen) next(n int) string {
	g.b.Reset()
	g.b.Grow(n + 16)
	for g.b.Len() < n {
		g.b.WriteString(g.words[g.rnd.IntN(len(g.words))])
		g.b.WriteByte(' ')
	}
	return g.b.String()[:n]
}

// produce emits n spans (each with its lifecycle) at rate spans/s (0 = unlimited).
func produce(ctx context.Context, o Options, topic string, n int, rate float64, lat *latencies) (records int, bytes int64, dur time.Duration, err error) {
	cfg := producer.DefaultConfig()
	cfg.Brokers, cfg.Topic, cfg.ServiceName = o.Brokers, topic, "bench"
	cfg.OnBufferFull, cfg.BlockTimeout = producer.OnFullBlock, time.Minute
	cfg.Redact.Disabled = true // measured separately (producer benchmarks)
	var failed atomic.Int64
	var firstDrop sync.Once
	var firstErr error
	p, err := producer.New(cfg, producer.WithOnDrop(func(d producer.Drop) {
		failed.Add(1)
		firstDrop.Do(func() { firstErr = fmt.Errorf("%s: %w", d.Reason, d.Err) })
	}))
	if err != nil {
		return 0, 0, 0, err
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	text := newTextGen(rnd)
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		// Sizes spread from 0.25x to 1.75x the average, like mixed tool and LLM spans.
		size := o.PayloadAvg/4 + rnd.IntN(o.PayloadAvg*3/2+1)
		in, out := size/3, size-size/3
		now := time.Now()
		s := schema.Span{
			TraceID: fmt.Sprintf("%016x%016x", rnd.Uint64(), uint64(i)/5), SpanID: fmt.Sprintf("%016x", rnd.Uint64()),
			Name: "llm", Type: schema.ModelGeneration, StartTime: now,
			Attributes: producer.JSON(map[string]any{"model": "gpt-4o-mini", "usage": map[string]int{"inputTokens": size}}),
			Input:      producer.JSON(text.next(in)),
		}
		emit := func(t schema.EventType, v uint64) {
			c := s
			c.Version = v
			if t == schema.SpanEnded {
				c.EndTime, c.Output = time.Now(), producer.JSON(text.next(out))
			}
			if err := p.Emit(&schema.Event{Type: t, Span: &c}); err == nil {
				records++
				bytes += int64(in + out)
			}
		}
		if o.Lifecycle == "updates" {
			emit(schema.SpanStarted, 1)
			emit(schema.SpanUpdated, 2)
			emit(schema.SpanEnded, 3)
		} else {
			emit(schema.SpanEnded, 1)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := p.Close(fctx); err != nil {
		return 0, 0, 0, err
	}
	if f := failed.Load(); f > 0 {
		return 0, 0, 0, fmt.Errorf("bench: producer dropped %d records (first: %v)", f, firstErr)
	}
	return records, bytes, time.Since(start), ctx.Err()
}

func rawDrain(ctx context.Context, brokers []string, topic string, want int) (time.Duration, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(32<<20))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	start := time.Now()
	got := 0
	for got < want {
		fs := cl.PollRecords(ctx, 10000)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		got += fs.NumRecords()
	}
	return time.Since(start), nil
}

type storedCounter interface {
	CountSpans(ctx context.Context) (int64, error)
}

type consumers struct {
	group    string
	strategy pipeline.Strategy
	sinks    []storedCounter
	closers  []func() error
	reg      *prometheus.Registry
	lat      *latencies
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func startConsumers(ctx context.Context, o Options, topic, drops, run string) (*consumers, error) {
	cs := &consumers{group: "bench-" + run, reg: prometheus.NewRegistry(), lat: &latencies{}}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cs.cancel = cancel
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for i := range o.Consumers {
		cfg := app.DefaultConfig()
		cfg.Kafka.Brokers, cfg.Kafka.Topics, cfg.Kafka.Group = o.Brokers, []string{topic}, cs.group
		cfg.Drops.Topic = drops
		cfg.Pipeline.Strategy = o.Strategy
		var sink pipeline.Sink
		switch o.Sink {
		case "null":
			sink = nullSink{}
		case "clickhouse":
			ccfg := clickhouse.DefaultConfig()
			ccfg.DSN = o.DSN
			w, err := clickhouse.Open(ctx, ccfg)
			if err != nil {
				cs.stop()
				return nil, err
			}
			// One ClickHouse database holds every consumer's rows: count it once.
			if i == 0 {
				cs.sinks = append(cs.sinks, w)
			}
			cs.closers = append(cs.closers, w.Close)
			sink = w
		default:
			dcfg := duckdb.DefaultConfig()
			dcfg.Path = filepath.Join(o.DBDir, fmt.Sprintf("bench-%s-%d.duckdb", run, i))
			w, err := duckdb.Open(ctx, dcfg)
			if err != nil {
				cs.stop()
				return nil, err
			}
			cs.sinks = append(cs.sinks, w)
			cs.closers = append(cs.closers, w.Close)
			sink = w
		}
		c, err := app.NewConsumer(cfg, timed{sink, cs.lat}, log, cs.reg, nil)
		if err != nil {
			cs.stop()
			return nil, err
		}
		cs.strategy = c.Batcher.Strategy()
		cs.wg.Go(func() { _ = c.Run(cctx) })
	}
	return cs, nil
}

func (cs *consumers) stop() {
	cs.cancel()
	cs.wg.Wait()
	for _, c := range cs.closers {
		_ = c()
	}
	cs.sinks, cs.closers = nil, nil
}

func (cs *consumers) rows() float64 {
	mfs, _ := cs.reg.Gather()
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "spanpipe_sink_rows_written_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func (cs *consumers) stored(ctx context.Context) int64 {
	if len(cs.sinks) == 0 {
		return -1 // the null sink stores nothing
	}
	var n int64
	for _, s := range cs.sinks {
		c, err := s.CountSpans(ctx)
		if err != nil {
			return -1
		}
		n += c
	}
	return n
}

// waitDrained waits until the group committed everything.
func waitDrained(ctx context.Context, cl *kgo.Client, group string, progress io.Writer, total int) error {
	adm := kadm.NewClient(cl)
	last := time.Now()
	for {
		lags, err := adm.Lag(ctx, group)
		if err == nil {
			if gl, ok := lags[group]; ok && gl.Error() == nil && len(gl.Lag) > 0 {
				lag := gl.Lag.Total()
				if lag == 0 {
					return nil
				}
				if time.Since(last) >= time.Second && total > 0 {
					last = time.Now()
					fmt.Fprintf(progress, "bench: draining, %d of %d records left\n", lag, total)
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// timed wraps a sink to record, for every ended span written, the time from its end
// (stamped by the producer just before Emit) to the sink's acknowledgement.
type timed struct {
	pipeline.Sink
	lat *latencies
}

func (t timed) Write(ctx context.Context, b *pipeline.Batch) error {
	if err := t.Sink.Write(ctx, b); err != nil {
		return err
	}
	now := time.Now()
	t.lat.mu.Lock()
	for _, s := range b.Spans {
		if !s.EndTime.IsZero() {
			t.lat.d = append(t.lat.d, now.Sub(s.EndTime))
		}
	}
	t.lat.mu.Unlock()
	return nil
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) reset() { l.mu.Lock(); l.d = l.d[:0]; l.mu.Unlock() }

func (l *latencies) percentiles() (p50, p95, p99 float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(l.d)
	at := func(q float64) float64 {
		return float64(l.d[min(len(l.d)-1, int(q*float64(len(l.d))))]) / float64(time.Millisecond)
	}
	return at(0.50), at(0.95), at(0.99)
}

type nullSink struct{}

func (nullSink) Name() string { return "null" }
func (nullSink) Capabilities() pipeline.Capabilities {
	return pipeline.Capabilities{Preferred: pipeline.InsertOnly,
		Supported: []pipeline.Strategy{pipeline.Realtime, pipeline.BatchWithUpdates, pipeline.InsertOnly}, Signals: schema.AllSignals}
}
func (nullSink) Write(context.Context, *pipeline.Batch) error { return nil }

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// sampleRSS records the highest resident set size seen while the drain runs (VmHWM
// would include the produce phase of this same process).
func sampleRSS(ctx context.Context, peak *atomic.Int64) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if rss := readRSS(); rss > peak.Load() {
			peak.Store(rss)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func readRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
