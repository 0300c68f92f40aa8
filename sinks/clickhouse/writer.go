package clickhouse

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	chgo "github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/cespare/xxhash/v2"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
)

// ErrClosed is returned by [Writer.Write] after [Writer.Close].
var ErrClosed = errors.New("clickhouse: writer closed")

// Writer is the ClickHouse [pipeline.Sink]. It inserts each signal of a batch into its
// table as columnar blocks over the native protocol, one row per span snapshot and one
// per log, metric, score and feedback; the tables' ReplacingMergeTree engines and the
// per-insert deduplication token make writing a batch twice store it once. Create it
// with [Open].
type Writer struct {
	cfg  Config
	p    ddlParams
	conn driver.Conn
	log  *slog.Logger
	m    *metrics
	// prepare starts one INSERT with the given settings (the mastra layout's
	// inserts); tests replace it.
	prepare func(ctx context.Context, query string, settings ch.Settings) (driver.Batch, error)
	// do runs one INSERT of native columns (the spanpipe layout's inserts) on the
	// writer's own connection; tests replace it.
	do        func(ctx context.Context, q chgo.Query) error
	native    nativeConn
	insertSQL map[*table]string

	mu     sync.Mutex // serialises Write and Close
	closed bool
	// Column builders, reused by every Write.
	spans    spanCols
	logs     logCols
	metrics  metricCols
	scores   scoreCols
	feedback feedbackCols
	mastra   *mastraCols // set with layout mastra (mastra_layout.go)
}

// dial opens a connection pool and checks that the server answers. The connection
// uses no default database: every statement names its database.
func dial(ctx context.Context, cfg Config) (driver.Conn, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	opts.Auth.Database = ""
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: open %s: %w", strings.Join(cfg.Addr, ","), err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("clickhouse: connect to %s: %w", strings.Join(cfg.Addr, ","), err)
	}
	return conn, nil
}

// Open connects to the server named by cfg and checks the schema: with
// [Config.AutoMigrate] it applies pending migrations (as [Migrate] does), otherwise it
// fails when one is pending. The caller must call [Writer.Close]: the driver's
// connection pool runs a goroutine that closes idle connections until then.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg, _ = cfg.Resolve() // Validate checked the DSN
	o := buildOptions(opts)
	conn, err := dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	w := newWriter(cfg, conn, o)
	var res MigrateResult
	if w.mastra != nil {
		res.Applied, err = checkMastraSchema(ctx, conn, w.p, cfg.AutoMigrate)
	} else if cfg.AutoMigrate {
		res, err = migrate(ctx, conn, w.p, w.log)
	} else {
		var todo []string
		if todo, err = pending(ctx, conn, w.p); err == nil && len(todo) > 0 {
			err = fmt.Errorf("clickhouse: migrations %s pending; run `spanpipe migrate` or set auto_migrate", strings.Join(todo, ", "))
		}
	}
	if err != nil {
		return nil, errors.Join(err, conn.Close())
	}
	w.log.Info("clickhouse sink open", "config", cfg, "migrations_applied", res.Applied)
	return w, nil
}

func newWriter(cfg Config, conn driver.Conn, o options) *Writer {
	w := &Writer{
		cfg:       cfg,
		p:         paramsOf(cfg),
		conn:      conn,
		log:       o.logger.With("component", "clickhouse"),
		m:         newMetrics(o.reg),
		insertSQL: map[*table]string{},
	}
	w.prepare = func(ctx context.Context, query string, settings ch.Settings) (driver.Batch, error) {
		return conn.PrepareBatch(ch.Context(ctx, ch.WithSettings(settings)), query)
	}
	w.native.cfg = cfg
	w.do = w.native.do
	for _, t := range allTables {
		w.insertSQL[t] = "INSERT INTO " + w.p.qualified(t.name) + " (" + t.colNames() + ")"
	}
	if cfg.Layout == LayoutMastra {
		w.initMastra()
	}
	return w
}

// Name returns "clickhouse".
func (w *Writer) Name() string { return sinkName }

// Capabilities declares insert-only as preferred (final snapshots only: the fewest
// rows and merges), batch-with-updates as supported (running spans are written too,
// and replaced by version), every signal, and realtime only with
// [Config.AsyncInsert]: one synchronous INSERT per event would create a part per
// event and soon fail with TOO_MANY_PARTS.
func (w *Writer) Capabilities() pipeline.Capabilities {
	if w.mastra != nil {
		return mastraCapabilities()
	}
	supported := []pipeline.Strategy{pipeline.InsertOnly, pipeline.BatchWithUpdates}
	if w.cfg.AsyncInsert {
		supported = append(supported, pipeline.Realtime)
	}
	return pipeline.Capabilities{
		Preferred: pipeline.InsertOnly,
		Supported: supported,
		Signals:   slices.Clone(schema.AllSignals),
	}
}

