package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/demo"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// spanKey identifies a span.
type spanKey struct{ trace, span string }

func (k spanKey) String() string { return k.trace + "/" + k.span }

// ---------------------------------------------------------------- producing

// demoRun is what produceDemo sent.
type demoRun struct {
	traces, spans int   // generated (exact)
	sent          int64 // records Kafka acknowledged
	dropped       int64 // records the producer dropped (each reported as a drop event)
	elapsed       time.Duration
}

type demoOpts struct {
	traces int
	rate   float64 // traces per second; 0 = as fast as the producer takes them
	// progress, when set, counts the traces emitted so far, for scenarios that act
	// part-way through.
	progress *atomic.Int64
	// blockTimeout bounds how long Emit blocks on a full buffer (the block policy)
	// before dropping. Default 3m: longer than any outage the scenarios cause.
	blockTimeout time.Duration
}

// produceDemo publishes realistic agent traces (internal/demo: a root agent_run, two
// generations with started/updated/ended snapshots, 1-3 tool calls, an event span)
// through the producer library, with the block policy, then closes the producer,
// which publishes a drop event for anything it dropped.
func (s *scenario) produceDemo(ctx context.Context, o demoOpts) (demoRun, error) {
	cfg := producer.DefaultConfig()
	cfg.Brokers = s.brokers
	cfg.Topic = s.topic
	cfg.DropTopic = s.dropTopic
	cfg.ServiceName = "spanpipe-it"
	cfg.ClientID = s.group + "-producer"
	cfg.OnBufferFull = producer.OnFullBlock
	cfg.BlockTimeout = o.blockTimeout
	if cfg.BlockTimeout == 0 {
		cfg.BlockTimeout = 3 * time.Minute
	}
	cfg.DeliveryTimeout = 3 * time.Minute
	cfg.DropReportInterval = time.Second
	reg := prometheus.NewRegistry()
	var dropped atomic.Int64
	p, err := producer.New(cfg, producer.WithRegisterer(reg), producer.WithOnDrop(func(producer.Drop) { dropped.Add(1) }))
	if err != nil {
		return demoRun{}, err
	}
	g := demo.New(p, demo.Options{
		MinPayload: envInt("SPANPIPE_IT_MIN_PAYLOAD", 100),
		MaxPayload: envInt("SPANPIPE_IT_MAX_PAYLOAD", 1500),
		Seed:       rand.Uint64(),
	})
	var r demoRun
	start := time.Now()
	var perr error
	for i := 0; i < o.traces; i++ {
		if o.rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / o.rate * float64(time.Second)))); d > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
		}
		if ctx.Err() != nil {
			perr = ctx.Err()
			break
		}
		r.spans += g.Trace()
		r.traces++
		if o.progress != nil {
			o.progress.Add(1)
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := p.Close(cctx); err != nil && perr == nil {
		perr = err
	}
	r.elapsed = time.Since(start)
	r.sent = int64(gatherSum(reg, "spanpipe_producer_records_sent_total"))
	r.dropped = dropped.Load()
	return r, perr
}

func gatherSum(g prometheus.Gatherer, name string) float64 {
	mfs, _ := g.Gather()
	var s float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			s += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return s
}

// produceSummary is the last stdout line of `spanpipe produce`.
type produceSummary struct {
	Traces    int     `json:"traces"`
	Spans     int     `json:"spans"`
	Dropped   int     `json:"dropped"`
	ElapsedS  float64 `json:"elapsed_s"`
	SpansPerS float64 `json:"spans_per_s"`
}

// produceBinary runs `spanpipe produce` (the load generator) against the scenario's
// topic and returns its JSON summary.
func (s *scenario) produceBinary(ctx context.Context, traces int, rate float64) produceSummary {
	t := s.t
	t.Helper()
	logPath := filepath.Join(s.dir, "produce.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, spanpipeBinary(t), "produce", "--brokers", strings.Join(s.brokers, ","),
		"--topic", s.topic, "--traces", strconv.Itoa(traces), "--rate", strconv.FormatFloat(rate, 'f', -1, 64),
		"--min-payload", strconv.Itoa(envInt("SPANPIPE_IT_MIN_PAYLOAD", 100)),
		"--max-payload", strconv.Itoa(envInt("SPANPIPE_IT_MAX_PAYLOAD", 1500)),
		"--service", "spanpipe-it")
	cmd.Env = childEnv()
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("spanpipe produce: %v\n%s", err, tail(string(b), 30))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var sum produceSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("spanpipe produce: last line %q is not its JSON summary: %v", lines[len(lines)-1], err)
	}
	return sum
}

