package duckdb

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/spanpipe/spanpipe/schema"
)

// Statements of compaction (migrations 0005, 0008 and 0009). A compaction covers the rows
// up to the last seq committed when it starts: the Writers of a database commit their
// seq ranges in order (see seqCounter), so every row up to that seq is in the
// compaction's snapshot, and rows written while it runs are after it (the next
// compaction's tail).
const (
	// compactionBounds returns compacted_seq and the rows between it and $1, the last
	// seq committed: the tail that this compaction covers.
	compactionBounds = `SELECT c.compacted_seq,
		(SELECT count(*) FROM main.span_versions v WHERE v.seq > c.compacted_seq AND v.seq <= $1)
		FROM main.spanpipe_span_compaction c`
	// duplicateKeys looks, among the rows up to $2, for the key hashes (migration
	// 0010) that a row of the tail (after $1) shares with another row, and returns
	// how many there are and the oldest seq of their rows: every version of a span
	// with more than one is at that seq or after it. It scans key_hash and seq alone,
	// and the tail's hashes are its build side.
	duplicateKeys = `SELECT count(*), coalesce(min(first), 0) FROM (
		SELECT min(seq) AS first FROM main.span_versions
		WHERE seq <= $2 AND key_hash IN (SELECT key_hash FROM main.span_versions WHERE seq > $1 AND seq <= $2)
		GROUP BY key_hash HAVING count(*) > 1)`
	// compactSpans deletes the versions from $1 (duplicateKeys' oldest seq) to $2
	// that a version of the same span supersedes, in the spans view's order. Rows up
	// to compacted_seq are one per span, so a hash with two rows in that range has
	// one in the tail (or is a collision, which the ranking by keys sorts out); seq's
	// zone maps keep the scans to the range.
	compactSpans = `DELETE FROM main.span_versions WHERE seq IN (
		SELECT v.seq FROM main.span_versions v
		SEMI JOIN (SELECT key_hash FROM main.span_versions WHERE seq >= $1 AND seq <= $2
			GROUP BY key_hash HAVING count(*) > 1) d ON d.key_hash = v.key_hash
		WHERE v.seq >= $1 AND v.seq <= $2
		QUALIFY row_number() OVER (PARTITION BY v.trace_id, v.span_id ORDER BY v.version DESC, v.rank DESC, v.seq DESC) > 1)`
	markCompacted = "UPDATE main.spanpipe_span_compaction SET compacted_seq = $1"
	// markHandedOut keeps spanpipe_span_state's next_seq, which writes no longer
	// update (see seqCounter), up to date as of the compaction: after a Close, which
	// compacts the whole tail, it is exact again, and the previous spanpipe version,
	// which hands out numbers from it, can open the file without reusing one.
	markHandedOut = "UPDATE main.spanpipe_span_state SET next_seq = greatest(next_seq, $1 + 1)"
	// compactionState counts the rows up to compacted_seq and after it (the tail).
	compactionState = `SELECT count(*) FILTER (v.seq <= c.compacted_seq), count(*) FILTER (v.seq > c.compacted_seq)
		FROM main.span_versions v, main.spanpipe_span_compaction c`
)

// compactEvery is the tail, in rows, that triggers a compaction. Compacting reads the
// key hashes of the whole table, so it runs once per this many rows rather than per
// batch; readers of the spans view rank the tail's spans instead, which stays cheap
// at this size.
const compactEvery = 100_000

// compactAfter is the age of the last compaction after which any tail is compacted,
// however small: explorer reads resolve the tail's versions against the whole table,
// so a slow trickle of writes (a dev session, a quiet hour) must not leave tens of
// thousands of rows in the tail for long. The wait grows to 20 times the last
// compaction's duration, so that on a large table compacting stays a small share of
// a core.
const compactAfter = 10 * time.Second

// idleCheck is how often a Writer with no writes looks at the age of its tail.
const idleCheck = time.Second

// closeCompactTimeout bounds the compaction on Close, which has no context.
const closeCompactTimeout = 30 * time.Second

// compactor runs one compaction at a time in the background, on a connection of its
// own, so that writes go on while it runs: a compaction only deletes rows that are
// already committed and records its progress in a table that writes never touch, so
// the two never conflict. Its fields are guarded by Writer.mu, except wg.
type compactor struct {
	every   int64              // the minimum tail that triggers a compaction
	after   time.Duration      // the age of the last compaction that triggers one of any tail (0: never)
	last    time.Time          // when the last compaction ended (or the Writer opened)
	took    time.Duration      // how long the last compaction ran
	stop    chan struct{}      // closed by Close: ends the idle check
	idle    sync.WaitGroup     // the idle check goroutine
	running bool               // a compaction goroutine has been started and not finished
	cancel  context.CancelFunc // cancels the running compaction
	wg      sync.WaitGroup     // the running compaction goroutine; Close waits for it
	// testHook, when set, runs inside the compaction's transaction after its delete.
	testHook func()
}

// compaction is what one compaction did: it covered tail rows after compacted_seq
// and deleted deleted of them or of the rows before.
type compaction struct {
	tail, deleted int64
}