// Write inserts the batch: each signal into its table, in the order spans, logs,
// metrics, scores, feedback, and each split into inserts of at most
// [Config.MaxRowsPerInsert] rows, [Config.MaxBytesPerInsert] bytes and
// [Config.MaxPartitionsPerInsert] days. Each insert carries an
// insert_deduplication_token derived from the batch's Kafka sources, the table, the
// insert's position in the batch and its rows' keys, so that when a failed Write is
// retried, the inserts that had succeeded are skipped by the server. Writing is not
// atomic across inserts; the retry (or the redelivery of the records) completes it.
//
// Errors a retry cannot fix (a value the column cannot hold, a missing table or
// column, a type mismatch) are wrapped with [pipeline.Permanent]; see classify. Write
// is safe for concurrent use, but calls are serialised.
func (w *Writer) Write(ctx context.Context, b *pipeline.Batch) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if b == nil || b.Len() == 0 {
		return nil
	}
	start := time.Now()
	src := sourcesDigest(b.Sources)
	if w.mastra != nil {
		return w.writeMastra(ctx, b, src)
	}
	if err := writeTable(ctx, w, spansTable, b.Spans, &w.spans, spanMeta, spanKey, src); err != nil {
		return err
	}
	if err := writeTable(ctx, w, logsTable, b.Logs, &w.logs, logMeta, logKey, src); err != nil {
		return err
	}
	if err := writeTable(ctx, w, metricsTable, b.Metrics, &w.metrics, metricMeta, metricKey, src); err != nil {
		return err
	}
	if err := writeTable(ctx, w, scoresTable, b.Scores, &w.scores, scoreMeta, scoreKey, src); err != nil {
		return err
	}
	if err := writeTable(ctx, w, feedbackTable, b.Feedback, &w.feedback, feedbackMeta, feedbackKey, src); err != nil {
		return err
	}
	w.log.Debug("clickhouse batch written", "batch_size", b.Len(), "spans", len(b.Spans), "duration", time.Since(start))
	return nil
}

// builder is implemented by the column builders of tables.go, which also have
// input() (native columns, sent with [Writer.do]), and by those of the mastra layout,
// which have columns() (slices, appended to a clickhouse-go batch).
type builder[T any] interface {
	reset(rows int)
	add(row *T) error
}

// sourceID identifies the Kafka records a batch was built from.
type sourceID struct {
	sum uint64
	ok  bool // false when the batch has no sources: no token is sent
}

// sourcesDigest hashes the batch's source ranges, sorted, since the pipeline builds
// them from a map.
func sourcesDigest(src []pipeline.SourceRange) sourceID {
	if len(src) == 0 {
		return sourceID{}
	}
	s := slices.Clone(src)
	slices.SortFunc(s, func(a, b pipeline.SourceRange) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition),
			cmp.Compare(a.First, b.First), cmp.Compare(a.Last, b.Last))
	})
	h := xxhash.New()
	var buf [20]byte
	for _, r := range s {
		_, _ = h.WriteString(r.Topic)
		b := binary.LittleEndian.AppendUint32(buf[:0], uint32(r.Partition))
		b = binary.LittleEndian.AppendUint64(b, uint64(r.First))
		b = binary.LittleEndian.AppendUint64(b, uint64(r.Last))
		_, _ = h.Write(b)
	}
	return sourceID{sum: h.Sum64(), ok: true}
}

// dedupToken is the insert_deduplication_token of chunk i of n of a table's rows. The
// sources make it unique per batch; the table and chunk per insert; the digest of the
// chunk's row keys (ids, and versions for spans) guards against reused offsets (a
// topic deleted and created again) silently dropping new rows.
func dedupToken(table string, i, n int, src sourceID, keys uint64) string {
	if !src.ok {
		return ""
	}
	return fmt.Sprintf("spanpipe:%s:%d/%d:%016x:%016x", table, i, n, src.sum, keys)
}

type rowMeta struct {
	day  int32 // partition
	size int   // estimated bytes
}

type limits struct {
	rows, parts int
	bytes       int64
}

