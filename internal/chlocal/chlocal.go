// Package chlocal runs the project's local ClickHouse server (deploy/local/clickhouse.sh:
// the engine of PyPI's chdb-core serving the native and HTTP protocols on loopback) for
// tests and `spanpipe bench` on machines without Docker.
//
// A [Server] is a process outside this one: it outlives a crashed caller, so callers
// stop it themselves (tests in a Cleanup or TestMain). Nothing here starts goroutines.
package chlocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrUnavailable marks why the launcher cannot run on this machine at all (no bash or
// Python, no script), as opposed to a launcher that ran and failed.
var ErrUnavailable = errors.New("local ClickHouse launcher unavailable")

// Server is one server started by the launcher, with its own data directory.
type Server struct {
	script  string
	dataDir string
	// DSN is the native-protocol address, clickhouse://default@127.0.0.1:PORT/default.
	// It stays the same across Kill and Start: the ports are recorded in the data dir.
	DSN string
}

// Script returns the path of deploy/local/clickhouse.sh: $SPANPIPE_CLICKHOUSE_SH, else
// the one in the module that holds the working directory.
func Script() (string, error) {
	if p := os.Getenv("SPANPIPE_CLICKHOUSE_SH"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/spanpipe/spanpipe\n")) {
			return filepath.Join(d, "deploy", "local", "clickhouse.sh"), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%w: no spanpipe checkout above %s (set SPANPIPE_CLICKHOUSE_SH)", ErrUnavailable, dir)
		}
	}
}

// Start starts a server on free ports with its data in dataDir (created if needed; an
// existing one keeps its data and ports) and waits until it answers. The first start
// on a machine installs chdb-core into the launcher's cache, which takes a minute or
// two.
func Start(ctx context.Context, dataDir string) (*Server, error) {
	script, err := Script()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	for _, bin := range []string{"bash", "python3"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, bin, err)
		}
	}
	s := &Server{script: script, dataDir: dataDir}
	return s, s.Start(ctx)
}

// Start starts the server again after [Server.Kill] or [Server.Stop], on the same
// ports and data, and waits until it answers. It does nothing to a running server.
func (s *Server) Start(ctx context.Context) error {
	out, err := s.run(ctx, "start", "--data-dir", s.dataDir)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	s.DSN = lines[len(lines)-1]
	if !strings.HasPrefix(s.DSN, "clickhouse://") {
		return fmt.Errorf("clickhouse.sh start: printed %q, want a DSN", out)
	}
	return nil
}

// Kill SIGKILLs the server (a crash: data written so far survives).
func (s *Server) Kill(ctx context.Context) error {
	_, err := s.run(ctx, "kill", "--data-dir", s.dataDir)
	return err
}

// Stop stops the server gracefully; it is idempotent.
func (s *Server) Stop(ctx context.Context) error {
	_, err := s.run(ctx, "stop", "--data-dir", s.dataDir)
	return err
}

// CPUSeconds returns the user+system CPU time the running server has used, from
// /proc (Linux only), for benchmarks that report the store's share of the CPU.
func (s *Server) CPUSeconds() (float64, error) {
	pid, err := os.ReadFile(filepath.Join(s.dataDir, "clickhouse.pid"))
	if err != nil {
		return 0, err
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strings.TrimSpace(string(pid)), "stat"))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces:
	// utime and stime are the 12th and 13th, in clock ticks (USER_HZ, 100 on Linux).
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("chlocal: short /proc stat: %q", stat)
	}
	var ticks float64
	for _, v := range f[11:13] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("chlocal: /proc stat: %w", err)
		}
		ticks += float64(n)
	}
	return ticks / 100, nil
}

// Log returns the last lines of the server's log, for failure messages.
func (s *Server) Log(lines int) string {
	b, _ := os.ReadFile(filepath.Join(s.dataDir, "server.log"))
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

func (s *Server) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{s.script}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The server is detached (setsid) but inherits nothing of ours; this bounds a
	// launcher that hangs after ctx ends.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		msg = msg[max(0, len(msg)-4000):]
		return stdout.String(), fmt.Errorf("clickhouse.sh %s: %w\n%s", strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}
