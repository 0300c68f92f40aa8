package duckdb

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"
)

// A checkpoint that fails (a full disk) invalidates the attached database: DuckDB
// refuses every statement on it until it is detached and attached again, which
// replays its write-ahead log. Without that, a consumer whose disk filled up once
// dead-lettered every batch after it, freed disk or not, until restarted.

// invalidatedDB reports whether err is DuckDB's refusal of an invalidated database.
func invalidatedDB(err error) bool {
	return err != nil && strings.Contains(err.Error(), "has been invalidated")
}

// diskFull reports whether err is the operating system's refusal to write more:
// no space left, a file size limit (RLIMIT_FSIZE), a disk quota.
func diskFull(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "No space left on device") || strings.Contains(msg, "File too large") ||
		strings.Contains(msg, "Disk quota exceeded")
}

// outOfMemory reports whether err is DuckDB running out of its memory_limit.
func outOfMemory(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "Out of Memory") || strings.Contains(msg, "failed to pin block") ||
		strings.Contains(msg, "could not allocate block")
}

// noteInvalidated marks the database for attaching again when err says DuckDB
// invalidated it. The caller holds w.mu.
func (w *Writer) noteInvalidated(err error) {
	if w.invalid || !invalidatedDB(err) {
		return
	}
	w.invalid = true
	w.log.Error("duckdb: the database was invalidated (a checkpoint failed); writes wait, and each one "+
		"attaches it again first, until that succeeds", "path", w.cfg.Path, "err", err)
}

// reattachOn detaches the invalidated database and attaches it again (statement
// attach) on e, a connection whose default catalog is not the file's.
func reattachOn(e driver.ExecerContext, attach string) error {
	for _, q := range []string{"DETACH DATABASE IF EXISTS " + catalogName, attach, "USE " + catalogName} {
		if _, err := e.ExecContext(context.Background(), q, nil); err != nil {
			return fmt.Errorf("attach the invalidated database again (%s): %w", q, err)
		}
	}
	return nil
}

// reattach attaches the invalidated database again, through a new connection (see
// openDB's initConn), then reloads what the writer keeps of it. The caller holds w.mu
// and w.seq.mu.
func (w *Writer) reattach(ctx context.Context) error {
	if c := w.compactor.cancel; c != nil {
		c() // it fails on the invalidated database anyway, and keeps it in use
	}
	dc, err := w.connector.Connect(ctx)
	if err != nil {
		return fmt.Errorf("duckdb: attach %s again: %w", w.cfg.Path, err)
	}
	_ = dc.Close()
	conn, err := w.writeConn(ctx)
	if err != nil {
		return err
	}
	if err := conn.QueryRowContext(ctx, loadNextSeq).Scan(&w.seq.next); err != nil {
		return fmt.Errorf("duckdb: read next span seq after attaching %s again: %w", w.cfg.Path, err)
	}
	if err := conn.QueryRowContext(ctx, compactionState).Scan(&w.compacted, &w.tail); err != nil {
		return fmt.Errorf("duckdb: read spans compaction state after attaching %s again: %w", w.cfg.Path, err)
	}
	w.groups.pending, w.groups.walSize = false, 0
	if err := w.loadRowGroups(ctx, conn); err != nil {
		return err
	}
	w.invalid = false
	w.log.Info("duckdb: database attached again after it was invalidated", "path", w.cfg.Path)
	return nil
}
