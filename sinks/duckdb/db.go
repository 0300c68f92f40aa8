package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"
)

// DB is the database handle, for ad-hoc read queries by the CLI and tests. Writing
// through it bypasses the version check of [Writer.Write]: don't.
func (w *Writer) DB() *sql.DB { return w.db }

// catalogName is the name the database file is attached under. Every connection
// USEs it, so that main.<table> and the appender's tables resolve in the file.
const catalogName = "spanpipe"

// instances holds the handle of every database file open in this process and the
// number of Writers using it. The file is attached to an in-memory DuckDB instance,
// because ATTACH is the only way to set its row group size. DuckDB's file lock is
// per process, so two instances in one process could both attach one file
// read-write: Writers on one path share one instance instead.
var instances = struct {
	sync.Mutex
	m map[string]*instance
}{m: map[string]*instance{}}

type instance struct {
	db        *sql.DB
	connector driver.Connector // makes connections outside db's pool (see reattachOn)
	refs      int
	seq       seqCounter
	limit     memoryLimit
}

// memoryLimit is the memory_limit in force for an instance, shared by its Writers:
// each one's flushAllocator sets it again, and must not set back a limit that
// another raised (raiseMemoryLimit).
type memoryLimit struct {
	mu    sync.Mutex
	value string // as DuckDB prints it ("91.5 MiB"); "" until read
}

func (l *memoryLimit) get() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.value
}

func (l *memoryLimit) set(v string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.value = v
}

// seqCounter numbers span_versions rows for every Writer of one instance. Writes
// used to reserve their numbers with an UPDATE of spanpipe_span_state, and DuckDB
// does not checkpoint on the commit of a transaction that updated rows while another
// transaction is open: during a background compaction or a query of the explorer,
// no write checkpointed, and the write-ahead log (with the rows DuckDB holds in
// memory until a checkpoint writes them) grew past checkpoint_threshold, to 10 times
// it in TestCheckpointWhileAnotherTransactionRuns. Writes now only append.
//
// mu is held from a write's first number to its commit, so Writers sharing the
// instance commit their ranges in order: every seq up to next-1 is committed, which
// is what a compaction relies on when it takes next-1 as its bound.
type seqCounter struct {
	mu   sync.Mutex
	next int64 // the first seq not committed yet; 0 until read from the file
}

// openDB returns the handle of the database cfg names, opening it (an in-memory
// instance with cfg's settings, the file attached on every new connection) when no
// Writer of this process has it open, and the function that releases it: the last
// release closes the instance, which checkpoints the file. A second Writer on a path
// gets the instance of the first, with the first one's settings.
func openDB(ctx context.Context, cfg Config) (*instance, func() error, error) {
	configureAllocator()
	key := cfg.Path
	if key != ":memory:" {
		abs, err := filepath.Abs(key)
		if err != nil {
			return nil, nil, fmt.Errorf("duckdb: open %s: %w", cfg.Path, err)
		}
		key = abs
	}
	instances.Lock()
	defer instances.Unlock()
	if in, ok := instances.m[key]; ok && key != ":memory:" {
		in.refs++
		return in, func() error { return releaseDB(key, in) }, nil
	}
	var initConn func(driver.ExecerContext) error
	_, statErr := os.Stat(cfg.Path)
	if attach := cfg.attach(errors.Is(statErr, fs.ErrNotExist)); attach != "" {
		again := cfg.attach(false)
		initConn = func(e driver.ExecerContext) error {
			if _, err := e.ExecContext(context.Background(), attach, nil); err != nil {
				return fmt.Errorf("attach: %w", err)
			}
			_, err := e.ExecContext(context.Background(), "USE "+catalogName, nil)
			if invalidatedDB(err) {
				// A failed checkpoint invalidated the file's database, and every
				// statement of a connection that USEs it fails, DETACH included. This new
				// one is still on the in-memory catalog: it attaches the file again,
				// which replays its log, and the other connections work again.
				err = reattachOn(e, again)
			}
			return err
		}
	}
	connector, err := duckdbdriver.NewConnector(cfg.dsn(), initConn)
	if err != nil {
		return nil, nil, fmt.Errorf("duckdb: open %s: %w", cfg.Path, err)
	}
	db := sql.OpenDB(connector)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("duckdb: open %s: %w", cfg.Path, err)
	}
	in := &instance{db: db, connector: connector, refs: 1}
	if key == ":memory:" {
		return in, db.Close, nil
	}
	instances.m[key] = in
	return in, func() error { return releaseDB(key, in) }, nil
}

func releaseDB(key string, in *instance) error {
	instances.Lock()
	defer instances.Unlock()
	if in.refs--; in.refs > 0 {
		return nil
	}
	delete(instances.m, key)
	return in.db.Close()
}
