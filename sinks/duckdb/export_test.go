package duckdb

import (
	"context"
	"database/sql/driver"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/schema"
)

// SpanVersionRow returns the values the writer appends to span_versions for s, so
// that benchmarks can append the same rows without the writer.
func SpanVersionRow(s *schema.Span, seq int64, now any) ([]driver.Value, error) {
	row, err := spanRow(nil, s)
	return append(row, seq, now, now, KeyHash(s.TraceID, s.SpanID)), err
}

// SetCompaction sets the tail that starts a background compaction and a function
// that each compaction runs inside its transaction, after its delete. Call it before
// the first Write.
func (w *Writer) SetCompaction(every int64, hook func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.compactor.every, w.compactor.testHook = every, hook
}

// SetBeforeCommit sets a function that each write runs in its transaction, before
// its COMMIT. Call it before the first Write.
func (w *Writer) SetBeforeCommit(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.beforeCommit = f
}

// SetCompactionAfter sets the age of the last compaction after which any tail is
// compacted (0: never).
func (w *Writer) SetCompactionAfter(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.compactor.after = d
}

// AllocatorFlushes is how many times Write flushed DuckDB's allocators.
func (w *Writer) AllocatorFlushes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flush.done
}

// Evictions is how many times Write evicted the cached blocks of the file.
func (w *Writer) Evictions() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flush.evicted
}

// SetEvictHeadroom sets what an eviction leaves of cached blocks, until the test ends.
func SetEvictHeadroom(t testing.TB, n int64) {
	old := evictHeadroom
	evictHeadroom = n
	t.Cleanup(func() { evictHeadroom = old })
}

// SetEvictAbove sets the cached size below which no eviction is made, until the test
// ends.
func SetEvictAbove(t testing.TB, n int64) {
	old := evictAbove
	evictAbove = n
	t.Cleanup(func() { evictAbove = old })
}

// CompactedSinceFlush tells whether a background compaction ended since the last
// flush of the allocators.
func (w *Writer) CompactedSinceFlush() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flush.compacted
}

// KeyHash is the key_hash of a span's rows.
func KeyHash(traceID, spanID string) uint64 {
	_, h := keyHash(nil, traceID, spanID)
	return h
}

// Compact runs a compaction now, on the caller's goroutine, and returns how many
// rows it deleted. No background compaction must be running.
func (w *Writer) Compact(ctx context.Context) (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	res, err := w.compact(ctx)
	if err == nil {
		w.counted(res)
	}
	return res.deleted, err
}

// JemallocDecay is the dirty decay of DuckDB's jemalloc, for new arenas and the
// first one, in milliseconds; -2 where there is none.
func JemallocDecay() (newArenas, arena0 int) { return jemallocDecay() }

// StorageAtLeast is storageAtLeast, for its table test.
var StorageAtLeast = storageAtLeast

// RowGroupFill is how many rows the writer counts in span_versions' last row group.
func (w *Writer) RowGroupFill() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.groups.filled
}

// DuckDBSize is duckDBSize, for its table test.
var DuckDBSize = duckDBSize

// SetMemoryCeiling sets how far the writer may raise memory_limit. Call it before the
// first Write.
func (w *Writer) SetMemoryCeiling(n int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.memCeiling = n
}

// NoteInvalidated passes err to the writer as a failed statement's error.
func (w *Writer) NoteInvalidated(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.noteInvalidated(err)
}
