// Package bench is `spanpipe bench`: an end-to-end benchmark against a real broker.
// It produces a fixed workload through the producer library, reads it with a raw
// franz-go consumer (the ceiling for anything reading Kafka), drains it with the null
// sink and with K consumers into the chosen sink, measures DuckDB's own append
// ceiling on the same rows, and measures produce→stored latency at a steady rate
// below the maximum. Every ratio it reports compares figures of the same run: the
// machine it runs on is shared and noisy.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/internal/chlocal"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/producer"
)

// Options describe one benchmark run.
type Options struct {
	Brokers    []string
	Spans      int    // distinct spans in the drain workload
	PayloadAvg int    // average input+output bytes per span
	Lifecycle  string // "insert-only": one ended snapshot per span; "updates": started+updated+ended
	// Codec is the producer's wire codec (producer.Config.Codec); empty: its default.
	Codec      string
	Consumers  int
	Sink       string // duckdb, clickhouse or null
	DSN        string // ClickHouse, for Sink "clickhouse"; empty starts deploy/local/clickhouse.sh
	Strategy   pipeline.Strategy
	Partitions int
	DBDir      string
	// LatencySeconds is how long the steady-rate latency phase runs (0 skips it).
	LatencySeconds int
	Progress       io.Writer
	// CPUProfile, when set, receives a CPU profile of the sink's drain alone.
	CPUProfile io.Writer
	// HeapProfile, when set, receives a heap profile taken when half of the sink's
	// drain is committed.
	HeapProfile io.Writer
	// Config, when set, is a consumer's configuration (as `spanpipe consume --config`
	// loads it) whose pipeline and sink settings, and kafka fetch_max_bytes,
	// fetch_max_partition_bytes and max_poll_records, the drain's consumers take, and
	// the append ceiling its sink.duckdb settings and max_batch_size. The bench sets
	// the strategy, the sink type, the DuckDB path and the ClickHouse DSN itself, and
	// the other Kafka settings (its own broker, topics and group). Nil: the defaults.
	Config *app.Config
}

// settingsOf names the settings of cfg that bear on a drain into sink.
func settingsOf(cfg app.Config, sink string) string {
	p := cfg.Pipeline
	s := fmt.Sprintf("max_batch_size %d, max_batch_wait %s", p.MaxBatchSize, p.MaxBatchWait)
	if k, def := cfg.Kafka, app.DefaultConfig().Kafka; k.FetchMaxBytes != def.FetchMaxBytes ||
		k.FetchMaxPartitionBytes != def.FetchMaxPartitionBytes || k.MaxPollRecords != def.MaxPollRecords {
		s += fmt.Sprintf("; kafka fetch_max_bytes %d (0: derived from the sink), fetch_max_partition_bytes %d, max_poll_records %d",
			k.FetchMaxBytes, k.FetchMaxPartitionBytes, k.MaxPollRecords)
	}
	if sink == "duckdb" {
		d := cfg.Sink.DuckDB
		s += fmt.Sprintf("; duckdb memory_limit %s, checkpoint_threshold %s, row_group_size %d, block_size %d, threads %d",
			cmp.Or(d.MemoryLimit, "DuckDB's default"), cmp.Or(d.CheckpointThreshold, "DuckDB's default"), d.RowGroupSize, d.BlockSize, d.Threads)
	}
	return s
}

// config is the consumers' base configuration: the defaults, with o.Config's
// pipeline and sink settings and its fetch sizes (the null drain's share of the raw
// fetch depends on them: the raw fetch asks for 32 MiB at a time).
func (o Options) config() app.Config {
	cfg := app.DefaultConfig()
	if o.Config != nil {
		cfg.Pipeline, cfg.Sink = o.Config.Pipeline, o.Config.Sink
		k := o.Config.Kafka
		cfg.Kafka.FetchMaxBytes, cfg.Kafka.FetchMaxPartitionBytes, cfg.Kafka.MaxPollRecords = k.FetchMaxBytes, k.FetchMaxPartitionBytes, k.MaxPollRecords
	}
	return cfg
}

