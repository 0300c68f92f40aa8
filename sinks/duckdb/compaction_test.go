package duckdb_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
)

// TestCompactionDoesNotHoldWrites: a compaction runs in the background. While one is
// in the middle of its transaction, writes (newer versions and redelivered older
// ones) complete and readers see every span once, at its newest version; after it,
// and after the compaction on Close, too, and span_versions keeps one row per span.
func TestCompactionDoesNotHoldWrites(t *testing.T) {
	path := dbPath(t)
	traceID := strings.Repeat("d5", 16)
	ids := []string{"0000000000000001", "0000000000000002", "0000000000000003"}
	batch := func(v uint64) *pipeline.Batch {
		b := &pipeline.Batch{Strategy: pipeline.BatchWithUpdates}
		for _, id := range ids {
			b.Spans = append(b.Spans, span(traceID, id, v))
		}
		return b
	}
	inside, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	releaseOnce := func() { once.Do(func() { close(release) }) }
	var first sync.Once
	w := openWriter(t, path)
	// Registered after openWriter's Close, so run before it: a failed test must not
	// leave the compaction hanging.
	t.Cleanup(releaseOnce)
	w.SetCompaction(int64(2*len(ids)), func() {
		first.Do(func() {
			close(inside)
			<-release
		})
	})
	const deadline = 2 * time.Minute // a loaded machine
	wait := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(deadline):
			t.Fatalf("%s: not after %s", what, deadline)
		}
	}
	check := func(stage string, want uint64) {
		t.Helper()
		var rows, distinct, minVersion int64
		if err := w.DB().QueryRowContext(t.Context(),
			`SELECT count(*), count(DISTINCT (trace_id, span_id)), min(version) FROM spans`).Scan(&rows, &distinct, &minVersion); err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
		if rows != int64(len(ids)) || distinct != rows || minVersion != int64(want) {
			t.Errorf("%s: spans has %d rows for %d spans, oldest version %d; want %d rows, version %d",
				stage, rows, distinct, minVersion, len(ids), want)
		}
	}

	write(t, w, batch(1))
	// The tail reaches 6 rows: a compaction starts. Written from a goroutine so that
	// a compaction on the write path fails the test below rather than hanging it.
	go func() { _ = w.Write(context.WithoutCancel(t.Context()), batch(2)) }()
	wait("compaction inside its transaction", inside)

	// The writes must return while the compaction holds its transaction open.
	written := make(chan struct{})
	var werr error
	go func() {
		defer close(written)
		for _, v := range []uint64{3, 1, 2} {
			if werr = w.Write(context.WithoutCancel(t.Context()), batch(v)); werr != nil {
				return
			}
		}
	}()
	wait("writes during a compaction", written)
	if werr != nil {
		t.Fatal(werr)
	}
	check("during a compaction", 3)

	releaseOnce()
	compacted := func() int64 {
		var seq int64
		if err := w.DB().QueryRowContext(t.Context(), "SELECT compacted_seq FROM spanpipe_span_compaction").Scan(&seq); err != nil {
			t.Fatal(err)
		}
		return seq
	}
	for start := time.Now(); compacted() != int64(2*len(ids)); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > deadline {
			t.Fatalf("compacted_seq is %d after %s, want %d (the rows written before the compaction)",
				compacted(), deadline, 2*len(ids))
		}
	}
	check("after the compaction", 3)
	var versions int64
	if err := w.DB().QueryRowContext(t.Context(), "SELECT count(*) FROM span_versions").Scan(&versions); err != nil {
		t.Fatal(err)
	}
	// The compaction deleted version 1 of each span; the three batches after it stay.
	if want := int64(len(ids) * 4); versions != want {
		t.Errorf("span_versions after the compaction: %d rows, want %d", versions, want)
	}

	versions = countAfterClose(t, w, path, "SELECT count(*) FROM span_versions")
	if versions != int64(len(ids)) {
		t.Errorf("span_versions after Close: %d rows, want %d (one per span)", versions, len(ids))
	}
}

// TestCompactionOfAnOldTail: a tail far below the row threshold is still compacted
// once the last compaction is old enough, with no write to trigger it, so that the
// explorer's reads of a quiet store do not keep resolving it.
func TestCompactionOfAnOldTail(t *testing.T) {
	w := openWriter(t, dbPath(t))
	w.SetCompaction(1_000_000, nil)
	w.SetCompactionAfter(time.Millisecond)
	traceID := strings.Repeat("e6", 16)
	for _, v := range []uint64{1, 2} {
		write(t, w, &pipeline.Batch{Strategy: pipeline.BatchWithUpdates,
			Spans: []*schema.Span{span(traceID, "0000000000000001", v)}})
	}
	deadline := time.Now().Add(time.Minute) // a loaded machine; the idle check runs every second
	for {
		var rows, tail int64
		if err := w.DB().QueryRowContext(t.Context(), `SELECT count(*), count(*) FILTER (v.seq > c.compacted_seq)
			FROM span_versions v, spanpipe_span_compaction c`).Scan(&rows, &tail); err != nil {
			t.Fatal(err)
		}
		if rows == 1 && tail == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("span_versions has %d rows, %d after compacted_seq, a minute after the writes; want 1 and 0", rows, tail)
		}
		time.Sleep(20 * time.Millisecond) // polling the store
	}
}
