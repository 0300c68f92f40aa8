package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spanpipe/spanpipe/internal/app"
	"github.com/spanpipe/spanpipe/internal/chlocal"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/clickhouse"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

// drained is what one drain measured.
type drained struct {
	dur time.Duration
	// firstFetch is when the consumers read their first batch of records: what came
	// before is joining the group, a one-off cost that a short drain pays in full.
	firstFetch time.Duration
	cpu        float64 // the process's CPU seconds, consumers and an in-process store
	// serverCPU is the ClickHouse server's CPU seconds; -1 when unknown (a server
	// the bench did not start).
	serverCPU float64
	// peakRSS is the kernel's high-water mark of the RSS over the drain where it can
	// be reset at its start (Linux), else sampledPeak; sampledPeak is the highest
	// sample, the one atPeak describes. A checkpoint's spike can fall between samples.
	peakRSS, sampledPeak int64
	peakGo               int64 // the most memory the Go runtime held (see goMemory)
	// atPeak is what held the RSS when it peaked (DuckDB's buffer pool only with
	// the DuckDB sink).
	atPeak memoryAtPeak
	// rssAt is the process's RSS when a quarter, half and all of the records were
	// committed.
	rssAt [3]int64
	// quarterPeak is the highest RSS sampled while each quarter of the records was
	// being committed (0 for a quarter too short to be sampled), and atQuarterPeak
	// what held it.
	quarterPeak   [4]int64
	atQuarterPeak [4]memoryAtPeak
	quarterP90    [4]int64 // see rssSampler.quarterP90
	// quarterSamples counts the RSS samples of each quarter.
	quarterSamples [4]int
}