// Result is what a run measured. Ratios compare figures of this run.
type Result struct {
	Spans              int     `json:"spans"`
	Records            int     `json:"records"`
	PayloadAvgBytes    int     `json:"payload_avg_bytes"`
	Lifecycle          string  `json:"lifecycle"`
	Codec              string  `json:"codec"`
	Sink               string  `json:"sink"`
	Strategy           string  `json:"strategy"`
	BufferSize         int     `json:"max_buffer_size"`
	Settings           string  `json:"settings"` // what the consumers ran with that a config changes (Options.Config)
	Consumers          int     `json:"consumers"`
	Partitions         int     `json:"partitions"`
	ProduceSpansPerSec float64 `json:"produce_spans_per_s"`
	ProduceMBPerSec    float64 `json:"produce_mb_per_s"`
	RawRecordsPerSec   float64 `json:"raw_fetch_records_per_s"`
	// NullRecordsPerSec is the null sink's drain (decode and batch, write nothing),
	// run before the sink's for any other sink.
	NullRecordsPerSec float64 `json:"null_drain_records_per_s"`
	NullRatioToRaw    float64 `json:"null_drain_to_raw_ratio"`
	// DrainSpansPerSec and DrainRecordsPerSec are the rates from the first fetch to
	// the last commit, as for the raw fetch: joining the group is a one-off cost that
	// would dominate a short run. DrainWithJoinSpansPerSec includes it; FirstFetchMs
	// is how long it took.
	DrainSpansPerSec         float64 `json:"drain_spans_per_s"`
	DrainRecordsPerSec       float64 `json:"drain_records_per_s"`
	DrainWithJoinSpansPerSec float64 `json:"drain_spans_per_s_incl_join"`
	FirstFetchMs             float64 `json:"first_fetch_ms"`
	RatioToRaw               float64 `json:"drain_to_raw_ratio"`
	// CeilingSpansPerSec is DuckDB's append ceiling on the same rows (duckdb only).
	CeilingSpansPerSec float64 `json:"duckdb_append_ceiling_spans_per_s,omitempty"`
	// CeilingCPUMs is the CPU per span of the ceiling's appends: what DuckDB alone
	// costs per row, a floor under ConsumerCPUMs.
	CeilingCPUMs   float64 `json:"duckdb_append_ceiling_cpu_ms_per_span,omitempty"`
	RatioToCeiling float64 `json:"drain_to_ceiling_ratio,omitempty"`
	// ConsumerCPUMs is the consumer process's CPU per span during the drain (an
	// embedded DuckDB included).
	ConsumerCPUMs float64 `json:"consumer_cpu_ms_per_span"`
	// ServerCPUMs is the ClickHouse server's CPU per span during the drain, known
	// when the bench started the server; TotalCPUMs is consumer + server (nil when
	// the server's share is unknown), the figure to compare with Mastra's.
	ServerCPUMs *float64 `json:"clickhouse_server_cpu_ms_per_span,omitempty"`
	TotalCPUMs  *float64 `json:"total_cpu_ms_per_span"`
	// PeakRSSMB is the kernel's high-water mark of the process's RSS over the drain
	// (Linux; elsewhere the highest sample); SampledPeakRSSMB the highest of the
	// samples taken every 100 ms, the moment the at-peak figures describe.
	PeakRSSMB        float64 `json:"peak_rss_mb"`
	SampledPeakRSSMB float64 `json:"sampled_peak_rss_mb"`
	// PeakGoMB is the most memory the Go runtime held during the drain (heap, stacks
	// and its own structures, without what it returned to the OS); the rest of the
	// RSS is outside Go: an embedded DuckDB's.
	PeakGoMB float64 `json:"peak_go_runtime_mb"`
	// AtPeakGoMB and AtPeakDuckDBPoolMB are the Go runtime's memory and DuckDB's
	// buffer pool (duckdb_memory(), what memory_limit bounds; -1 without DuckDB) when
	// the RSS peaked; the rest of the peak is DuckDB's memory outside its pool
	// (allocator caches, checkpoint buffers) and the program's code.
	AtPeakGoMB         float64 `json:"at_peak_go_runtime_mb"`
	AtPeakDuckDBPoolMB float64 `json:"at_peak_duckdb_pool_mb"`
	AtPeakDuckDBTags   string  `json:"at_peak_duckdb_pool_tags,omitempty"`
	// RSSMB is the process's RSS when a quarter, half and all of the drain's records
	// were committed.
	RSSMB [3]float64 `json:"rss_mb_at_25_50_100_pct"`
	// RSSPeakByQuarterMB is the highest RSS sampled during each quarter of the drain
	// (by records committed; 0 for a quarter too short to be sampled), and
	// GoMBAtQuarterPeaks and DuckDBPoolMBAtQuarterPeaks what Go and DuckDB's buffer
	// pool (-1 without DuckDB) held then: what grows with the table shows here.
	RSSPeakByQuarterMB         [4]float64 `json:"rss_peak_mb_by_quarter"`
	GoMBAtQuarterPeaks         [4]float64 `json:"go_runtime_mb_at_quarter_peaks"`
	DuckDBPoolMBAtQuarterPeaks [4]float64 `json:"duckdb_pool_mb_at_quarter_peaks"`
	// RSSP90ByQuarterMB is the 90th percentile of the RSS samples (every 100 ms) of
	// each quarter of the drain: the flatness target compares the second and the last.
	RSSP90ByQuarterMB [4]float64 `json:"rss_p90_mb_by_quarter"`
	// RSSSamplesByQuarter is how many samples each quarter holds.
	RSSSamplesByQuarter [4]int `json:"rss_samples_by_quarter"`

	RowsPerSpan        float64  `json:"rows_written_per_span"`
	Stored             int64    `json:"spans_stored"`
	DuckDBBytes        int64    `json:"duckdb_bytes_on_disk,omitempty"`
	DuckDBSpans        int64    `json:"duckdb_spans_on_disk,omitempty"` // the drain's and the latency phase's
	DuckDBBytesPerSpan float64  `json:"duckdb_bytes_per_span,omitempty"`
	LatencyRate        float64  `json:"latency_phase_spans_per_s"`
	LatencyP50ms       float64  `json:"latency_p50_ms"`
	LatencyP95ms       float64  `json:"latency_p95_ms"`
	LatencyP99ms       float64  `json:"latency_p99_ms"`
	LatencyBoundMs     float64  `json:"latency_p99_bound_ms"`
	Targets            []Target `json:"targets"`
}

