package clickhouse

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"text/template"
)

// sqlFS holds the DDL. sql/bootstrap.sql runs before every migration pass;
// sql/migrations/NNNN_name.sql are applied once each, in version order, and recorded in
// spanpipe_migrations. A released migration is never edited: change the schema with a
// new file. Every statement is preceded by a "-- name: <name>" line, ends with ";" at
// the end of a line, and must be idempotent (IF NOT EXISTS, ADD COLUMN IF NOT EXISTS):
// ON CLUSTER DDL cannot be rolled back, so a failed migration is fixed by running it
// again. A statement that cannot be idempotent by itself (EXCHANGE TABLES, an INSERT
// that copies a table) carries a guard, a "-- unless: <query>" line after its name:
// the migrator skips it when the query returns a non-zero number, so that the
// migration can still be run again after failing part way.
//
//go:embed sql/bootstrap.sql sql/migrations/*.sql
var sqlFS embed.FS

// ddlParams are the parameters the DDL is rendered with.
type ddlParams struct {
	DB          string
	Cluster     string
	Replicated  bool
	ReplicaPath string
	ReplicaName string
	TTL         TTLConfig
}

func paramsOf(c Config) ddlParams {
	return ddlParams{
		DB:          c.Database,
		Cluster:     c.Cluster,
		Replicated:  c.Replicated,
		ReplicaPath: c.ReplicaPath,
		ReplicaName: c.ReplicaName,
		TTL:         c.TTL,
	}
}

// tmplData is what the templates see.
type tmplData struct {
	DB         string // database identifier
	DBLit      string // database as a string literal
	Cluster    string // cluster name; empty on a single node
	ClusterLit string // cluster as a string literal
	OnCluster  string // " ON CLUSTER `name`" or ""
}

// local returns the name of the table that stores the data of name: name itself on a
// single node, name_local in cluster mode (name is then the Distributed table).
func (p ddlParams) local(name string) string {
	if p.Cluster != "" {
		return name + "_local"
	}
	return name
}

// qualified prefixes a table name with the database.
func (p ddlParams) qualified(name string) string { return p.DB + "." + name }

func (p ddlParams) onCluster() string {
	if p.Cluster == "" {
		return ""
	}
	return "ON CLUSTER `" + p.Cluster + "`"
}

// engine renders a MergeTree-family engine: kind(args) on a single node,
// Replicated<kind>('path', 'replica', args) when replicated.
func (p ddlParams) engine(kind, args string) string {
	if !p.Replicated {
		return kind + "(" + args + ")"
	}
	a := quoteString(p.ReplicaPath) + ", " + quoteString(p.ReplicaName)
	if args != "" {
		a += ", " + args
	}
	return "Replicated" + kind + "(" + a + ")"
}

// ttlDays returns the TTL of the tables of a signal ("spans" covers trace_roots).
func (p ddlParams) ttlDays(signal string) int {
	switch signal {
	case "spans":
		return p.TTL.Spans
	case "logs":
		return p.TTL.Logs
	case "metrics":
		return p.TTL.Metrics
	case "scores":
		return p.TTL.Scores
	case "feedback":
		return p.TTL.Feedback
	}
	panic("clickhouse: no TTL for signal " + signal)
}

// ttlExpr is the TTL expression of a table, in the form ClickHouse prints it back in
// system.tables.engine_full (which syncTTL compares). It is aligned with the daily
// partition, so that with ttl_only_drop_parts whole parts are dropped.
func ttlExpr(col string, days int) string {
	return "toDate(" + col + ") + toIntervalDay(" + strconv.Itoa(days) + ")"
}

func (p ddlParams) ttl(signal, col string) string {
	days := p.ttlDays(signal)
	if days == 0 {
		return ""
	}
	return "TTL " + ttlExpr(col, days)
}

// tableSettings are the MergeTree settings of every data table. A non-replicated
// MergeTree remembers no inserted blocks unless non_replicated_deduplication_window is
// set, and insert_deduplication_token would do nothing; Replicated tables keep
// replicated_deduplication_window blocks (1000 to 10000 by default, by version).
func (p ddlParams) tableSettings() string {
	s := "SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1"
	if !p.Replicated {
		s += ", non_replicated_deduplication_window = " + strconv.Itoa(dedupWindow)
	}
	return s
}

// dedupWindow is how many recent inserted blocks a non-replicated table remembers for
// insert deduplication: far more than the blocks inserted while a batch is retried.
const dedupWindow = 1000

func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// statement is one named DDL statement, rendered, without the final ";".
type statement struct {
	name string
	sql  string
	// unless, when set, is a query returning one number: the statement is skipped
	// when it is not zero (it has been done already).
	unless string
}

// migration is one rendered migration file.
type migration struct {
	version    int
	name       string // file name without .sql, e.g. "0001_init"
	statements []statement
}

func (p ddlParams) render(file string) ([]statement, error) {
	src, err := sqlFS.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: read %s: %w", file, err)
	}
	tmpl, err := template.New(path.Base(file)).Option("missingkey=error").Funcs(template.FuncMap{
		"local":    p.local,
		"engine":   p.engine,
		"ttl":      p.ttl,
		"settings": p.tableSettings,
		"settingsRowTTL": func() string {
			return strings.Replace(p.tableSettings(), "ttl_only_drop_parts = 1", "ttl_only_drop_parts = 0", 1)
		},
	}).Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("clickhouse: parse %s: %w", file, err)
	}
	data := tmplData{DB: p.DB, DBLit: quoteString(p.DB), OnCluster: p.onCluster()}
	if p.Cluster != "" {
		data.Cluster, data.ClusterLit = p.Cluster, quoteString(p.Cluster)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("clickhouse: render %s: %w", file, err)
	}
	return splitStatements(b.String(), file)
}

