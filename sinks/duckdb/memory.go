package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync"
	"time"
)

// allocatorConfEnv is the variable DuckDB's bundled jemalloc (its Linux builds) reads
// its options from when the process starts: a user who sets it keeps their options.
const allocatorConfEnv = "DUCKDB_JE_MALLOC_CONF"

var allocatorOnce sync.Once

// configureAllocator makes DuckDB's jemalloc return the pages DuckDB frees to the
// operating system at once, unless allocatorConfEnv is set. DuckDB builds it to keep
// them for a second (dirty and muzzy decay of 1000 ms), and a checkpoint frees tens
// of MB within that second: the writer alone (2M spans of `spanpipe bench`'s
// workload through Writer.Write) peaked at 215 and 219 MB with them kept, 204 and
// 202 MB without, for 6–18% more CPU (madvise). Every opening of a database in this
// package calls it; jemalloc has started by then, so the options are set on it
// (setJemallocDecay) rather than through the environment.
func configureAllocator() {
	allocatorOnce.Do(func() {
		if _, set := os.LookupEnv(allocatorConfEnv); !set {
			setJemallocDecay(0)
		}
	})
}

// allocatorFlushEvery is how often, at most, a Write hands the memory DuckDB freed
// back to the operating system, besides after every checkpoint (see flushAllocator).
const allocatorFlushEvery = 250 * time.Millisecond

// allocatorFlush decides when a Write flushes DuckDB's allocators.
type allocatorFlush struct {
	wal     string // the database file's write-ahead log; "" for ":memory:"
	walSize int64
	last    time.Time
	done    int // flushes so far, for tests
	evicted int // evictWritten's evictions so far, for tests
	// compacted says a background compaction finished since the last flush: it read
	// span_versions' key_hash and seq columns (and, when it found versions, the keys),
	// whose blocks stay cached like those a checkpoint writes.
	compacted bool
}

// readMemoryLimit notes the memory_limit in force, which flushAllocator sets again,
// unless another Writer of the instance has, and the ceiling raiseMemoryLimit takes
// it to.
func (w *Writer) readMemoryLimit(ctx context.Context) error {
	w.memCeiling = memoryCeiling()
	if w.limit.get() == "" {
		var limit string
		if err := w.db.QueryRowContext(ctx, "SELECT current_setting('memory_limit')").Scan(&limit); err != nil {
			return fmt.Errorf("duckdb: read memory_limit: %w", err)
		}
		w.limit.set(limit)
	}
	if w.cfg.Path != ":memory:" {
		w.flush.wal = w.cfg.Path + ".wal"
	}
	w.flush.last = time.Now()
	return nil
}

// flushAllocator returns the memory DuckDB freed to the operating system after a
// checkpoint (the write-ahead log shrank) and at most every allocatorFlushEvery
// otherwise. DuckDB frees through its bundled jemalloc, which as DuckDB builds it
// keeps freed pages for a second before returning them (configureAllocator changes
// that unless the user set its options), and glibc's malloc, which keeps freed
// memory below its trim threshold: a checkpoint every 25k spans or so frees the rows
// it wrote out and its compression buffers, and the process's RSS kept what they
// had used (the writer alone, 150k spans: 257 MB peak, of which jemalloc held
// ~100 MB freed and glibc ~45 MB). Setting memory_limit again, to the same value, is
// DuckDB's way to flush both (BufferPool::SetLimit evicts to the limit, which is
// already met, then calls Allocator::FlushAll: jemalloc's purge of every arena and
// malloc_trim). It costs ~3 ms on a loaded machine, hence not after every batch.
// A failed flush is only logged: the batch is stored.
func (w *Writer) flushAllocator(ctx context.Context, conn *sql.Conn) {
	checkpointed := false
	if w.flush.wal != "" {
		if st, err := os.Stat(w.flush.wal); err == nil {
			checkpointed = st.Size() < w.flush.walSize
			w.flush.walSize = st.Size()
		} else {
			checkpointed, w.flush.walSize = w.flush.walSize > 0, 0 // DuckDB removes an empty log
		}
	}
	evict := checkpointed || w.flush.compacted
	if !evict && time.Since(w.flush.last) < allocatorFlushEvery {
		return
	}
	w.flush.last = time.Now()
	w.flush.done++
	if evict {
		w.flush.compacted = false
		w.evictWritten(ctx, conn)
	}
	if _, err := conn.ExecContext(ctx, "SET memory_limit = '"+w.limit.get()+"'"); err != nil {
		w.log.Warn("duckdb: returning freed memory failed", "err", err)
	}
}

// evictHeadroom is what evictWritten leaves DuckDB beyond the memory it holds for
// anything but cached blocks of the file, so that a query of the explorer running in
// the same process at that moment still finds room. A variable for tests.
var evictHeadroom int64 = 8 << 20

// evictAbove is the cached size of the file below which an eviction is not worth its
// statements. A variable for tests.
var evictAbove int64 = 4 << 20

// evictWritten drops the blocks of the database file that DuckDB's buffer pool keeps
// cached after a checkpoint (tag BASE_TABLE): the blocks the checkpoint just wrote.
// The writer only appends, so it never reads them, yet they kept the pool filled up
// to memory_limit (`spanpipe bench --sink duckdb`: 25–38 MB of the 91 MB pool at the
// RSS peak). DuckDB has no statement that only evicts; lowering memory_limit to what
// the rest of the pool holds evicts the unpinned cached blocks first, and
// flushAllocator then sets the limit back. With it, that bench's RSS at 25 / 50 /
// 100% of the drain was 231–253 MB against 246–275; its peak, just before a
// checkpoint, barely moved. The explorer and the compaction read the blocks again
// from the file, which the operating system caches; a statement of theirs that
// needs more than the headroom in that instant fails like any other and is retried.
// A compaction leaves the blocks it scanned cached the same way (key_hash and seq of
// the whole table: 15 MB of a 2M-span file), so the next write evicts after one too:
// the writer alone, 2M spans, then grew from 161–163 to 197–204 MB instead of
// 161–164 to 220–231 MB. A failure here is only logged.
func (w *Writer) evictWritten(ctx context.Context, conn *sql.Conn) {
	var other, cached int64
	err := conn.QueryRowContext(ctx, `SELECT
		coalesce(sum(memory_usage_bytes) FILTER (WHERE tag <> 'BASE_TABLE'), 0)::BIGINT,
		coalesce(sum(memory_usage_bytes) FILTER (WHERE tag = 'BASE_TABLE'), 0)::BIGINT
		FROM duckdb_memory()`).Scan(&other, &cached)
	if err != nil {
		w.log.Warn("duckdb: reading the buffer pool's usage failed", "err", err)
		return
	}
	if cached < evictAbove {
		return
	}
	w.flush.evicted++
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET memory_limit = '%dB'", other+evictHeadroom)); err != nil {
		w.log.Warn("duckdb: evicting cached blocks of the file failed", "err", err)
	}
}