// plan splits rows into inserts: rows are ordered by partition (stable, so rows with
// one key keep their order), and an insert is closed when it would exceed the row,
// byte or partition limit. A row larger than the byte limit goes alone. The result
// depends only on the rows and the limits, so a retried batch is split the same way
// and its inserts carry the same tokens.
func plan(meta []rowMeta, lim limits) [][]int {
	idx := make([]int, len(meta))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(meta[a].day, meta[b].day) })
	var (
		out   [][]int
		cur   []int
		bytes int64
		parts int
		last  int32
	)
	for _, i := range idx {
		m := meta[i]
		newPart := len(cur) == 0 || m.day != last
		if len(cur) > 0 && (len(cur) >= lim.rows || bytes+int64(m.size) > lim.bytes || (newPart && parts >= lim.parts)) {
			out = append(out, cur)
			cur, bytes, parts, newPart = nil, 0, 0, true
		}
		if newPart {
			parts++
		}
		cur = append(cur, i)
		bytes += int64(m.size)
		last = m.day
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func (w *Writer) limits() limits {
	return limits{rows: w.cfg.MaxRowsPerInsert, bytes: w.cfg.MaxBytesPerInsert, parts: w.cfg.MaxPartitionsPerInsert}
}

// writeTable inserts the non-nil rows of one signal.
func writeTable[T any, B builder[T]](ctx context.Context, w *Writer, t *table, rows []*T, cols B,
	meta func(*T) (int32, int), key func(*xxhash.Digest, *T), src sourceID,
) error {
	if slices.Contains(rows, nil) {
		rows = slices.DeleteFunc(slices.Clone(rows), func(r *T) bool { return r == nil })
	}
	if len(rows) == 0 {
		return nil
	}
	metas := make([]rowMeta, len(rows))
	for i, r := range rows {
		metas[i].day, metas[i].size = meta(r)
	}
	chunks := plan(metas, w.limits())
	h := xxhash.New()
	for i, chunk := range chunks {
		cols.reset(len(chunk))
		h.Reset()
		for _, j := range chunk {
			if err := cols.add(rows[j]); err != nil {
				cols.reset(0) // drop references to the batch
				return pipeline.Permanent(fmt.Errorf("clickhouse: insert into %s: %w", t.name, err))
			}
			key(h, rows[j])
		}
		token := dedupToken(t.name, i, len(chunks), src, h.Sum64())
		var err error
		switch c := any(cols).(type) {
		case interface{ input() proto.Input }:
			err = w.insertNative(ctx, t, len(chunk), c.input(), token)
		case interface{ columns() []any }:
			err = w.insert(ctx, t, len(chunk), c.columns(), token)
		}
		cols.reset(0)
		if err != nil {
			return err
		}
	}
	return nil
}

// insertSettings are the settings of every INSERT.
func (w *Writer) insertSettings(token string) ch.Settings {
	s := ch.Settings{
		// Our own split guarantees the limit; sending it makes the server agree.
		"max_partitions_per_insert_block": w.cfg.MaxPartitionsPerInsert,
	}
	if w.cfg.AsyncInsert {
		s["async_insert"] = 1
		s["wait_for_async_insert"] = 1 // acknowledge only what is written
		if w.cfg.Replicated {
			s["async_insert_deduplicate"] = 1
		}
	} else {
		// Pinned: async_insert is on by default in recent servers.
		s["async_insert"] = 0
	}
	if token != "" {
		s["insert_deduplication_token"] = token
	}
	if w.cfg.Cluster != "" {
		// Insert into the shards before acknowledging: the default queues the data on
		// the node we talk to and acknowledges before it is on any shard.
		s["insert_distributed_sync"] = 1
	}
	return s
}

// insert sends one INSERT of the given columns through clickhouse-go and records its
// metrics.
func (w *Writer) insert(ctx context.Context, t *table, rows int, cols []any, token string) error {
	start := time.Now()
	err := w.send(ctx, t, rows, cols, token)
	w.observe(t, rows, start, err)
	return err
}

// insertNative sends one INSERT of native columns and records its metrics. The
// server checks the columns' names and types against the table: a mismatch is an
// error it cannot take back (code 16, 53, ...), classified permanent.
func (w *Writer) insertNative(ctx context.Context, t *table, rows int, in proto.Input, token string) error {
	start := time.Now()
	err := w.do(ctx, chgo.Query{Body: w.insertSQL[t] + " VALUES", Input: in, Settings: nativeSettings(w.insertSettings(token))})
	if err != nil {
		err = classify(fmt.Errorf("clickhouse: insert %d rows into %s: %w", rows, t.name, err))
	}
	w.observe(t, rows, start, err)
	return err
}

func (w *Writer) observe(t *table, rows int, start time.Time, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	w.m.inserts.WithLabelValues(sinkName, t.name, outcome).Inc()
	w.m.duration.WithLabelValues(sinkName, t.name).Observe(time.Since(start).Seconds())
	if err == nil {
		w.m.rows.WithLabelValues(sinkName, t.name).Observe(float64(rows))
	}
}

// nativeSettings converts settings for ch-go, in a stable order.
func nativeSettings(s ch.Settings) []chgo.Setting {
	out := make([]chgo.Setting, 0, len(s))
	for _, k := range slices.Sorted(maps.Keys(s)) {
		out = append(out, chgo.Setting{Key: k, Value: fmt.Sprint(s[k])})
	}
	return out
}

// nativeConn is the writer's connection for the inserts of native columns: ch-go's
// client, which takes the columns as they are, where clickhouse-go converts every
// value through reflection into column buffers it allocates per insert. Writes are
// serialised, so one connection is enough. It is dialled on first use and after any
// failed insert, trying the addresses in order as the clickhouse-go pool does.
type nativeConn struct {
	cfg    Config
	client *chgo.Client
}

func (n *nativeConn) do(ctx context.Context, q chgo.Query) error {
	// ch-go's ReadTimeout only paces its reads (it keeps waiting after one expires),
	// so the insert as a whole is bounded by read_timeout.
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ReadTimeout)
	defer cancel()
	if n.client == nil {
		c, err := n.dial(ctx)
		if err != nil {
			return err
		}
		n.client = c
	}
	err := n.client.Do(ctx, q)
	if err != nil {
		// After a failure mid-insert the connection may hold the rest of the
		// exchange: start the next insert on a new one.
		n.close()
	}
	return err
}

