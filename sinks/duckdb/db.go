package duckdb

import "database/sql"

// DB is the database handle, for ad-hoc read queries by the CLI and tests. Writing
// through it bypasses the version check of [Writer.Write]: don't.
func (w *Writer) DB() *sql.DB { return w.db }
