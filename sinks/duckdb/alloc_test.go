package duckdb_test

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

// TestAllocatorReturnsFreedPages: once a database is open, DuckDB's jemalloc returns
// freed pages at once (decay 0), unless DUCKDB_JE_MALLOC_CONF sets its own options.
// Each case runs in a process of its own: jemalloc reads the variable at start.
func TestAllocatorReturnsFreedPages(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("DuckDB bundles jemalloc on Linux only")
	}
	if os.Getenv("SPANPIPE_TEST_ALLOCATOR_CHILD") != "" {
		openWriter(t, dbPath(t))
		n, a0 := duckdb.JemallocDecay()
		t.Logf("decay new=%d arena0=%d", n, a0)
		return
	}
	for _, tc := range []struct {
		name, env string
		want      string
	}{
		{"default", "", "decay new=0 arena0=0"},
		{"set by the user", "DUCKDB_JE_MALLOC_CONF=dirty_decay_ms:700", "decay new=700 arena0=700"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestAllocatorReturnsFreedPages$", "-test.v")
			cmd.Env = []string{"SPANPIPE_TEST_ALLOCATOR_CHILD=1"}
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "DUCKDB_JE_MALLOC_CONF=") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			if tc.env != "" {
				cmd.Env = append(cmd.Env, tc.env)
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("child reported\n%s\nwant %q", out, tc.want)
			}
		})
	}
}