// endedSpan encodes a span_ended event of a tool_call span (version 1): one record
// per span, so that records and spans can be counted alike.
func endedSpan(trace, span string) []byte {
	now := time.Now().UTC()
	b, err := schema.Encode(nil, &schema.Event{Type: schema.SpanEnded, Span: &schema.Span{
		TraceID: trace, SpanID: span, Name: "tool lookup", Type: schema.ToolCall,
		StartTime: now.Add(-time.Second), EndTime: now, Version: 1,
		Correlation: schema.Correlation{ServiceName: "spanpipe-it"},
	}})
	if err != nil {
		panic(err)
	}
	return b
}

func randomHex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[rand.IntN(16)]
	}
	return string(b)
}

// ------------------------------------------------------------- reading back

// readTopic reads topic from the start to the end offsets it has now and calls fn with
// every record.
func readTopic(t *testing.T, brokers []string, topic string, fn func(*kgo.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, brokers))
	listed, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	ends := make(map[int32]int64)
	parts := make(map[int32]kgo.Offset)
	listed.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			ends[o.Partition] = o.Offset
			parts[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(parts) == 0 {
		return
	}
	cl := newClient(t, brokers, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))
	for len(ends) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v with %d partitions unfinished", topic, ctx.Err(), len(ends))
		}
		fs.EachError(func(_ string, p int32, err error) { t.Logf("reading %s[%d]: %v (retrying)", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := ends[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			fn(r)
			if r.Offset == end-1 {
				delete(ends, r.Partition)
			}
		})
	}
}

// spanTruth is a span's newest snapshot on the topic.
type spanTruth struct {
	version uint64
	ended   bool
}

// topicTruth is what the spans topic holds: the ground truth the stores must match.
type topicTruth struct {
	records     int64
	undecodable int64
	spans       map[spanKey]spanTruth
}

// readSpansTopic decodes every record of the scenario's spans topic and keeps, per
// span, the highest version and whether that snapshot is final (ended or an event).
func (s *scenario) readSpansTopic() topicTruth {
	tt := topicTruth{spans: make(map[spanKey]spanTruth)}
	readTopic(s.t, s.brokers, s.topic, func(r *kgo.Record) {
		tt.records++
		codec := ""
		for _, h := range r.Headers {
			if h.Key == schema.HeaderCodec {
				codec = string(h.Value)
			}
		}
		ev, err := schema.Decode(codec, r.Value)
		if err != nil {
			tt.undecodable++
			return
		}
		if ev.Span == nil {
			return
		}
		k := spanKey{ev.Span.TraceID, ev.Span.SpanID}
		cur, ok := tt.spans[k]
		switch {
		case !ok || ev.Span.Version > cur.version:
			tt.spans[k] = spanTruth{ev.Span.Version, ev.Span.Ended()}
		case ev.Span.Version == cur.version && ev.Span.Ended():
			cur.ended = true
			tt.spans[k] = cur
		}
	})
	return tt
}

// dropTopic is what a drop topic holds.
type dropTopic struct {
	letters []*kgo.Record       // dead letters: original records with headers
	events  []*dropalerts.Event // drop events
	other   int                 // anything else (should be nothing)
}

func (s *scenario) readDropTopic() dropTopic {
	var d dropTopic
	readTopic(s.t, s.brokers, s.dropTopic, func(r *kgo.Record) {
		switch dropalerts.Kind(r) {
		case dropalerts.KindDeadLetter:
			d.letters = append(d.letters, r)
		case dropalerts.KindDropEvent:
			ev, err := dropalerts.ParseEvent(r.Value)
			if err != nil {
				s.t.Errorf("drop event %s: %v", r.Value, err)
				return
			}
			d.events = append(d.events, ev)
		default:
			d.other++
		}
	})
	return d
}

// count adds up the records the drop events of one component (and reason, when not
// empty) say were lost.
func (d dropTopic) count(component string, reason dropalerts.Reason) int {
	n := 0
	for _, ev := range d.events {
		if ev.Component == component && (reason == "" || ev.Reason == reason) {
			n += ev.Count
		}
	}
	return n
}

func header(r *kgo.Record, key string) string {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value)
		}
	}
	return ""
}

// storedSpan is a span's newest row across the DuckDB files.
type storedSpan struct {
	version uint64
	ended   bool
	copies  int // files holding a row of it
}

