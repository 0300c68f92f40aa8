package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
)

// A checkpoint that fails (a full disk) invalidates the attached database: DuckDB
// refuses every statement on it until it is detached and attached again, which
// replays its write-ahead log. Without that, a consumer whose disk filled up once
// dead-lettered every batch after it, freed disk or not, until restarted.

// invalidatedDB reports whether err is DuckDB's refusal of an invalidated database.
func invalidatedDB(err error) bool {
	return err != nil && strings.Contains(err.Error(), "has been invalidated")
}

// diskFull reports whether err is the operating system's refusal to write more:
// no space left, a file size limit (RLIMIT_FSIZE), a disk quota.
func diskFull(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "No space left on device") || strings.Contains(msg, "File too large") ||
		strings.Contains(msg, "Disk quota exceeded")
}

// outOfMemory reports whether err is DuckDB running out of its memory_limit.
func outOfMemory(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "Out of Memory") || strings.Contains(msg, "failed to pin block") ||
		strings.Contains(msg, "could not allocate block")
}

// noteInvalidated marks the database for attaching again when err says DuckDB
// invalidated it, and the Writer broken (see Broken) when err is DuckDB's FATAL
// error, which ends the whole instance. The caller holds w.mu.
func (w *Writer) noteInvalidated(err error) {
	if err == nil {
		return
	}
	if msg := err.Error(); strings.Contains(msg, "FATAL Error") || strings.Contains(msg, "must be restarted") {
		// Attaching again cannot help, a new process can.
		w.invalid = true
		if w.fatal.Load() == nil {
			w.fatal.Store(&err)
			w.log.Error("duckdb: DuckDB stopped after a fatal error; restart spanpipe (/livez fails): writes wait "+
				"until then, and the records stay in Kafka, uncommitted", "path", w.cfg.Path, "err", err)
		}
		return
	}
	if w.invalid || !invalidatedDB(err) {
		return
	}
	w.invalid, w.invalidOOM = true, outOfMemory(err)
	w.log.Error("duckdb: the database was invalidated (a checkpoint failed); writes wait, and each one "+
		"attaches it again first, until that succeeds", "path", w.cfg.Path, "err", err)
}

// reattachOn detaches the invalidated database and attaches it again (statement
// attach) on e, a connection whose default catalog is not the file's.
func reattachOn(e driver.ExecerContext, attach string) error {
	for _, q := range []string{"DETACH DATABASE IF EXISTS " + catalogName, attach, "USE " + catalogName} {
		if _, err := e.ExecContext(context.Background(), q, nil); err != nil {
			return fmt.Errorf("attach the invalidated database again (%s): %w", q, err)
		}
	}
	return nil
}

// reattach attaches the invalidated database again, through a new connection (see
// openDB's initConn), then reloads what the writer keeps of it. The caller holds w.mu
// and w.seq.mu.
func (w *Writer) reattach(ctx context.Context) error {
	if c := w.compactor.cancel; c != nil {
		c() // it fails on the invalidated database anyway, and keeps it in use
	}
	dc, err := w.connector.Connect(ctx)
	if err != nil {
		return fmt.Errorf("duckdb: attach %s again: %w", w.cfg.Path, err)
	}
	_ = dc.Close()
	conn, err := w.writeConn(ctx)
	if err != nil {
		return err
	}
	if err := conn.QueryRowContext(ctx, loadNextSeq).Scan(&w.seq.next); err != nil {
		return fmt.Errorf("duckdb: read next span seq after attaching %s again: %w", w.cfg.Path, err)
	}
	if err := conn.QueryRowContext(ctx, compactionState).Scan(&w.compacted, &w.tail); err != nil {
		return fmt.Errorf("duckdb: read spans compaction state after attaching %s again: %w", w.cfg.Path, err)
	}
	w.groups.pending, w.groups.walSize = false, 0
	if err := w.loadRowGroups(ctx, conn); err != nil {
		return err
	}
	w.invalid = false
	w.log.Info("duckdb: database attached again after it was invalidated", "path", w.cfg.Path)
	if w.invalidOOM {
		// The checkpoint that failed runs again at the next one, on the same rows.
		w.invalidOOM = false
		w.doubleMemoryLimit(ctx, conn, "a checkpoint ran out of it")
	}
	return nil
}

// Broken returns DuckDB's FATAL error once one ended the database instance in this
// process (a rollback that ran out of memory does): nothing can be written until the
// process restarts, and a restart replays the write-ahead log. spanpipe consume's
// /livez fails on it, so that an orchestrator restarts the process. nil otherwise.
func (w *Writer) Broken() error {
	if p := w.fatal.Load(); p != nil {
		return fmt.Errorf("duckdb: %s: %w", w.cfg.Path, *p)
	}
	return nil
}

// doubleMemoryLimit raises memory_limit to twice what it is (see raiseMemoryLimit),
// for a write or checkpoint that ran out of it when nothing said how much it needs.
func (w *Writer) doubleMemoryLimit(ctx context.Context, conn *sql.Conn, why string, args ...any) bool {
	cur, _ := duckDBSize(w.limit.get()) // unreadable: 0, which raiseMemoryLimit refuses
	return w.raiseMemoryLimit(ctx, conn, 2*cur, why, args...)
}