// drain starts o.Consumers consumers of sink on topic and waits until they committed
// all records. The consumers keep running: the caller stops them.
func drain(ctx context.Context, o Options, adm *kgo.Client, sink, topic, drops, group string, records int,
	server *chlocal.Server, profile, heapProfile io.Writer,
) (*consumers, drained, error) {
	// What earlier phases allocated goes back to the OS first, so that RSS is the
	// consumers'.
	runtime.GC()
	debug.FreeOSMemory()
	if profile != nil {
		if err := pprof.StartCPUProfile(profile); err != nil {
			return nil, drained{}, fmt.Errorf("bench: start CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	fetched := &firstFetch{}
	cs, err := startConsumers(ctx, o, sink, topic, drops, group, fetched)
	if err != nil {
		return nil, drained{}, err
	}
	var d drained
	start := time.Now()
	cpu0 := cpuSeconds()
	srv0, srvErr := serverCPU(server)
	hwm := resetPeakRSS()
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sw sync.WaitGroup
	var atPeak memoryAtPeak
	var atQuarterPeak [4]memoryAtPeak
	rs := &rssSampler{onPeak: func(q int, overall bool) {
		m := memoryAtPeak{goBytes: goMemory(), duckPool: -1}
		if len(cs.duck) > 0 {
			m.duckPool, m.duckTags = duckDBPool(sampleCtx, cs.duck)
		}
		atQuarterPeak[q] = m
		if overall {
			atPeak = m
		}
	}}
	sw.Go(func() { rs.run(sampleCtx) })
	quarter := 0
	var heapErr error
	err = waitDrained(ctx, adm, group, o.Progress, records, func(lag int64) {
		rs.quarter.Store(int32(min(3, 4*(int64(records)-lag)/int64(max(records, 1)))))
		for quarter < 2 && float64(int64(records)-lag) >= float64(records)*float64(quarter+1)/4 {
			d.rssAt[quarter] = readRSS()
			if quarter == 1 && heapProfile != nil {
				heapErr = pprof.Lookup("heap").WriteTo(heapProfile, 0)
			}
			quarter++
		}
	})
	if err == nil && heapErr != nil {
		err = fmt.Errorf("bench: write heap profile: %w", heapErr)
	}
	stopSampling()
	sw.Wait()
	if err != nil {
		cs.stop()
		return nil, drained{}, err
	}
	d.dur = time.Since(start)
	d.firstFetch = fetched.since(start)
	d.cpu = cpuSeconds() - cpu0
	d.serverCPU = -1
	if srv1, err := serverCPU(server); err == nil && srvErr == nil {
		d.serverCPU = srv1 - srv0
	}
	d.rssAt[2] = readRSS()
	for quarter < 2 { // drained before the first look at the lag
		d.rssAt[quarter] = d.rssAt[2]
		quarter++
	}
	d.sampledPeak = max(rs.peak.Load(), slices.Max(d.rssAt[:]))
	d.peakRSS = d.sampledPeak
	if hwm {
		d.peakRSS = max(d.peakRSS, readStatus("VmHWM:"))
	}
	d.atPeak = atPeak
	d.peakGo = max(rs.peakGo.Load(), goMemory())
	for q := range d.quarterPeak {
		d.quarterPeak[q] = rs.quarterPeak[q].Load()
		d.atQuarterPeak[q] = atQuarterPeak[q]
	}
	d.quarterP90 = rs.quarterP90()
	for q := range d.quarterSamples {
		d.quarterSamples[q] = len(rs.samples[q])
	}
	return cs, d, nil
}

// recordsPerSec is the drain's rate from its first fetch on (the raw fetch is
// measured the same way).
func (d drained) recordsPerSec(records int) float64 {
	return float64(records) / (d.dur - d.firstFetch).Seconds()
}

// firstFetch is a franz-go hook that notes when a client read its first batch.
type firstFetch struct{ at atomic.Int64 }

func (f *firstFetch) OnFetchBatchRead(kgo.BrokerMetadata, string, int32, kgo.FetchBatchMetrics) {
	if f.at.Load() == 0 {
		f.at.CompareAndSwap(0, time.Now().UnixNano())
	}
}

// since is how long after start the first batch was read; 0 when none was.
func (f *firstFetch) since(start time.Time) time.Duration {
	if at := f.at.Load(); at > 0 {
		return max(0, time.Unix(0, at).Sub(start))
	}
	return 0
}

// serverCPU is the CPU seconds srv has used so far; an error without a server of ours.
func serverCPU(srv *chlocal.Server) (float64, error) {
	if srv == nil {
		return 0, errors.New("no local server")
	}
	return srv.CPUSeconds()
}

type consumers struct {
	group    string
	strategy pipeline.Strategy
	buffer   int                // the batchers' max_buffer_size, configured or derived
	ch       *clickhouse.Writer // one database holds every consumer's rows
	duck     []*duckdb.Writer
	duckPath []string
	closers  []func() error
	reg      *prometheus.Registry
	lat      *latencies
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func startConsumers(ctx context.Context, o Options, sink, topic, drops, group string, hook kgo.Hook) (*consumers, error) {
	cs := &consumers{group: group, reg: prometheus.NewRegistry(), lat: &latencies{}}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cs.cancel = cancel
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for i := range o.Consumers {
		cfg := o.config()
		cfg.Kafka.Brokers, cfg.Kafka.Topics, cfg.Kafka.Group = o.Brokers, []string{topic}, group
		cfg.Drops.Topic = drops
		cfg.Pipeline.Strategy = o.Strategy
		// The null sink keeps the default type, whatever the config names: the type
		// sizes the Go memory limit (a ClickHouse insert's columns).
		cfg.Sink.Type = app.DefaultConfig().Sink.Type
		if sink == app.SinkDuckDB || sink == app.SinkClickHouse {
			cfg.Sink.Type = sink
		}
		var s pipeline.Sink
		switch sink {
		case "null":
			s = nullSink{}
		case "clickhouse":
			ccfg := cfg.Sink.ClickHouse
			ccfg.DSN = o.DSN
			w, err := clickhouse.Open(ctx, ccfg, clickhouse.WithLogger(log))
			if err != nil {
				cs.stop()
				return nil, err
			}
			if cs.ch == nil {
				cs.ch = w
			}
			cs.closers = append(cs.closers, w.Close)
			s = w
		default:
			dcfg := cfg.Sink.DuckDB
			dcfg.Path = filepath.Join(o.DBDir, fmt.Sprintf("%s-%d.duckdb", group, i))
			w, err := duckdb.Open(ctx, dcfg, duckdb.WithLogger(log))
			if err != nil {
				cs.stop()
				return nil, err
			}
			cs.duck, cs.duckPath = append(cs.duck, w), append(cs.duckPath, dcfg.Path)
			cs.closers = append(cs.closers, w.Close)
			s = w
		}
		app.ApplyGoRuntime(cfg, s.Capabilities(), log) // as `spanpipe consume` does
		c, err := app.NewConsumer(cfg, timed{s, cs.lat}, log, cs.reg, []kgo.Opt{kgo.WithHooks(hook)})
		if err != nil {
			cs.stop()
			return nil, err
		}
		cs.strategy, cs.buffer = c.Batcher.Strategy(), c.Batcher.BufferSize()
		cs.wg.Go(func() { _ = c.Run(cctx) })
	}
	return cs, nil
}

// stop stops the consumers, closes the sinks and deletes the DuckDB files.
func (cs *consumers) stop() {
	cs.cancel()
	cs.wg.Wait()
	for _, c := range cs.closers {
		_ = c()
	}
	for _, p := range cs.duckPath {
		_ = os.Remove(p)
		_ = os.Remove(p + ".wal")
	}
	cs.ch, cs.duck, cs.duckPath, cs.closers = nil, nil, nil, nil
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

// stored counts the spans in the store; -1 for the null sink or when counting failed.
func (cs *consumers) stored(ctx context.Context) int64 {
	if cs.ch != nil {
		n, err := cs.ch.CountSpans(ctx)
		if err != nil {
			return -1
		}
		return n
	}
	if len(cs.duck) == 0 {
		return -1
	}
	var n int64
	for _, w := range cs.duck {
		c, err := w.CountSpans(ctx)
		if err != nil {
			return -1
		}
		n += c
	}
	return n
}

// duckDBBytes checkpoints every DuckDB file, so that the log is folded into the file
// as it would be at rest, and returns the bytes on disk, log included.
func (cs *consumers) duckDBBytes(ctx context.Context) (int64, error) {
	var n int64
	for i, w := range cs.duck {
		if _, err := w.DB().ExecContext(ctx, "CHECKPOINT"); err != nil {
			return 0, fmt.Errorf("bench: checkpoint %s: %w", cs.duckPath[i], err)
		}
		for _, p := range []string{cs.duckPath[i], cs.duckPath[i] + ".wal"} {
			fi, err := os.Stat(p)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return 0, err
			}
			n += fi.Size()
		}
	}
	return n, nil
}

// waitDrained waits until the group committed everything, calling onLag (when set)
// with the group's lag every time it looks.
func waitDrained(ctx context.Context, cl *kgo.Client, group string, progress io.Writer, total int, onLag func(int64)) error {
	adm := kadm.NewClient(cl)
	last := time.Now()
	for {
		lags, err := adm.Lag(ctx, group)
		if err == nil {
			if gl, ok := lags[group]; ok && gl.Error() == nil && len(gl.Lag) > 0 {
				lag := gl.Lag.Total()
				if onLag != nil {
					onLag(lag)
				}
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
	if !t.lat.on {
		t.lat.mu.Unlock()
		return nil
	}
	for _, s := range b.Spans {
		if !s.EndTime.IsZero() && s.EndTime.Before(t.lat.until) {
			t.lat.d = append(t.lat.d, now.Sub(s.EndTime))
		}
	}
	t.lat.mu.Unlock()
	return nil
}

// latencies are recorded only once start is called, for the latency phase: over the
// drain they would be the bench's own memory, 16 MB at 2M spans, in the RSS measured.
// Only spans that ended before until are: the phase's stream goes on past it.
type latencies struct {
	mu    sync.Mutex
	on    bool
	until time.Time
	d     []time.Duration
}

func (l *latencies) start(until time.Time) {
	l.mu.Lock()
	l.on, l.until, l.d = true, until, l.d[:0]
	l.mu.Unlock()
}

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

// rssSampler records the resident set size while the drain runs: its highest, overall
// and per quarter of the drain, every sample per quarter, and the highest memory the
// Go runtime held, which tells the Go side's share of it from an embedded DuckDB's.
// The samples are for the flatness check (see quarterP90).
type rssSampler struct {
	peak, peakGo atomic.Int64
	// quarter is the quarter of the records committed so far (0–3), set by whoever
	// follows the drain's progress.
	quarter     atomic.Int32
	quarterPeak [4]atomic.Int64
	// samples are every RSS sample of each quarter; the goroutine of run owns them
	// until it returns.
	samples [4][]int64
	// onPeak (when set) is called by the sampling goroutine on every new peak of
	// quarter q, overall telling whether it is also the highest so far.
	onPeak func(q int, overall bool)
}

// run samples every 100 ms until ctx ends.
func (s *rssSampler) run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		rss := readRSS()
		q := int(s.quarter.Load())
		s.samples[q] = append(s.samples[q], rss)
		if rss > s.quarterPeak[q].Load() {
			s.quarterPeak[q].Store(rss)
			overall := rss > s.peak.Load()
			if overall {
				s.peak.Store(rss)
			}
			if s.onPeak != nil {
				s.onPeak(q, overall)
			}
		}
		if g := goMemory(); g > s.peakGo.Load() {
			s.peakGo.Store(g)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// quarterP90 is the 90th percentile of the RSS samples of each quarter of the drain,
// 0 for a quarter without samples. The flatness check compares the second quarter's
// with the last's: the first is the consumer filling its buffers, and DuckDB's pool
// filling up to its first checkpoint. A percentile because with DuckDB the RSS is a
// sawtooth (rows pile up in memory until a checkpoint writes them out, and the
// checkpoint itself spikes): two single samples differ by up to a tooth, and the
// highest of each quarter by however much one checkpoint's spike differs from
// another's, while the 90th percentile of dozens of samples or more moves with the
// whole sawtooth.
func (s *rssSampler) quarterP90() [4]int64 {
	var p [4]int64
	for q := range p {
		if len(s.samples[q]) == 0 {
			continue
		}
		all := slices.Clone(s.samples[q])
		slices.Sort(all)
		p[q] = all[(len(all)*9)/10]
	}
	return p
}

// memoryAtPeak is what held memory when the RSS peaked.
type memoryAtPeak struct {
	goBytes  int64
	duckPool int64  // DuckDB's buffer pool (duckdb_memory()); -1 without DuckDB
	duckTags string // its largest tags, e.g. "BASE_TABLE 69 MB, IN_MEMORY_TABLE 45 MB"
}

// duckDBPool is the memory DuckDB's buffer pools account for, over the writers'
// databases (duckdb_memory(): the data in memory_limit), and its tags from the
// largest, with 1 MB or more.
func duckDBPool(ctx context.Context, ws []*duckdb.Writer) (int64, string) {
	var total int64
	tags := map[string]int64{}
	for _, w := range ws {
		rows, err := w.DB().QueryContext(ctx, "SELECT tag, memory_usage_bytes FROM duckdb_memory()")
		if err != nil {
			return -1, ""
		}
		for rows.Next() {
			var tag string
			var n int64
			if rows.Scan(&tag, &n) == nil {
				total += n
				tags[tag] += n
			}
		}
		if rows.Close() != nil {
			return -1, ""
		}
	}
	names := slices.Collect(maps.Keys(tags))
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(tags[b], tags[a]) })
	var parts []string
	for _, n := range names {
		if tags[n] >= 1<<20 {
			parts = append(parts, fmt.Sprintf("%s %.0f MB", n, mb(tags[n])))
		}
	}
	return total, strings.Join(parts, ", ")
}

// goMemory is the memory the Go runtime holds from the OS: everything it mapped
// minus what it released (an upper bound of its share of the RSS).
func goMemory() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
}

func readRSS() int64 { return readStatus("VmRSS:") }

// resetPeakRSS resets the kernel's high-water mark of this process's RSS (VmHWM), so
// that it covers the drain rather than the produce phase before it, and tells
// whether it could (Linux 4.0 and later).
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil && readStatus("VmHWM:") > 0
}

// readStatus returns a size field of /proc/self/status ("VmRSS:") in bytes, 0 when
// it cannot.
func readStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