func (n *nativeConn) dial(ctx context.Context) (*chgo.Client, error) {
	tlsCfg, err := n.cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	method := map[string]chgo.Compression{"lz4": chgo.CompressionLZ4, "zstd": chgo.CompressionZSTD, "none": chgo.CompressionDisabled}
	var errs []error
	for _, addr := range n.cfg.Addr {
		c, err := chgo.Dial(ctx, chgo.Options{
			Address: addr,
			// The writer's database, which its user may use (ch-go would say
			// "default" for an empty one, which such a user may not).
			Database:    n.cfg.Database,
			User:        n.cfg.Username,
			Password:    n.cfg.password(),
			Compression: method[n.cfg.compression()],
			ClientName:  "spanpipe",
			TLS:         tlsCfg,
			DialTimeout: n.cfg.DialTimeout,
			ReadTimeout: n.cfg.ReadTimeout,
		})
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (n *nativeConn) close() {
	if n.client != nil {
		_ = n.client.Close()
		n.client = nil
	}
}

func (w *Writer) send(ctx context.Context, t *table, rows int, cols []any, token string) error {
	batch, err := w.prepare(ctx, w.insertSQL[t], w.insertSettings(token))
	if err != nil {
		return classify(fmt.Errorf("clickhouse: prepare insert into %s: %w", t.name, err))
	}
	if err := checkColumns(batch, t); err != nil {
		_ = batch.Abort()
		return pipeline.Permanent(err)
	}
	for i, c := range cols {
		if err := batch.Column(i).Append(c); err != nil {
			_ = batch.Abort()
			return pipeline.Permanent(fmt.Errorf("clickhouse: insert into %s: column %s: %w", t.name, t.cols[i].name, err))
		}
	}
	if err := batch.Send(); err != nil {
		return classify(fmt.Errorf("clickhouse: insert %d rows into %s: %w", rows, t.name, err))
	}
	return nil
}

// checkColumns makes sure the server's insert header has the columns the writer
// appends, in its order.
func checkColumns(batch driver.Batch, t *table) error {
	got := batch.Columns()
	if len(got) != len(t.cols) {
		return fmt.Errorf("clickhouse: insert into %s: server expects %d columns, writer has %d: schema mismatch", t.name, len(got), len(t.cols))
	}
	for i, c := range got {
		if c.Name() != t.cols[i].name {
			return fmt.Errorf("clickhouse: insert into %s: column %d is %s on the server, %s in the writer: schema mismatch", t.name, i, c.Name(), t.cols[i].name)
		}
	}
	return nil
}

// Close closes the connection pool. Writes after Close return [ErrClosed]. Close
// waits for a running Write and is idempotent.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	w.native.close()
	if err := w.conn.Close(); err != nil {
		return fmt.Errorf("clickhouse: close: %w", err)
	}
	w.log.Info("clickhouse sink closed")
	return nil
}
