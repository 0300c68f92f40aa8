package duckdb_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
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

// TestKeyHashMatchesTheMigration: the key_hash the writer appends is the value
// migration 0010 computes in SQL for the rows before it; a row whose hash differed
// would hide its span's older versions from compaction.
func TestKeyHashMatchesTheMigration(t *testing.T) {
	w := openWriter(t, dbPath(t))
	keys := [][2]string{
		{strings.Repeat("ab", 16), "0000000000000001"},
		{strings.Repeat("ab", 16), "0000000000000002"},
		{"trace/with/slashes", "span"},
		{"träce-ünïcode-✓", "spän-😀"},
		{strings.Repeat("x", 4096), strings.Repeat("y", 300)},
	}
	b := &pipeline.Batch{Strategy: pipeline.BatchWithUpdates}
	for _, k := range keys {
		b.Spans = append(b.Spans, span(k[0], k[1], 1))
	}
	write(t, w, b)
	rows, err := w.DB().QueryContext(t.Context(), `SELECT trace_id, span_id, key_hash,
		('0x' || left(md5(trace_id || '/' || span_id), 16))::UBIGINT FROM span_versions`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var traceID, spanID string
		var stored, migrated uint64
		if err := rows.Scan(&traceID, &spanID, &stored, &migrated); err != nil {
			t.Fatal(err)
		}
		if want := duckdb.KeyHash(traceID, spanID); stored != want || migrated != want {
			t.Errorf("key_hash of %.20q/%.20q: appended %x, migration's SQL %x, want %x", traceID, spanID, stored, migrated, want)
		}
		n++
	}
	if err := rows.Err(); err != nil || n != len(keys) {
		t.Fatalf("read %d rows (%v), want %d", n, err, len(keys))
	}
}

// TestCompactionWithHashCollisions: compaction finds candidates by key_hash and
// ranks them by their keys, so spans that share a hash (here all of them, set by
// hand) keep their newest version each, and only superseded versions go.
func TestCompactionWithHashCollisions(t *testing.T) {
	path := dbPath(t)
	w := openWriter(t, path)
	w.SetCompactionAfter(0)
	traceID := strings.Repeat("f7", 16)
	first := &pipeline.Batch{Strategy: pipeline.BatchWithUpdates}
	for _, id := range []string{"0000000000000001", "0000000000000002", "0000000000000003", "0000000000000004"} {
		first.Spans = append(first.Spans, span(traceID, id, 1))
	}
	write(t, w, first)
	write(t, w, &pipeline.Batch{Strategy: pipeline.BatchWithUpdates, Spans: []*schema.Span{
		span(traceID, "0000000000000001", 2), // newer
		span(traceID, "0000000000000002", 1), // redelivered
	}})
	if _, err := w.DB().ExecContext(t.Context(), "UPDATE span_versions SET key_hash = 42"); err != nil {
		t.Fatal(err)
	}
	if n := countAfterClose(t, w, path, "SELECT count(*) FROM span_versions"); n != 4 {
		t.Errorf("span_versions after Close: %d rows, want 4 (one per span)", n)
	}
	w = openWriter(t, path)
	for id, want := range map[string]uint64{"0000000000000001": 2, "0000000000000002": 1, "0000000000000003": 1, "0000000000000004": 1} {
		if got, err := w.Span(t.Context(), traceID, id); err != nil || got.Version != want {
			t.Errorf("span %s: got %v, %v, want version %d", id, got, err, want)
		}
	}
}

// TestCompactionOfAVersionFarBack: a span's newer version arrives after many other
// spans were written and compacted (a long-running span, a replay): compaction
// reaches back to its first version, wherever it is, and deletes it.
func TestCompactionOfAVersionFarBack(t *testing.T) {
	path := dbPath(t)
	w := openWriter(t, path)
	w.SetCompaction(1000, nil)
	w.SetCompactionAfter(0)
	traceID := strings.Repeat("a8", 16)
	write(t, w, &pipeline.Batch{Strategy: pipeline.BatchWithUpdates, Spans: []*schema.Span{span(traceID, "00000000000000ff", 1)}})
	others := strings.Repeat("b9", 16)
	for i := range 5 {
		b := &pipeline.Batch{Strategy: pipeline.InsertOnly}
		for j := range 1000 {
			b.Spans = append(b.Spans, span(others, fmt.Sprintf("%016x", i*1000+j), 1))
		}
		write(t, w, b)
	}
	write(t, w, &pipeline.Batch{Strategy: pipeline.BatchWithUpdates, Spans: []*schema.Span{span(traceID, "00000000000000ff", 2)}})
	if n := countAfterClose(t, w, path, "SELECT count(*) FROM span_versions"); n != 5001 {
		t.Errorf("span_versions after Close: %d rows, want 5001 (one per span)", n)
	}
	w = openWriter(t, path)
	if got, err := w.Span(t.Context(), traceID, "00000000000000ff"); err != nil || got.Version != 2 {
		t.Errorf("span written first: got %v, %v, want version 2", got, err)
	}
}

// TestCompactionWaitsForAWriteInFlight: a compaction takes as its bound the last seq
// committed, never one that a write of another Writer on the file holds in an open
// transaction. Otherwise that write commits rows at or below compacted_seq that the
// compaction never saw, and a span keeps two versions there that no later compaction
// looks at: readers would see both.
func TestCompactionWaitsForAWriteInFlight(t *testing.T) {
	path := dbPath(t)
	w1, w2 := openWriter(t, path), openWriter(t, path)
	for _, w := range []*duckdb.Writer{w1, w2} {
		w.SetCompaction(1<<40, nil)
		w.SetCompactionAfter(0)
	}
	traceID := strings.Repeat("d0", 16)
	write(t, w1, &pipeline.Batch{Spans: []*schema.Span{span(traceID, "0000000000000001", 1)}})
	if _, err := w1.Compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	inTx, release := make(chan struct{}), make(chan struct{})
	w1.SetBeforeCommit(func() {
		close(inTx)
		<-release
	})
	wrote := make(chan error, 1)
	go func() {
		wrote <- w1.Write(t.Context(), &pipeline.Batch{Spans: []*schema.Span{span(traceID, "0000000000000001", 2)}})
	}()
	<-inTx
	compacted := make(chan error, 1)
	go func() {
		_, err := w2.Compact(t.Context())
		compacted <- err
	}()
	// A compaction that does not wait ends while the write is held; one that waits
	// ends only after the release, whichever comes first.
	select {
	case err := <-compacted:
		close(release)
		compacted <- err
	case <-time.After(500 * time.Millisecond):
		close(release)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if err := <-compacted; err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	var n, newest int64
	if err := w1.DB().QueryRowContext(t.Context(), "SELECT count(*), max(version) FROM spans WHERE trace_id = $1", traceID).Scan(&n, &newest); err != nil {
		t.Fatal(err)
	}
	if n != 1 || newest != 2 {
		t.Errorf("spans shows %d rows of the span (newest version %d) after compactions around a write in flight, want 1 (version 2)", n, newest)
	}
}