// raiseMemoryLimit raises DuckDB's memory_limit to to, or w.memCeiling when lower,
// and reports whether it rose. A checkpoint holds the values of a column for 2,048
// rows in memory at once, so spans or logs whose values are tens of KB need more
// than a memory_limit sized for ordinary ones: 2,048 outputs of 60 KB filled 96MB,
// and 270 spans of 500 KB did. Checkpointing sooner does not help there, a
// checkpoint that failed invalidated the database, and a rollback that failed for
// memory ended DuckDB altogether ("FATAL Error", until the process restarts). Before the writer raised the limit, such spans were retried,
// then dead-lettered, batch after batch (20,000 spans of 40 KB took 13 minutes to
// drain, mostly into dead letters). The warning names the limit to configure; the
// raised one stays until the process ends. why says what asked for it.
func (w *Writer) raiseMemoryLimit(ctx context.Context, conn *sql.Conn, to int64, why string, args ...any) bool {
	from := w.limit.get()
	cur, ok := duckDBSize(from)
	next := min(to, w.memCeiling) >> 10 << 10
	if !ok || next <= cur {
		w.log.Error("duckdb: memory_limit is at or above the ceiling the writer raises it to (half of the memory "+
			"of the machine or cgroup), and "+
			why+"; a checkpoint holds 2,048 values of a column at once", append(args, "memory_limit", from,
			"ceiling_bytes", w.memCeiling)...)
		return false
	}
	// Set (and set again by flushAllocator) exactly as requested: DuckDB prints it
	// rounded.
	set := fmt.Sprintf("%d KiB", next>>10)
	if _, err := conn.ExecContext(ctx, "SET memory_limit = '"+set+"'"); err != nil {
		w.log.Warn("duckdb: raise memory_limit", "err", err)
		return false
	}
	w.limit.set(set)
	w.groups.budget = next / 2
	w.memGauge.Set(float64(next))
	w.log.Warn("duckdb: raised memory_limit: "+why+" (a checkpoint holds 2,048 values of a column at once); "+
		"set sink.duckdb.memory_limit to the new value to start there", append(args,
		"from", fmt.Sprintf("%.1f MiB", float64(cur)/(1<<20)), "to", fmt.Sprintf("%.1f MiB", float64(next)/(1<<20)),
		"ceiling_bytes", w.memCeiling)...)
	return true
}

// checkpointValues is how many rows' values a checkpoint holds in memory at once
// (DuckDB's vector size). checkpointNeed is the memory_limit that fitMemoryLimit
// asks for them, in percent of their bytes: besides the values it reads, the
// checkpoint writes them compressed, and the rows not checkpointed yet share the
// pool (logs of 200 KB at 125% still ended DuckDB with a FATAL error). checkpointMargin
// is what a raise adds beyond that, so that slightly larger rows next do not ask
// for another.
const (
	checkpointValues = 2048
	checkpointNeed   = 200
	checkpointMargin = 125
)

// rowWindow sums the variable-length values of a table's last checkpointValues rows
// written: what a checkpoint may hold of them at once. A write that fails leaves its
// rows counted, and its retry counts them again: an estimate on the high side.
type rowWindow struct {
	sizes [checkpointValues]int64
	next  int
	sum   int64
}

func (r *rowWindow) add(n int) {
	r.sum += int64(n) - r.sizes[r.next]
	r.sizes[r.next] = int64(n)
	r.next = (r.next + 1) % checkpointValues
}

// spanValueBytes is what a span's row holds in values of any length.
func spanValueBytes(s *schema.Span) int {
	n := len(s.Input) + len(s.Output) + len(s.Attributes) + len(s.Metadata) + len(s.RequestContext) + len(s.Name)
	if e := s.ErrorInfo; e != nil {
		n += len(e.Message) + len(e.Stack) + len(e.Details)
	}
	return n
}

// fitMemoryLimit raises memory_limit before a write whose rows, with those before
// them, need it: the values of the last 2,048 rows of a table, with a margin.
// Raising only when a write failed cost a failed checkpoint (an invalidated
// database) per doubling, and for logs a FATAL error. One large value among small
// ones needs little, and raises nothing.
func (w *Writer) fitMemoryLimit(ctx context.Context, conn *sql.Conn, b *pipeline.Batch) {
	for _, s := range b.Spans {
		w.window.spans.add(spanValueBytes(s))
	}
	for _, l := range b.Logs {
		w.window.logs.add(len(l.Message) + len(l.Data) + len(l.Metadata))
	}
	window := max(w.window.spans.sum, w.window.logs.sum)
	need := window * checkpointNeed / 100
	cur, ok := duckDBSize(w.limit.get())
	if !ok || need <= cur || cur >= w.memCeiling {
		return
	}
	// A quarter more again, or twice the limit when more, so that the next
	// batches' rows, larger or filling the window, ask for few more raises.
	w.raiseMemoryLimit(ctx, conn, max(need*checkpointMargin/100, 2*cur),
		"the values of the last 2,048 rows written to a table would not fit", "window_bytes", window)
}

// memoryCeiling is half of the memory this process may use: the machine's, or its
// cgroup's limit when lower (a container), so that a raised memory_limit leaves the
// rest to the Go heap and the operating system. 2 GiB when neither can be read.
func memoryCeiling() int64 {
	total := int64(0)
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				if err == nil {
					total = kb << 10
				}
			}
		}
	}
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
			total = n
		}
	}
	if total == 0 {
		return 2 << 30
	}
	return total / 2
}
