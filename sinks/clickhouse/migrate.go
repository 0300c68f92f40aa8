package clickhouse

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Migrate connects to the server named by cfg, creates the database and the
// spanpipe_migrations table if needed, applies the migrations not yet recorded there,
// and brings each table's TTL in line with cfg.TTL. It returns how many migrations it
// applied. `spanpipe migrate` calls it; [Open] calls the same code when
// [Config.AutoMigrate] is set.
//
// In cluster mode every statement runs ON CLUSTER and returns once every host has run
// it (or fails after the server's distributed_ddl_task_timeout). Statements are
// idempotent, so running Migrate again after a failure, or from two processes at
// once, is safe.
func Migrate(ctx context.Context, cfg Config, opts ...Option) (int, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	o := buildOptions(opts)
	conn, err := dial(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return migrate(ctx, conn, paramsOf(cfg), o.logger.With("component", "clickhouse"))
}

func exec(ctx context.Context, conn driver.Conn, what string, s statement) error {
	if err := conn.Exec(ctx, s.sql); err != nil {
		return fmt.Errorf("clickhouse: %s: statement %s: %w", what, s.name, err)
	}
	return nil
}

func migrate(ctx context.Context, conn driver.Conn, p ddlParams, log *slog.Logger) (int, error) {
	boot, err := p.bootstrap()
	if err != nil {
		return 0, err
	}
	all, err := p.migrations()
	if err != nil {
		return 0, err
	}
	for _, s := range boot {
		if err := exec(ctx, conn, "bootstrap", s); err != nil {
			return 0, err
		}
	}
	done, err := appliedVersions(ctx, conn, p)
	if err != nil {
		return 0, err
	}
	applied := 0
	for _, m := range all {
		if done[m.version] {
			continue
		}
		for _, s := range m.statements {
			if err := exec(ctx, conn, "migration "+m.name, s); err != nil {
				return applied, err
			}
		}
		if err := conn.Exec(ctx, p.recordMigration(m)); err != nil {
			return applied, fmt.Errorf("clickhouse: migration %s: record: %w", m.name, err)
		}
		applied++
		log.Info("clickhouse migration applied", "migration", m.name, "statements", len(m.statements))
	}
	if err := syncTTL(ctx, conn, p, log); err != nil {
		return applied, err
	}
	return applied, nil
}

func appliedVersions(ctx context.Context, conn driver.Conn, p ddlParams) (map[int]bool, error) {
	rows, err := conn.Query(ctx, p.appliedQuery())
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

// syncTTL alters the tables whose TTL differs from the configuration.
func syncTTL(ctx context.Context, conn driver.Conn, p ddlParams, log *slog.Logger) error {
	rows, err := conn.Query(ctx, p.engineFullQuery())
	if err != nil {
		return fmt.Errorf("clickhouse: read table engines: %w", err)
	}
	engineFull := map[string]string{}
	for rows.Next() {
		var name, full string
		if err := rows.Scan(&name, &full); err != nil {
			rows.Close()
			return fmt.Errorf("clickhouse: read table engines: %w", err)
		}
		engineFull[name] = full
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("clickhouse: read table engines: %w", err)
	}
	for _, s := range p.ttlChanges(engineFull) {
		if err := exec(ctx, conn, "ttl", s); err != nil {
			return err
		}
		log.Info("clickhouse table TTL changed", "table", strings.TrimPrefix(s.name, "ttl_"), "statement", s.sql)
	}
	return nil
}