// Run executes the benchmark.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	res := &Result{Spans: o.Spans, PayloadAvgBytes: o.PayloadAvg, Lifecycle: o.Lifecycle, Codec: cmp.Or(o.Codec, producer.DefaultConfig().Codec), Sink: o.Sink,
		Consumers: o.Consumers, Partitions: o.Partitions,
		LatencyBoundMs: float64(latencyBound(o.config().Pipeline.MaxBatchWait)) / float64(time.Millisecond)}
	res.Settings = settingsOf(o.config(), o.Sink)
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
	// Deferred before the consumers' stop, so that it runs after it.
	defer removeRun(ctx, adm, o.Progress, []string{topic, drops}, []string{"bench-" + run, "bench-" + run + "-null"})

	// Produce everything first, so that the drains measure the consumer alone and the
	// producers are "10x ahead of the sink" (all of it ahead).
	records, bytes, dur, err := produce(ctx, o, topic, drainStream, o.Spans, 0)
	if err != nil {
		return nil, err
	}
	res.Records = records
	res.ProduceSpansPerSec = float64(o.Spans) / dur.Seconds()
	res.ProduceMBPerSec = float64(bytes) / dur.Seconds() / 1e6
	fmt.Fprintf(o.Progress, "bench: produced %d spans (%d records, %.1f MB) in %s: %.0f spans/s\n",
		o.Spans, records, float64(bytes)/1e6, dur.Round(time.Millisecond), res.ProduceSpansPerSec)

	raw, err := rawDrain(ctx, o.Brokers, topic, records)
	if err != nil {
		return nil, err
	}
	res.RawRecordsPerSec = raw.recordsPerSec(records)
	fmt.Fprintf(o.Progress, "bench: raw fetch read %d records in %s (first fetch after %s): %.0f records/s\n",
		records, raw.dur.Round(time.Millisecond), raw.firstFetch.Round(time.Millisecond), res.RawRecordsPerSec)

	if o.Sink != "null" {
		cs, d, err := drain(ctx, o, adm, "null", topic, drops, "bench-"+run+"-null", records, nil, nil, nil)
		if err != nil {
			return nil, err
		}
		cs.stop()
		res.NullRecordsPerSec = d.recordsPerSec(records)
		res.NullRatioToRaw = res.NullRecordsPerSec / res.RawRecordsPerSec
		fmt.Fprintf(o.Progress, "bench: null sink drained in %s (first fetch after %s): %.0f records/s\n",
			d.dur.Round(time.Millisecond), d.firstFetch.Round(time.Millisecond), res.NullRecordsPerSec)
	}

	cs, d, err := drain(ctx, o, adm, o.Sink, topic, drops, "bench-"+run, records, server, o.CPUProfile, o.HeapProfile)
	if err != nil {
		return nil, err
	}
	defer cs.stop()
	res.DrainRecordsPerSec = d.recordsPerSec(records)
	res.DrainSpansPerSec = res.DrainRecordsPerSec * float64(o.Spans) / float64(records)
	res.DrainWithJoinSpansPerSec = float64(o.Spans) / d.dur.Seconds()
	res.FirstFetchMs = float64(d.firstFetch) / float64(time.Millisecond)
	res.RatioToRaw = res.DrainRecordsPerSec / res.RawRecordsPerSec
	if o.Sink == "null" {
		res.NullRecordsPerSec, res.NullRatioToRaw = res.DrainRecordsPerSec, res.RatioToRaw
	}
	perSpan := func(seconds float64) float64 { return seconds / float64(o.Spans) * 1000 }
	res.ConsumerCPUMs = perSpan(d.cpu)
	total := res.ConsumerCPUMs
	switch {
	case o.Sink != "clickhouse":
		res.TotalCPUMs = &total
	case d.serverCPU >= 0:
		srv := perSpan(d.serverCPU)
		total += srv
		res.ServerCPUMs, res.TotalCPUMs = &srv, &total
	}
	res.PeakRSSMB, res.SampledPeakRSSMB = mb(d.peakRSS), mb(d.sampledPeak)
	res.PeakGoMB = mb(d.peakGo)
	res.AtPeakGoMB, res.AtPeakDuckDBPoolMB, res.AtPeakDuckDBTags = mb(d.atPeak.goBytes), -1, d.atPeak.duckTags
	if d.atPeak.duckPool >= 0 {
		res.AtPeakDuckDBPoolMB = mb(d.atPeak.duckPool)
	}
	for i, v := range d.rssAt {
		res.RSSMB[i] = mb(v)
	}
	for q, v := range d.quarterPeak {
		res.RSSP90ByQuarterMB[q], res.RSSSamplesByQuarter[q] = mb(d.quarterP90[q]), d.quarterSamples[q]
		at := d.atQuarterPeak[q]
		res.RSSPeakByQuarterMB[q], res.GoMBAtQuarterPeaks[q], res.DuckDBPoolMBAtQuarterPeaks[q] = mb(v), mb(at.goBytes), -1
		if at.duckPool >= 0 {
			res.DuckDBPoolMBAtQuarterPeaks[q] = mb(at.duckPool)
		}
	}
	res.RowsPerSpan = cs.rows() / float64(o.Spans)
	res.Strategy, res.BufferSize = string(cs.strategy), cs.buffer
	res.Stored = cs.stored(ctx)
	fmt.Fprintf(o.Progress, "bench: drained in %s (first fetch after %s): %.0f spans/s, %.4f ms consumer CPU per span, peak RSS %.0f MB\n",
		d.dur.Round(time.Millisecond), d.firstFetch.Round(time.Millisecond), res.DrainSpansPerSec, res.ConsumerCPUMs, res.PeakRSSMB)

	// Latency at half the measured drain rate, on the consumers of the drain.
	if o.LatencySeconds > 0 {
		// Half the slower of drain and producer: a producer that cannot keep up would
		// be measured instead of the consumer (its queue between Emit and Kafka).
		rate := min(res.DrainSpansPerSec, res.ProduceSpansPerSec) / 2
		n := int(rate * float64(o.LatencySeconds))
		// The stream goes on, unmeasured, for max_batch_wait and a second past the
		// measured window: its last spans would otherwise wait for a batch that only
		// the end of the stream leaves unfilled, which is shutdown, not the steady
		// state at this rate.
		tail := int(rate * (o.config().Pipeline.MaxBatchWait + time.Second).Seconds())
		cs.lat.start(time.Now().Add(time.Duration(o.LatencySeconds) * time.Second))
		if _, _, _, err := produce(ctx, o, topic, latencyStream, n+tail, rate); err != nil {
			return nil, err
		}
		if err := waitDrained(ctx, adm, cs.group, io.Discard, 0, nil); err != nil {
			return nil, err
		}
		res.LatencyRate = rate
		res.LatencyP50ms, res.LatencyP95ms, res.LatencyP99ms = cs.lat.percentiles()
		fmt.Fprintf(o.Progress, "bench: latency at %.0f spans/s: p50 %.0f ms, p95 %.0f ms, p99 %.0f ms\n",
			rate, res.LatencyP50ms, res.LatencyP95ms, res.LatencyP99ms)
	}
	// Bytes on disk come last, over every span stored: the CHECKPOINT they need made
	// DuckDB's next automatic checkpoint rewrite the whole table (one commit wrote
	// 198 MB and took 4.3 s), which the latency phase then measured.
	if o.Sink == "duckdb" {
		if res.DuckDBSpans = cs.stored(ctx); res.DuckDBSpans <= 0 {
			return nil, fmt.Errorf("bench: count the spans in DuckDB: got %d", res.DuckDBSpans)
		}
		if res.DuckDBBytes, err = cs.duckDBBytes(ctx); err != nil {
			return nil, err
		}
		res.DuckDBBytesPerSpan = float64(res.DuckDBBytes) / float64(res.DuckDBSpans)
	}
	cs.stop()

	// The ceiling runs alone, after the consumers stopped, so that nothing shares its
	// CPU and its memory does not count in theirs.
	if o.Sink == "duckdb" {
		if res.CeilingSpansPerSec, res.CeilingCPUMs, err = appendCeiling(ctx, o, "bench-"+run+"-ceiling"); err != nil {
			return nil, err
		}
		res.RatioToCeiling = res.DrainSpansPerSec / res.CeilingSpansPerSec
		fmt.Fprintf(o.Progress, "bench: DuckDB append ceiling on the same rows: %.0f spans/s, %.4f ms CPU per span\n",
			res.CeilingSpansPerSec, res.CeilingCPUMs)
	}
	res.Targets = targets(res)
	return res, nil
}

