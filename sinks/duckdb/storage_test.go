package duckdb_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

// A file this creates stores the spans' input and output with zstd, and the other
// columns as DuckDB chooses. A file an older version created (storage v1.0.0, without
// zstd for strings) keeps DuckDB's choice for every column: DuckDB would store a
// column that asks for zstd there uncompressed.
func TestPayloadCompression(t *testing.T) {
	cases := []struct {
		name        string
		path        func(t *testing.T) string
		wantStorage string
		wantZstd    bool
	}{
		{"new file", func(t *testing.T) string { return dbPath(t) }, "v1.2.0+", true},
		{"file of an older version", func(t *testing.T) string { return prepareFile(t, "SELECT 1") }, "v1.0.0+", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := openWriter(t, c.path(t))
			b := &pipeline.Batch{Strategy: pipeline.InsertOnly}
			for i := range 3000 {
				s := benchSpan(fmt.Sprintf("%032x", i/10), fmt.Sprintf("%016x", i))
				s.Input = jsontext.Value(fmt.Sprintf(`{"messages":[{"role":"user","content":"question %d: %s"}]}`, i, s.Name))
				s.Output = jsontext.Value(fmt.Sprintf(`{"text":"answer %d"}`, i*7))
				b.Spans = append(b.Spans, s)
			}
			write(t, w, b)
			if _, err := w.DB().ExecContext(t.Context(), "CHECKPOINT"); err != nil {
				t.Fatal(err)
			}
			var storage string
			if err := w.DB().QueryRowContext(t.Context(), "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = current_database()").Scan(&storage); err != nil {
				t.Fatal(err)
			}
			if storage != c.wantStorage {
				t.Errorf("storage version %q, want %q", storage, c.wantStorage)
			}
			for _, col := range []string{"input", "output", "attributes", "metadata", "trace_id", "name"} {
				got := compressions(t, w, col)
				zstd, none := slices.Contains(got, "ZSTD"), slices.Contains(got, "Uncompressed")
				payload := col == "input" || col == "output"
				switch {
				case payload && c.wantZstd && (!zstd || len(got) != 1):
					t.Errorf("%s is stored as %v, want ZSTD", col, got)
				case (!payload || !c.wantZstd) && zstd:
					t.Errorf("%s is stored as %v, want DuckDB's choice, not ZSTD", col, got)
				case none:
					t.Errorf("%s is stored as %v: uncompressed", col, got)
				}
			}
		})
	}
}

// compressions returns the compressions of the segments holding col's values in
// span_versions.
func compressions(t *testing.T, w *duckdb.Writer, col string) []string {
	t.Helper()
	rows, err := w.DB().QueryContext(t.Context(), `SELECT DISTINCT compression FROM pragma_storage_info('span_versions')
		WHERE column_name = $1 AND segment_type = 'VARCHAR' ORDER BY 1`, col)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("no segments of %s", col)
	}
	return out
}

func TestStorageAtLeast(t *testing.T) {
	cases := []struct {
		version string
		want    bool
	}{
		{"v1.2.0+", true}, {"v1.2.0", true}, {"v1.3.2+", true}, {"v2.0.0+", true},
		{"v1.0.0+", false}, {"v0.10.2", false}, {"v1.1.3+", false},
		{"", false}, {"latest", false}, {"v1", false}, {"vx.2.0", false},
	}
	for _, c := range cases {
		if got := duckdb.StorageAtLeast(c.version, 1, 2); got != c.want {
			t.Errorf("StorageAtLeast(%q, 1, 2) = %v, want %v", c.version, got, c.want)
		}
	}
}
