package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// errLauncherUnavailable marks why the local launcher cannot run on this machine at
// all (no bash or Java, or no jars and no way to fetch them), as opposed to a
// launcher that is available and failed.
var errLauncherUnavailable = errors.New("local launcher unavailable")

// launcher is one cluster of deploy/local/kafka.sh, with its own data directory and
// its own cache directory, so that nothing here touches the "current cluster" that
// kafka.sh remembers for people using it by hand.
type launcher struct {
	script    string
	cacheDir  string
	dataDir   string
	nodes     int
	port      int
	bootstrap []string
	stopOnce  sync.Once
}

// fetchJars runs `kafka.sh fetch` into the shared cache (deploy/local/.cache) once per
// run: a no-op when the jars are there, ~20 s from Maven Central otherwise.
var fetchJars struct {
	once sync.Once
	err  error
}

func launcherScript() string { return filepath.Join(repoRoot, "deploy", "local", "kafka.sh") }

func launcherPrereqs(ctx context.Context) error {
	fetchJars.once.Do(func() {
		if _, err := exec.LookPath("bash"); err != nil {
			fetchJars.err = fmt.Errorf("%w: bash: %v", errLauncherUnavailable, err)
			return
		}
		java := "java"
		if h := os.Getenv("JAVA_HOME"); h != "" {
			java = filepath.Join(h, "bin", "java")
		}
		if _, err := exec.LookPath(java); err != nil {
			fetchJars.err = fmt.Errorf("%w: Java 17+ is needed: %v", errLauncherUnavailable, err)
			return
		}
		start := time.Now()
		cmd := exec.CommandContext(ctx, "bash", launcherScript(), "fetch")
		cmd.Env = launcherEnv("")
		if out, err := cmd.CombinedOutput(); err != nil {
			fetchJars.err = fmt.Errorf("%w: kafka.sh fetch: %v\n%s", errLauncherUnavailable, err, tail(string(out), 20))
			return
		}
		fmt.Fprintf(os.Stderr, "integration: Kafka jars ready (kafka.sh fetch took %s)\n", time.Since(start).Round(100*time.Millisecond))
	})
	return fetchJars.err
}

// launcherEnv is the environment of kafka.sh: ours, with a private cache dir when one
// is given (else the shared one), a generous start deadline for a loaded 2-core
// machine, and a short stop.
func launcherEnv(cacheDir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "KAFKA_DATA_DIR" || (k == "KAFKA_CACHE_DIR" && cacheDir != "") {
			continue // always explicit: --data-dir, and the private cache
		}
		env = append(env, kv)
	}
	if cacheDir != "" {
		env = append(env, "KAFKA_CACHE_DIR="+cacheDir)
	}
	if os.Getenv("KAFKA_START_TIMEOUT") == "" {
		env = append(env, "KAFKA_START_TIMEOUT=240")
	}
	return append(env, "KAFKA_STOP_TIMEOUT=15")
}

// startLauncher starts a nodes-node cluster on free ports in a new data dir under the
// run's work dir, passing extra to `kafka.sh start` (--secure). It is stopped at exit
// in any case; callers may stop it earlier.
func startLauncher(ctx context.Context, nodes int, extra ...string) (*launcher, error) {
	if err := launcherPrereqs(ctx); err != nil {
		return nil, err
	}
	// A private cache dir whose kafka-<version> entries link to the shared jars.
	shared := filepath.Join(repoRoot, "deploy", "local", ".cache")
	if v := os.Getenv("KAFKA_CACHE_DIR"); v != "" {
		shared = v
	}
	cache, err := os.MkdirTemp(workDir, "kafka-cache-")
	if err != nil {
		return nil, err
	}
	jars, _ := filepath.Glob(filepath.Join(shared, "kafka-*"))
	for _, j := range jars {
		if fi, err := os.Stat(j); err == nil && fi.IsDir() {
			if err := os.Symlink(j, filepath.Join(cache, filepath.Base(j))); err != nil {
				return nil, err
			}
		}
	}
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		data, err := os.MkdirTemp(workDir, fmt.Sprintf("kafka-%dn-", nodes))
		if err != nil {
			return nil, err
		}
		port, err := freePortBlock(nodes)
		if err != nil {
			return nil, err
		}
		l := &launcher{script: launcherScript(), cacheDir: cache, dataDir: data, nodes: nodes, port: port}
		atExit(l.stop)
		out, err := l.run(ctx, append([]string{"start", "--brokers", strconv.Itoa(nodes), "--port", strconv.Itoa(port), "--data-dir", data}, extra...)...)
		if err == nil {
			lines := strings.Split(strings.TrimSpace(out), "\n")
			l.bootstrap = strings.Split(lines[len(lines)-1], ",")
			return l, nil
		}
		l.stop()
		lastErr = err
		if !strings.Contains(err.Error(), "already in use") {
			break // only a port race is worth another try
		}
	}
	return nil, lastErr
}

// run runs one kafka.sh command for this cluster and returns its stdout; the error
// carries the end of stderr.
func (l *launcher) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", append([]string{l.script}, args...)...)
	cmd.Env = launcherEnv(l.cacheDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kafka.sh %s: %w\n%s", strings.Join(args, " "), err, tail(stderr.String(), 60))
	}
	return stdout.String(), nil
}

// kill SIGKILLs one node (kafka.sh kill).
func (l *launcher) kill(ctx context.Context, node int) error {
	_, err := l.run(ctx, "kill", "--node", strconv.Itoa(node), "--data-dir", l.dataDir)
	return err
}

// restartNode starts a node again from its data dir and waits until it is ready.
func (l *launcher) restartNode(ctx context.Context, node int) error {
	_, err := l.run(ctx, "restart-node", "--node", strconv.Itoa(node), "--data-dir", l.dataDir)
	return err
}

// stop stops every node of the cluster (idempotent).
func (l *launcher) stop() {
	l.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := l.run(ctx, "stop", "--data-dir", l.dataDir); err != nil {
			fmt.Fprintf(os.Stderr, "integration: stopping the cluster in %s: %v\n", l.dataDir, err)
		}
	})
}

// serverLog returns the end of a node's broker log, for failure messages.
func (l *launcher) serverLog(node, lines int) string {
	b, _ := os.ReadFile(filepath.Join(l.dataDir, fmt.Sprintf("node-%d", node), "logs", "server.log"))
	return tail(string(b), lines)
}

// freePortBlock finds P such that the client ports P..P+n-1 and the controller ports
// P+100..P+100+n-1 (the launcher's layout) are free on 127.0.0.1 right now. The
// launcher checks again and fails fast on a race; startLauncher then retries.
func freePortBlock(n int) (int, error) {
	for range 100 {
		p := 20000 + rand.IntN(25000)
		ok := true
		for i := range n {
			for _, port := range []int{p + i, p + 100 + i} {
				ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
				if err != nil {
					ok = false
					break
				}
				ln.Close()
			}
		}
		if ok {
			return p, nil
		}
	}
	return 0, errors.New("no free block of ports for the launcher")
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