// splitStatements cuts rendered SQL into its named statements. Comment lines and blank
// lines are dropped; a statement runs from its "-- name:" line to the next line
// that ends with ";".
func splitStatements(src, file string) ([]statement, error) {
	var (
		out    []statement
		name   string
		unless string
		buf    []string
	)
	for line := range strings.Lines(src) {
		line = strings.TrimRight(line, " \t\r\n")
		trimmed := strings.TrimSpace(line)
		if n, ok := strings.CutPrefix(trimmed, "-- name:"); ok {
			if len(buf) > 0 {
				return nil, fmt.Errorf("clickhouse: %s: statement %s has no terminating ';'", file, name)
			}
			name, unless = strings.TrimSpace(n), ""
			continue
		}
		if u, ok := strings.CutPrefix(trimmed, "-- unless:"); ok {
			if name == "" || len(buf) > 0 {
				return nil, fmt.Errorf("clickhouse: %s: '-- unless:' must follow a '-- name:' line", file)
			}
			unless = strings.TrimSpace(u)
			continue
		}
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		if name == "" {
			return nil, fmt.Errorf("clickhouse: %s: statement without a preceding '-- name:' line: %q", file, trimmed)
		}
		buf = append(buf, line)
		if strings.HasSuffix(trimmed, ";") {
			sql := strings.TrimSuffix(strings.Join(buf, "\n"), ";")
			out = append(out, statement{name: name, sql: strings.TrimSpace(sql), unless: unless})
			name, unless, buf = "", "", nil
		}
	}
	if len(buf) > 0 {
		return nil, fmt.Errorf("clickhouse: %s: statement %s has no terminating ';'", file, name)
	}
	return out, nil
}

// bootstrap renders the statements that create the database and the migrations table.
func (p ddlParams) bootstrap() ([]statement, error) { return p.render("sql/bootstrap.sql") }

// migrations renders every embedded migration, sorted by version.
func (p ddlParams) migrations() ([]migration, error) {
	entries, err := fs.ReadDir(sqlFS, "sql/migrations")
	if err != nil {
		return nil, fmt.Errorf("clickhouse: read migrations: %w", err)
	}
	var out []migration
	seen := map[int]string{}
	for _, e := range entries { // ReadDir sorts by file name
		name := strings.TrimSuffix(e.Name(), ".sql")
		prefix, rest, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil || v <= 0 || rest == "" || strings.ContainsAny(name, `'\`) {
			return nil, fmt.Errorf("clickhouse: migration file %s: name must be NNNN_name.sql", e.Name())
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("clickhouse: migrations %s and %s share version %d", other, name, v)
		}
		seen[v] = name
		stmts, err := p.render(path.Join("sql/migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, statements: stmts})
	}
	return out, nil
}

// recordMigration is the statement that records an applied migration. The values come
// from the embedded file names, checked by migrations(), so they are inlined.
func (p ddlParams) recordMigration(m migration) string {
	return fmt.Sprintf("INSERT INTO %s.spanpipe_migrations (version, name) VALUES (%d, %s)",
		p.DB, m.version, quoteString(m.name))
}

func (p ddlParams) appliedQuery() string {
	return "SELECT version FROM " + p.DB + ".spanpipe_migrations FINAL"
}

// ttlTarget is a table whose TTL follows the configuration.
type ttlTarget struct {
	table  string // the local table
	column string
	days   int
}

func (p ddlParams) ttlTargets() []ttlTarget {
	return []ttlTarget{
		{p.local("spans"), "started_at", p.TTL.Spans},
		{p.local("trace_roots"), "started_at", p.TTL.Spans},
		{p.local("logs"), "timestamp", p.TTL.Logs},
		{p.local("metrics"), "timestamp", p.TTL.Metrics},
		{p.local("scores"), "timestamp", p.TTL.Scores},
		{p.local("feedback"), "timestamp", p.TTL.Feedback},
	}
}

func (p ddlParams) engineFullQuery() string {
	return "SELECT name, engine_full FROM system.tables WHERE database = " + quoteString(p.DB)
}

// ttlChanges returns the ALTER statements that bring the tables' TTL in line with the
// configuration, given each table's engine_full from system.tables. A table missing
// from engineFull is skipped. The TTL is changed without materializing it on existing
// parts (materialize_ttl_after_modify=0 on the statement): with ttl_only_drop_parts,
// parts are dropped once they are wholly expired, and rewriting every part at once
// would be a heavy mutation.
func (p ddlParams) ttlChanges(engineFull map[string]string) []statement {
	var out []statement
	for _, t := range p.ttlTargets() {
		full, ok := engineFull[t.table]
		if !ok {
			continue
		}
		want := " TTL " + ttlExpr(t.column, t.days)
		alter := "ALTER TABLE " + p.qualified(t.table)
		if oc := p.onCluster(); oc != "" {
			alter += " " + oc
		}
		switch {
		case t.days > 0 && !strings.Contains(full+" ", want+" "):
			out = append(out, statement{
				name: "ttl_" + t.table,
				sql:  alter + " MODIFY TTL " + ttlExpr(t.column, t.days) + " SETTINGS materialize_ttl_after_modify = 0",
			})
		case t.days == 0 && strings.Contains(full, " TTL "):
			out = append(out, statement{name: "ttl_" + t.table, sql: alter + " REMOVE TTL"})
		}
	}
	return out
}
