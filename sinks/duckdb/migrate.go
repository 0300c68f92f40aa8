package duckdb

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// migrationFS holds the DDL, one file per migration, named NNNN_name.sql and applied
// in version order. A released migration is never edited: change the schema with a
// new file. (The one exception, zstdMarker, is a comment to the files that applied it.)
//
//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string // file name without .sql, e.g. "0001_init"
	sql     string
}

// migrations returns the embedded migrations sorted by version.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("duckdb: read migrations: %w", err)
	}
	var out []migration
	seen := map[int]string{}
	for _, e := range entries { // ReadDir sorts by file name
		name := strings.TrimSuffix(e.Name(), ".sql")
		prefix, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("duckdb: migration file %s: name must be NNNN_name.sql", e.Name())
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("duckdb: migrations %s and %s share version %d", other, name, v)
		}
		seen[v] = name
		b, err := migrationFS.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("duckdb: read migration %s: %w", name, err)
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	return out, nil
}

// zstdMarker follows the type of a column of large text in a migration (a span's input
// and output). Where the file's storage version has zstd for strings (v1.2.0, which the
// files this creates have: see newFileStorageVersion), the migrator makes it USING
// COMPRESSION zstd; elsewhere it stays a comment, because DuckDB would store the column
// uncompressed. DuckDB picks FSST for these columns on its own; zstd costs less CPU to
// write and stores less. The sink's Write alone, 400k spans of the bench's workload (2
// runs each): 0.0198 / 0.0199 against 0.0215 / 0.0219 ms of CPU per span, 440 / 442
// against 713 / 742 bytes per span on disk. Reads the explorer makes (BenchmarkReader)
// were as fast as before. Every string column in zstd (DuckDB's force_compression)
// wrote at 0.020 ms and 582 B per span but read up to 6 times slower (trace200: 44
// against 7 ms); attributes in zstd too, as the stats' token sums read them, 64 → 83 ms
// of CPU per stats24h (one run each).
const zstdMarker = "/*zstd*/"

// migrate applies the migrations not yet recorded in spanpipe_migrations, each in
// its own transaction together with its record, and returns how many it applied.
func migrate(ctx context.Context, db *sql.DB) (int, error) {
	all, err := migrations()
	if err != nil {
		return 0, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("duckdb: migrate: connect: %w", err)
	}
	defer conn.Close()

	const createTable = `CREATE TABLE IF NOT EXISTS spanpipe_migrations (
		version    INTEGER PRIMARY KEY,
		name       VARCHAR NOT NULL,
		applied_at TIMESTAMP NOT NULL
	)`
	if _, err := conn.ExecContext(ctx, createTable); err != nil {
		return 0, fmt.Errorf("duckdb: migrate: create spanpipe_migrations: %w", err)
	}
	done := map[int]bool{}
	rows, err := conn.QueryContext(ctx, "SELECT version, name FROM spanpipe_migrations ORDER BY version")
	if err != nil {
		return 0, fmt.Errorf("duckdb: migrate: read spanpipe_migrations: %w", err)
	}
	newest := all[len(all)-1]
	var unknown string
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			rows.Close()
			return 0, fmt.Errorf("duckdb: migrate: read spanpipe_migrations: %w", err)
		}
		done[v] = true
		if v > newest.version && unknown == "" {
			unknown = name
		}
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("duckdb: migrate: read spanpipe_migrations: %w", err)
	}
	// A newer spanpipe changed the tables in ways this one cannot write (a column it
	// does not fill): every batch would be dead-lettered. Refusing to open says why.
	if unknown != "" {
		return 0, fmt.Errorf("duckdb: migrate: the file has migration %s, newer than this binary's newest (%s): "+
			"a newer spanpipe wrote it; run that version or a later one", unknown, newest.name)
	}

	pending := slices.DeleteFunc(all, func(m migration) bool { return done[m.version] })
	if len(pending) == 0 {
		return 0, nil
	}
	zstd, err := hasZstd(ctx, conn)
	if err != nil {
		return 0, err
	}
	applied := 0
	for _, m := range pending {
		if zstd {
			m.sql = strings.ReplaceAll(m.sql, zstdMarker, "USING COMPRESSION zstd")
		}
		if err := apply(ctx, conn, m); err != nil {
			return applied, fmt.Errorf("duckdb: migration %s: %w", m.name, err)
		}
		applied++
	}
	return applied, nil
}

func apply(ctx context.Context, conn *sql.Conn, m migration) (err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO spanpipe_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
		m.version, m.name, time.Now().UTC()); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return tx.Commit()
}

// hasZstd tells whether the database of conn has a storage version with zstd for
// strings (v1.2.0 or later). An in-memory database has none.
func hasZstd(ctx context.Context, conn *sql.Conn) (bool, error) {
	var v sql.NullString
	const q = "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = current_database()"
	if err := conn.QueryRowContext(ctx, q).Scan(&v); err != nil {
		return false, fmt.Errorf("duckdb: migrate: read the storage version: %w", err)
	}
	return storageAtLeast(v.String, 1, 2), nil
}

// storageAtLeast tells whether a storage version as DuckDB names it ("v1.2.0+") is at
// least major.minor.
func storageAtLeast(version string, major, minor int) bool {
	parts := strings.SplitN(strings.TrimPrefix(strings.TrimSuffix(version, "+"), "v"), ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}