// maybeCompact starts a background compaction of span_versions when none is running
// and the tail has grown past compactEvery, or a tenth of the table, whichever is
// larger, so that the cost of compacting stays a fixed share of the cost of writing
// as the table grows; or when there is a tail and the last compaction is older than
// compactAfter (see there). The caller holds w.mu.
func (w *Writer) maybeCompact() {
	c := &w.compactor
	if c.running || w.tail == 0 {
		return
	}
	due := w.tail >= max(c.every, w.compacted/10) ||
		c.after > 0 && time.Since(c.last) >= max(c.after, 20*c.took)
	if !due {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.running, c.cancel = true, cancel
	c.wg.Go(func() {
		defer cancel()
		start := time.Now()
		res, err := w.compact(ctx)
		w.mu.Lock()
		defer w.mu.Unlock()
		c.running, c.cancel = false, nil
		c.last, c.took = time.Now(), time.Since(start)
		switch {
		case err == nil:
			w.counted(res)
			w.flush.compacted = true
		case ctx.Err() == nil:
			// The view hides superseded versions either way; a later write tries again.
			w.log.Warn("duckdb compaction failed", "err", err)
		}
	})
}

// counted moves what a compaction covered from w's tail count to its compacted
// count. The caller holds w.mu.
func (w *Writer) counted(res compaction) {
	w.compacted += res.tail - res.deleted
	w.tail -= res.tail
	w.groups.deleted = w.groups.deleted || res.deleted > 0
}

// startIdleCheck starts the goroutine that compacts an old tail when no writes come
// to do it (maybeCompact otherwise runs after each write); stopCompaction ends it.
func (w *Writer) startIdleCheck() {
	c := &w.compactor
	c.last, c.stop = time.Now(), make(chan struct{})
	c.idle.Go(func() {
		t := time.NewTicker(idleCheck)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
			w.mu.Lock()
			if !w.closed {
				w.maybeCompact()
			}
			w.mu.Unlock()
		}
	})
}

// stopCompaction ends the idle check, cancels the running background compaction, if
// any, and waits for both. The caller must not hold w.mu (both take it).
func (w *Writer) stopCompaction() {
	close(w.compactor.stop)
	w.compactor.idle.Wait()
	w.mu.Lock()
	cancel := w.compactor.cancel
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	w.compactor.wg.Wait()
}

// compact deletes the versions of spans that newer ones supersede and moves
// compacted_seq up to the last seq handed out, in one transaction on a connection
// of its own. It does not touch w's counters.
func (w *Writer) compact(ctx context.Context) (res compaction, err error) {
	start := time.Now()
	// Every seq up to the counter's next-1 is committed (see seqCounter), so it is in
	// the snapshot of the transaction, which begins after.
	w.seq.mu.Lock()
	to := w.seq.next - 1
	w.seq.mu.Unlock()
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("duckdb: compact spans: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var from int64
	if err := tx.QueryRowContext(ctx, compactionBounds, to).Scan(&from, &res.tail); err != nil {
		return res, fmt.Errorf("duckdb: compact spans: read bounds: %w", err)
	}
	if to <= from {
		return res, tx.Rollback() // nothing written since the last compaction
	}
	var dups, oldest int64
	if err := tx.QueryRowContext(ctx, duplicateKeys, from, to).Scan(&dups, &oldest); err != nil {
		return res, fmt.Errorf("duckdb: compact spans %d to %d: find spans with versions: %w", from+1, to, err)
	}
	if dups > 0 {
		r, err := tx.ExecContext(ctx, compactSpans, oldest, to)
		if err != nil {
			return res, fmt.Errorf("duckdb: compact spans %d to %d: %w", oldest, to, err)
		}
		if res.deleted, err = r.RowsAffected(); err != nil {
			return res, fmt.Errorf("duckdb: compact spans %d to %d: %w", oldest, to, err)
		}
	}
	if w.compactor.testHook != nil {
		w.compactor.testHook()
	}
	if _, err := tx.ExecContext(ctx, markCompacted, to); err != nil {
		return res, fmt.Errorf("duckdb: compact spans %d to %d: record: %w", from+1, to, err)
	}
	if _, err := tx.ExecContext(ctx, markHandedOut, to); err != nil {
		return res, fmt.Errorf("duckdb: compact spans %d to %d: record next seq: %w", from+1, to, err)
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("duckdb: compact spans %d to %d: commit: %w", from+1, to, err)
	}
	w.log.Debug("duckdb spans compacted", "tail", res.tail, "deleted", res.deleted, "duration", time.Since(start))
	return res, nil
}

// compactOnClose compacts whatever tail is left, synchronously, so that the file is
// left compact: readers then rank nothing, and the checkpoint on close reclaims the
// superseded versions' space. The caller holds w.mu, and no compaction is running.
func (w *Writer) compactOnClose() {
	if w.tail == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeCompactTimeout)
	defer cancel()
	if _, err := w.compact(ctx); err != nil {
		w.log.Warn("duckdb compaction on close failed", "err", err)
	}
}

// spanKeyHash is s's key_hash (migration 0010), computed in w's reused buffer.
func (w *Writer) spanKeyHash(s *schema.Span) uint64 {
	var h uint64
	w.key, h = keyHash(w.key, s.TraceID, s.SpanID)
	return h
}

// keyHash returns the first 8 bytes, big-endian, of the MD5 of traceID, '/',
// spanID: what migration 0010 computes in SQL for the rows before it. It builds the
// input in buf and returns it for reuse.
func keyHash(buf []byte, traceID, spanID string) ([]byte, uint64) {
	buf = append(append(append(buf[:0], traceID...), '/'), spanID...)
	sum := md5.Sum(buf)
	return buf, binary.BigEndian.Uint64(sum[:8])
}