// removeRun deletes a run's topics and consumer groups: each run writes its spans
// anew (250 MB of log at the default size), and a broker that runs the bench now and
// then filled its disk with them (54 GB here). A failure is reported, not returned:
// the figures stand.
func removeRun(ctx context.Context, cl *kgo.Client, progress io.Writer, topics, groups []string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	var errs []error
	gs, err := adm.DeleteGroups(ctx, groups...)
	errs = append(errs, err)
	for _, g := range gs {
		if g.Err != nil && !errors.Is(g.Err, kerr.GroupIDNotFound) {
			errs = append(errs, fmt.Errorf("group %s: %w", g.Group, g.Err))
		}
	}
	ts, err := adm.DeleteTopics(ctx, topics...)
	errs = append(errs, err)
	for _, t := range ts {
		if t.Err != nil && !errors.Is(t.Err, kerr.UnknownTopicOrPartition) {
			errs = append(errs, fmt.Errorf("topic %s: %w", t.Topic, t.Err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(progress, "bench: could not delete the run's topics %v and groups %v: %v\n", topics, groups, err)
	}
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

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

// rawDrain reads the topic with a bare franz-go consumer that discards what it
// fetches: the ceiling for anything reading Kafka on this machine.
func rawDrain(ctx context.Context, brokers []string, topic string, want int) (drained, error) {
	fetched := &firstFetch{}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(32<<20), kgo.WithHooks(fetched))
	if err != nil {
		return drained{}, err
	}
	defer cl.Close()
	start := time.Now()
	got := 0
	for got < want {
		fs := cl.PollRecords(ctx, 10000)
		if err := ctx.Err(); err != nil {
			return drained{}, err
		}
		got += fs.NumRecords()
	}
	return drained{dur: time.Since(start), firstFetch: fetched.since(start)}, nil
}
