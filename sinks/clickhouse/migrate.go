package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// MigrateResult is what [Migrate] changed; empty when the schema was up to date.
type MigrateResult struct {
	// Applied names the migrations applied, in order ("0001_init").
	Applied []string
	// TTL holds the statements that changed a table's TTL to match [Config.TTL].
	TTL []string
}

// Migrate connects to the server named by cfg, creates the database and the
// spanpipe_migrations table if needed, applies the migrations not yet recorded there,
// and brings each table's TTL in line with cfg.TTL. It returns what it changed, also
// when it fails part way. `spanpipe migrate` calls it; [Open] calls the same code
// when [Config.AutoMigrate] is set.
//
// In cluster mode every statement runs ON CLUSTER and returns once every host has run
// it (or fails after the server's distributed_ddl_task_timeout). Statements are
// idempotent, so running Migrate again after a failure, or from two processes at
// once, is safe.
func Migrate(ctx context.Context, cfg Config, opts ...Option) (MigrateResult, error) {
	if err := cfg.Validate(); err != nil {
		return MigrateResult{}, err
	}
	cfg, _ = cfg.Resolve() // Validate checked the DSN
	o := buildOptions(opts)
	conn, err := dial(ctx, cfg)
	if err != nil {
		return MigrateResult{}, err
	}
	defer conn.Close()
	if cfg.Layout == LayoutMastra {
		ran, err := checkMastraSchema(ctx, conn, paramsOf(cfg), true)
		return MigrateResult{Applied: ran}, err
	}
	return migrate(ctx, conn, paramsOf(cfg), o.logger.With("component", "clickhouse"))
}

func exec(ctx context.Context, conn driver.Conn, what string, s statement) error {
	if err := conn.Exec(ctx, s.sql); err != nil {
		return fmt.Errorf("clickhouse: %s: statement %s: %w", what, s.name, err)
	}
	return nil
}

func migrate(ctx context.Context, conn driver.Conn, p ddlParams, log *slog.Logger) (MigrateResult, error) {
	var res MigrateResult
	boot, err := p.bootstrap()
	if err != nil {
		return res, err
	}
	all, err := p.migrations()
	if err != nil {
		return res, err
	}
	for _, s := range boot {
		if err := exec(ctx, conn, "bootstrap", s); err != nil {
			return res, err
		}
	}
	done, err := appliedVersions(ctx, conn, p)
	if err != nil {
		return res, err
	}
	for _, m := range all {
		if done[m.version] {
			continue
		}
		for _, s := range m.statements {
			if done, err := guarded(ctx, conn, m.name, s); err != nil || done {
				if err != nil {
					return res, err
				}
				continue
			}
			if err := exec(ctx, conn, "migration "+m.name, s); err != nil {
				return res, err
			}
		}
		if err := conn.Exec(ctx, p.recordMigration(m)); err != nil {
			return res, fmt.Errorf("clickhouse: migration %s: record: %w", m.name, err)
		}
		res.Applied = append(res.Applied, m.name)
		log.Info("clickhouse migration applied", "migration", m.name, "statements", len(m.statements))
	}
	res.TTL, err = syncTTL(ctx, conn, p, log)
	return res, err
}

// guarded runs the guard of a statement (see [statement.unless]) and reports whether
// the statement has been done already. A guard returns one UInt64 (count(), or
// toUInt64 of a condition): clickhouse-go scans only the exact width.
func guarded(ctx context.Context, conn driver.Conn, migration string, s statement) (bool, error) {
	if s.unless == "" {
		return false, nil
	}
	var n uint64
	if err := conn.QueryRow(ctx, s.unless).Scan(&n); err != nil {
		return false, fmt.Errorf("clickhouse: migration %s: statement %s: guard: %w", migration, s.name, err)
	}
	return n != 0, nil
}

// appliedVersions returns the migrations recorded in spanpipe_migrations. A database
// or table that does not exist yet means nothing is applied: Open without
// auto_migrate must then ask for `spanpipe migrate`, not report the server's error.
func appliedVersions(ctx context.Context, conn driver.Conn, p ddlParams) (map[int]bool, error) {
	rows, err := conn.Query(ctx, p.appliedQuery())
	var ex *ch.Exception
	if errors.As(err, &ex) && (ex.Code == codeUnknownDatabase || ex.Code == codeUnknownTable) {
		return map[int]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("clickhouse: read spanpipe_migrations: %w", err)
	}
	defer rows.Close()
	done := map[int]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("clickhouse: read spanpipe_migrations: %w", err)
		}
		done[int(v)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: read spanpipe_migrations: %w", err)
	}
	return done, nil
}

// pending returns the names of the migrations not yet applied.
func pending(ctx context.Context, conn driver.Conn, p ddlParams) ([]string, error) {
	all, err := p.migrations()
	if err != nil {
		return nil, err
	}
	done, err := appliedVersions(ctx, conn, p)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range all {
		if !done[m.version] {
			out = append(out, m.name)
		}
	}
	return out, nil
}

// syncTTL alters the tables whose TTL differs from the configuration and returns
// the statements it ran.
func syncTTL(ctx context.Context, conn driver.Conn, p ddlParams, log *slog.Logger) ([]string, error) {
	rows, err := conn.Query(ctx, p.engineFullQuery())
	if err != nil {
		return nil, fmt.Errorf("clickhouse: read table engines: %w", err)
	}
	engineFull := map[string]string{}
	for rows.Next() {
		var name, full string
		if err := rows.Scan(&name, &full); err != nil {
			rows.Close()
			return nil, fmt.Errorf("clickhouse: read table engines: %w", err)
		}
		engineFull[name] = full
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: read table engines: %w", err)
	}
	var changed []string
	for _, s := range p.ttlChanges(engineFull) {
		if err := exec(ctx, conn, "ttl", s); err != nil {
			return changed, err
		}
		changed = append(changed, s.sql)
		log.Info("clickhouse table TTL changed", "table", strings.TrimPrefix(s.name, "ttl_"), "statement", s.sql)
	}
	return changed, nil
}
