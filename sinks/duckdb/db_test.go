package duckdb_test

import (
	"fmt"
	"testing"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

// row_group_size reaches the file: DuckDB only takes it as an ATTACH option, which a
// typo or a missed ATTACH would silently replace with its default of 122,880 rows.
func TestRowGroupSizeApplied(t *testing.T) {
	path := dbPath(t)
	cfg := duckdb.Config{Path: path, MemoryLimit: "256MB", RowGroupSize: 2048, Threads: 1}
	w, err := duckdb.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	spans := make([]*schema.Span, 5000)
	for i := range spans {
		spans[i] = span(fmt.Sprintf("%032x", i+1), "0000000000000001", 1)
	}
	if err := w.Write(t.Context(), &pipeline.Batch{Spans: spans}); err != nil {
		t.Fatal(err)
	}
	groups := countAfterClose(t, w, path, "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('span_versions')")
	if groups < 3 {
		t.Fatalf("5000 rows in %d row groups; want 3 of at most 2048 rows", groups)
	}
}

// Writers on one path in one process share the database: a second instance would
// attach the file read-write too, since DuckDB's file lock does not stop the process
// that holds it. The last Close releases the file.
func TestOpenSamePathTwice(t *testing.T) {
	path := dbPath(t)
	w1, w2 := openWriter(t, path), openWriter(t, path)
	if err := w1.Write(t.Context(), &pipeline.Batch{Spans: []*schema.Span{span(fmt.Sprintf("%032x", 1), "0000000000000001", 1)}}); err != nil {
		t.Fatal(err)
	}
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := w2.CountSpans(t.Context()); err != nil || n != 1 {
		t.Fatalf("CountSpans through the second writer after the first closed: %d, %v; want 1", n, err)
	}
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := duckdb.OpenReadOnly(t.Context(), path)
	if err != nil {
		t.Fatalf("OpenReadOnly after both writers closed: %v", err)
	}
	_ = db.Close()
}

// What does not fit in memory_limit spills next to the file, as it does for a file
// opened directly, not into the working directory of the in-memory instance the file
// is attached to.
func TestSpillNextToFile(t *testing.T) {
	path := dbPath(t)
	w := openWriter(t, path)
	var dir string
	if err := w.DB().QueryRowContext(t.Context(), "SELECT current_setting('temp_directory')").Scan(&dir); err != nil {
		t.Fatal(err)
	}
	if dir != path+".tmp" {
		t.Fatalf("temp_directory %q, want %q", dir, path+".tmp")
	}
}

// countAfterClose closes w, then runs the count query in the file at path, opened
// read-only.
func countAfterClose(t *testing.T, w *duckdb.Writer, path, query string) int64 {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := duckdb.OpenReadOnly(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRowContext(t.Context(), query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A file written with one row_group_size opens, takes writes and checkpoints with
// another: the default changed (32,768 → 16,384), and files written before it stay.
func TestRowGroupSizeChangedOnAnExistingFile(t *testing.T) {
	for _, sizes := range [][2]int{{32768, 16384}, {4096, 16384}, {16384, 4096}} {
		t.Run(fmt.Sprintf("%d then %d", sizes[0], sizes[1]), func(t *testing.T) {
			path := dbPath(t)
			write := func(size, from, n int) {
				cfg := duckdb.DefaultConfig()
				cfg.Path, cfg.RowGroupSize = path, size
				w, err := duckdb.Open(t.Context(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				spans := make([]*schema.Span, n)
				for i := range spans {
					spans[i] = span(fmt.Sprintf("%032x", from+i+1), "0000000000000001", 1)
				}
				if err := w.Write(t.Context(), &pipeline.Batch{Spans: spans}); err != nil {
					t.Fatal(err)
				}
				if _, err := w.DB().ExecContext(t.Context(), "CHECKPOINT"); err != nil {
					t.Fatalf("CHECKPOINT with row_group_size %d: %v", size, err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			write(sizes[0], 0, 40000)
			write(sizes[1], 40000, 40000)
			w := openWriter(t, path)
			var n int64
			if err := w.DB().QueryRowContext(t.Context(), "SELECT count(*) FROM spans").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 80000 {
				t.Fatalf("%d spans after writes with row_group_size %d then %d, want 80000", n, sizes[0], sizes[1])
			}
		})
	}
}

// block_size applies to the file it creates; a file keeps its own. DuckDB refuses to
// attach a file with another block size, so a changed setting (or default) must not
// stop an existing file from opening.
func TestBlockSize(t *testing.T) {
	for _, c := range []struct{ first, second, want int64 }{
		{65536, 262144, 65536},
		{0, 65536, 262144}, // DuckDB's default, then the new default on the old file
		{16384, 0, 16384},
	} {
		t.Run(fmt.Sprintf("%d then %d", c.first, c.second), func(t *testing.T) {
			path := dbPath(t)
			for i, size := range []int64{c.first, c.second} {
				cfg := duckdb.DefaultConfig()
				cfg.Path, cfg.BlockSize = path, int(size)
				w, err := duckdb.Open(t.Context(), cfg)
				if err != nil {
					t.Fatalf("open with block_size %d (write %d): %v", size, i+1, err)
				}
				spans := make([]*schema.Span, 3000)
				for j := range spans {
					spans[j] = span(fmt.Sprintf("%032x", i*3000+j+1), "0000000000000001", 1)
				}
				if err := w.Write(t.Context(), &pipeline.Batch{Spans: spans}); err != nil {
					t.Fatal(err)
				}
				if _, err := w.DB().ExecContext(t.Context(), "CHECKPOINT"); err != nil {
					t.Fatalf("CHECKPOINT with block_size %d: %v", size, err)
				}
				var got, n int64
				if err := w.DB().QueryRowContext(t.Context(), "SELECT block_size FROM pragma_database_size() WHERE database_name = current_database()").Scan(&got); err != nil {
					t.Fatal(err)
				}
				if err := w.DB().QueryRowContext(t.Context(), "SELECT count(*) FROM spans").Scan(&n); err != nil {
					t.Fatal(err)
				}
				if got != c.want || n != int64(3000*(i+1)) {
					t.Errorf("after write %d with block_size %d: file block size %d, %d spans; want %d, %d", i+1, size, got, n, c.want, 3000*(i+1))
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
