package duckdb_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
)

// TestFullDiskWaitsThenRecovers: when the file cannot grow (here a file size limit,
// as a full disk), the failing writes are Unavailable, so that the consumer waits
// instead of dead-lettering, and once the file can grow again the writer works again,
// although the failed checkpoint invalidated DuckDB's database: it attaches it again.
// Nothing a write acknowledged is lost. The limit is the process's (RLIMIT_FSIZE),
// so the test runs in a child process of its own.
func TestFullDiskWaitsThenRecovers(t *testing.T) {
	if os.Getenv("SPANPIPE_TEST_FSIZE_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFullDiskWaitsThenRecovers$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "SPANPIPE_TEST_FSIZE_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestFullDiskWaitsThenRecovers") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		t.Logf("child:\n%s", out)
		return
	}
	var limit syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &limit); err != nil {
		t.Fatal(err)
	}
	cfg := duckdb.DefaultConfig()
	cfg.Path, cfg.RowGroupSize, cfg.CheckpointThreshold = dbPath(t), 2048, "1GB"
	w := openConfig(t, cfg)
	w.SetCompaction(1<<40, nil)
	batch := func(i int) *pipeline.Batch {
		b := benchBatch(500, fmt.Sprintf("%032x", i+1))
		for _, s := range b.Spans {
			var text strings.Builder
			for range 60 {
				fmt.Fprint(&text, rand.Uint64()) // incompressible enough to grow the file
			}
			s.Output = jsontext.Value(fmt.Sprintf("%q", text.String()))
		}
		return b
	}
	setLimit := func(n uint64) {
		t.Helper()
		l := limit
		l.Cur = n
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &l); err != nil {
			t.Fatal(err)
		}
	}
	// Writes go on while the file is at its limit: each fails as Unavailable or
	// succeeds (attaching the database again replays its log, which may fit).
	setLimit(6 << 20)
	var failed []int
	const written = 60
	for i := range written {
		err := w.Write(t.Context(), batch(i))
		if err != nil && !errors.Is(err, pipeline.ErrUnavailable) {
			setLimit(limit.Cur)
			t.Fatalf("write %d with the file at its size limit: %v; want an Unavailable error", i, err)
		}
		if err != nil {
			if len(failed) == 0 {
				t.Logf("write %d: %v", i, err)
			}
			failed = append(failed, i)
		}
	}
	setLimit(limit.Cur)
	if len(failed) == 0 {
		t.Fatalf("%d writes passed a 6 MB file size limit", written)
	}
	t.Logf("%d of %d writes failed at the limit", len(failed), written)
	// The consumer writes the failed batches again, then goes on.
	for _, i := range append(failed, written, written+1, written+2) {
		if err := w.Write(t.Context(), batch(i)); err != nil {
			t.Fatalf("write %d after the file can grow again: %v", i, err)
		}
	}
	i := written
	if n, err := w.CountSpans(t.Context()); err != nil || n != int64(500*(i+3)) {
		t.Errorf("CountSpans = %d, %v; want %d (every batch, once)", n, err, 500*(i+3))
	}
}