// storeView is the union of the consumers' DuckDB files.
//
// What "no visible duplicates" means with one file per process: each file is a
// table keyed by (trace_id, span_id), so a file never holds a span twice (fileDupes
// must be 0, and is checked, not assumed). Across files the same span can legitimately
// be written twice: a record redelivered after a rebalance or a crash lands in the
// file of whichever process consumed it. The logical store is the union with, per
// span, the row of the highest version; that view must hold every span exactly once,
// at its newest version. rows - distinct counts the redundant copies (redelivery
// across processes), reported, not an error.
type storeView struct {
	files     int
	rows      int64
	fileDupes int64
	spans     map[spanKey]storedSpan
}

func (v storeView) distinct() int64 { return int64(len(v.spans)) }

// readStores opens every DuckDB file read-only (the consumers must have exited: DuckDB
// locks a file against other processes while it is open read-write) and builds the
// union view.
func readStores(t *testing.T, paths []string) storeView {
	t.Helper()
	v := storeView{spans: make(map[spanKey]storedSpan)}
	for _, path := range paths {
		db, err := duckdb.OpenReadOnly(t.Context(), path)
		if err != nil {
			t.Fatalf("open %s read-only: %v", path, err)
		}
		var rows, distinct int64
		if err := db.QueryRowContext(t.Context(), `SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans`).Scan(&rows, &distinct); err != nil {
			db.Close()
			t.Fatalf("%s: %v", path, err)
		}
		v.files++
		v.rows += rows
		v.fileDupes += rows - distinct
		q, err := db.QueryContext(t.Context(), `SELECT trace_id, span_id, version, (ended_at IS NOT NULL OR is_event) FROM spans`)
		if err != nil {
			db.Close()
			t.Fatalf("%s: %v", path, err)
		}
		for q.Next() {
			var k spanKey
			var version uint64
			var ended bool
			if err := q.Scan(&k.trace, &k.span, &version, &ended); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			cur, ok := v.spans[k]
			cur.copies++
			if !ok || version > cur.version {
				cur.version, cur.ended = version, ended
			} else if version == cur.version {
				cur.ended = cur.ended || ended
			}
			v.spans[k] = cur
		}
		err = q.Err()
		db.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return v
}

// checkStore asserts the stores against the topic: every span on the topic is stored
// at its newest version (the same version, equally final), no span is stored that is
// not on the topic, and no file holds a span twice.
func checkStore(t *testing.T, v storeView, truth topicTruth) {
	t.Helper()
	if v.fileDupes != 0 {
		t.Errorf("%d duplicate (trace_id, span_id) rows inside single DuckDB files, want 0", v.fileDupes)
	}
	var missing, stale, extra []string
	for k, want := range truth.spans {
		got, ok := v.spans[k]
		switch {
		case !ok:
			missing = append(missing, k.String())
		case got.version != want.version || got.ended != want.ended:
			stale = append(stale, fmt.Sprintf("%s: stored v%d ended=%v, newest on the topic v%d ended=%v", k, got.version, got.ended, want.version, want.ended))
		}
	}
	for k := range v.spans {
		if _, ok := truth.spans[k]; !ok {
			extra = append(extra, k.String())
		}
	}
	reportList(t, "spans on the topic but in no DuckDB file (lost)", missing)
	reportList(t, "spans stored at an older version than the newest on the topic", stale)
	reportList(t, "spans stored but not on the topic", extra)
}

// reportList fails the test with the size of list and a few of its items, if any.
func reportList(t *testing.T, what string, list []string) {
	t.Helper()
	if len(list) > 0 {
		slices.Sort(list)
		t.Errorf("%d %s, e.g. %s", len(list), what, strings.Join(list[:min(5, len(list))], "; "))
	}
}

// peaks formats the consumers' peak RSS and returns the largest, in MiB.
func peaks(procs []*consumerProc) (string, float64) {
	var parts []string
	var top float64
	for _, p := range procs {
		parts = append(parts, fmt.Sprintf("%s=%.0fMiB", p.name, p.peakMB()))
		top = max(top, p.peakMB())
	}
	return strings.Join(parts, " "), top
}

// finals returns the last scrape of every process.
func finals(procs []*consumerProc) []metricSet {
	var out []metricSet
	for _, p := range procs {
		out = append(out, p.final())
	}
	return out
}

// logFigures prints a scenario's figures on one line, prefixed for grepping.
func logFigures(t *testing.T, kv ...any) {
	t.Helper()
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, " %v=%v", kv[i], kv[i+1])
	}
	t.Logf("FIGURES %s:%s", t.Name(), b.String())
}
