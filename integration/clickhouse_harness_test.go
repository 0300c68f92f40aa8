package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/spanpipe/spanpipe/internal/chlocal"
)

// chServer is a ClickHouse server the ClickHouse scenarios write to: the one named by
// CLICKHOUSE_DSN, else one the local launcher (deploy/local/clickhouse.sh) starts.
// Scenarios that kill the server start one of their own.
type chServer struct {
	dsn   string          // native DSN of the server's default database
	local *chlocal.Server // nil when the server is not ours (CLICKHOUSE_DSN)
	how   string
}

var sharedCH struct {
	once       sync.Once
	srv        *chServer
	skip, fail string
}

// sharedClickHouse returns the package's ClickHouse server, starting it on first use.
// It skips only when CLICKHOUSE_DSN is not set and the launcher cannot run here.
func sharedClickHouse(t *testing.T) *chServer {
	t.Helper()
	sharedCH.once.Do(func() {
		if dsn := strings.TrimSpace(os.Getenv("CLICKHOUSE_DSN")); dsn != "" {
			sharedCH.srv = &chServer{dsn: dsn, how: "CLICKHOUSE_DSN"}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		srv, err := startLocalClickHouse(ctx)
		switch {
		case errors.Is(err, chlocal.ErrUnavailable):
			sharedCH.skip = "no ClickHouse server: CLICKHOUSE_DSN is not set and the local launcher cannot run: " + err.Error()
		case err != nil:
			sharedCH.fail = "the local ClickHouse launcher is available but did not start a server: " + err.Error()
		default:
			sharedCH.srv = srv
		}
	})
	if sharedCH.skip != "" {
		t.Skip(sharedCH.skip)
	}
	if sharedCH.fail != "" {
		t.Fatal(sharedCH.fail)
	}
	t.Logf("clickhouse: %s via %s", sharedCH.srv.dsn, sharedCH.srv.how)
	return sharedCH.srv
}

// ownClickHouse starts a server of the scenario's own (one that it kills), stopped
// when the test ends. It skips when the launcher cannot run here.
func ownClickHouse(t *testing.T) *chServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	srv, err := startLocalClickHouse(ctx)
	if errors.Is(err, chlocal.ErrUnavailable) {
		t.Skipf("this scenario kills ClickHouse and needs the local launcher (deploy/local/clickhouse.sh), which cannot run here: %v", err)
	}
	if err != nil {
		t.Fatalf("start a local ClickHouse server: %v", err)
	}
	t.Cleanup(func() { srv.stop() })
	return srv
}

// startLocalClickHouse starts a launcher server with its data under the run's work
// dir, stopped at exit in any case.
func startLocalClickHouse(ctx context.Context) (*chServer, error) {
	dir, err := os.MkdirTemp(workDir, "clickhouse-")
	if err != nil {
		return nil, err
	}
	start := time.Now()
	local, err := chlocal.Start(ctx, dir)
	srv := &chServer{local: local, how: "local launcher (" + dir + ")"}
	atExit(srv.stop)
	if err != nil {
		srv.stop()
		return nil, err
	}
	srv.dsn = local.DSN
	fmt.Fprintf(os.Stderr, "integration: ClickHouse %s ready in %s (launcher, data %s)\n", srv.dsn, time.Since(start).Round(100*time.Millisecond), dir)
	return srv, nil
}

func (c *chServer) stop() {
	if c.local == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.local.Stop(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "integration: stopping ClickHouse: %v\n", err)
	}
}

// database returns the DSN of the scenario's own database (named after its topic; it
// does not exist until something migrates it).
func (s *scenario) database(c *chServer) (dsn, db string) {
	u, err := url.Parse(c.dsn)
	if err != nil {
		s.t.Fatalf("clickhouse DSN %q: %v", c.dsn, err)
	}
	db = "it_" + strings.NewReplacer(".", "_", "-", "_").Replace(strings.TrimSuffix(strings.TrimPrefix(s.topic, "it."), ".spans"))
	u.Path = "/" + db
	return u.String(), db
}

// conn is a plain driver connection to c, closed when the test ends.
func (c *chServer) conn(t *testing.T) ch.Conn {
	t.Helper()
	opts, err := ch.ParseDSN(c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	opts.Auth.Database = ""
	conn, err := ch.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// spanpipeCmd runs the spanpipe binary with args and extra SPANPIPE_* settings in
// env, and returns its stdout; a non-zero exit fails the test.
func (s *scenario) spanpipeCmd(ctx context.Context, env []string, args ...string) string {
	s.t.Helper()
	cmd := exec.CommandContext(ctx, spanpipeBinary(s.t), args...)
	cmd.Env = append(append(childEnv(), "SPANPIPE_LOG_FORMAT=text"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("spanpipe %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), tail(stderr.String(), 30))
	}
	return stdout.String()
}

// readClickHouse builds the store view of a ClickHouse database: rows counts the raw
// rows of spans (redelivered copies included, until merges collapse them), spans
// what SELECT ... FINAL returns, one row per (trace_id, span_id) at its highest
// version. fileDupes counts keys FINAL returns more than once (must be 0).
func readClickHouse(t *testing.T, conn ch.Conn, db string) storeView {
	t.Helper()
	ctx := t.Context()
	v := storeView{files: 1, spans: make(map[spanKey]storedSpan)}
	var raw uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".spans").Scan(&raw); err != nil {
		t.Fatalf("count raw rows of %s.spans: %v", db, err)
	}
	v.rows = int64(raw)
	rows, err := conn.Query(ctx, "SELECT trace_id, span_id, version, toBool(ended_at IS NOT NULL OR is_event) FROM "+db+".spans FINAL")
	if err != nil {
		t.Fatalf("read %s.spans FINAL: %v", db, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k spanKey
		var version uint64
		var ended bool
		if err := rows.Scan(&k.trace, &k.span, &version, &ended); err != nil {
			t.Fatalf("read %s.spans FINAL: %v", db, err)
		}
		cur, ok := v.spans[k]
		if ok {
			v.fileDupes++
		}
		cur.copies++
		if !ok || version > cur.version {
			cur.version, cur.ended = version, ended
		}
		v.spans[k] = cur
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read %s.spans FINAL: %v", db, err)
	}
	return v
}
