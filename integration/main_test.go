package integration

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tckafka "github.com/testcontainers/testcontainers-go/modules/kafka"
)

// Run-wide state, set up by TestMain and the sync.Once helpers below.
var (
	repoRoot string // the module root, where deploy/local/kafka.sh lives
	workDir  string // this run's scratch directory (binary, launcher data, DuckDB files)
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	root, err := findRepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "spanpipe-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	workDir = dir
	if os.Getenv("SPANPIPE_IT_KEEP") == "" {
		defer os.RemoveAll(dir)
	} else {
		defer fmt.Fprintln(os.Stderr, "integration: SPANPIPE_IT_KEEP is set, kept", dir)
	}
	defer runAtExit()
	defer watchdog()()
	return m.Run()
}

// findRepoRoot walks up from the package directory (go test's working directory) to
// the go.mod of this module.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/spanpipe/spanpipe\n")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of github.com/spanpipe/spanpipe above %s", dir)
		}
	}
}

// atExit registers fn to run when the package's tests end, also when the run is
// interrupted or about to hit its -timeout (see watchdog). Brokers started by the
// launcher outlive this process otherwise.
var exitFns struct {
	sync.Mutex
	fns  []func()
	done bool
}

func atExit(fn func()) {
	exitFns.Lock()
	defer exitFns.Unlock()
	exitFns.fns = append(exitFns.fns, fn)
}

// runAtExit runs the registered functions once, last registered first.
func runAtExit() {
	exitFns.Lock()
	fns := exitFns.fns
	exitFns.fns = nil
	exitFns.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// watchdog stops brokers and processes when the run is interrupted, or shortly before
// go test's -timeout panics (a panic skips TestMain's deferred cleanup and would leave
// JVMs running). It returns a function that disarms it.
func watchdog() func() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	var deadline <-chan time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	if f := flag.Lookup("test.timeout"); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			if d, ok := g.Get().(time.Duration); ok && d > 0 {
				timer.Reset(d - min(d/10, 30*time.Second))
				deadline = timer.C
			}
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case s := <-sig:
			fmt.Fprintf(os.Stderr, "integration: %v: stopping brokers and consumers\n", s)
			runAtExit()
			os.Exit(1)
		case <-deadline:
			fmt.Fprintln(os.Stderr, "integration: the test timeout is near: stopping brokers and consumers now")
			runAtExit()
		case <-stop:
		}
	}()
	return func() {
		signal.Stop(sig)
		timer.Stop()
		close(stop)
		<-done
	}
}

// shared is the one broker (cluster) every scenario without broker faults uses.
var shared struct {
	once    sync.Once
	brokers []string
	how     string
	skip    string // why there is no broker, for t.Skip
	fail    string // why a broker that should work did not, for t.Fatal
}

// sharedBrokers returns the package's broker, starting it on first use: KAFKA_BROKERS,
// else testcontainers-go Kafka where a Docker engine answers, else the local launcher.
// It skips the test only when none of them is available.
func sharedBrokers(t *testing.T) []string {
	t.Helper()
	shared.once.Do(func() {
		if v := strings.TrimSpace(os.Getenv("KAFKA_BROKERS")); v != "" {
			shared.brokers, shared.how = strings.Split(v, ","), "KAFKA_BROKERS"
			return
		}
		var tried []string
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		brokers, err := startContainer(ctx)
		if err == nil {
			shared.brokers, shared.how = brokers, "testcontainers-go Kafka"
			return
		}
		tried = append(tried, "testcontainers-go Kafka: "+err.Error())
		l, err := startLauncher(ctx, 1)
		switch {
		case err == nil:
			shared.brokers, shared.how = l.bootstrap, "local launcher ("+l.dataDir+")"
		case errors.Is(err, errLauncherUnavailable):
			tried = append(tried, "deploy/local/kafka.sh: "+err.Error())
			shared.skip = "no Kafka broker for the integration tests: KAFKA_BROKERS is not set; " + strings.Join(tried, "; ")
		default:
			shared.fail = "the local Kafka launcher is available but did not start a broker: " + err.Error()
		}
	})
	if shared.skip != "" {
		t.Skip(shared.skip)
	}
	if shared.fail != "" {
		t.Fatal(shared.fail)
	}
	t.Logf("broker: %s via %s", strings.Join(shared.brokers, ","), shared.how)
	return shared.brokers
}

// ownLauncher starts a launcher cluster of its own for a scenario that kills or
// restarts brokers (never the shared one, which other scenarios use), stopped when the
// test ends. It skips when the launcher cannot run here.
func ownLauncher(t *testing.T, nodes int) *launcher {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := startLauncher(ctx, nodes)
	if errors.Is(err, errLauncherUnavailable) {
		t.Skipf("this scenario kills brokers and needs the local launcher (deploy/local/kafka.sh), which cannot run here: %v", err)
	}
	if err != nil {
		t.Fatalf("start a %d-node launcher cluster: %v", nodes, err)
	}
	t.Cleanup(l.stop)
	t.Logf("own %d-node cluster %s ready in %s (data %s)", nodes, strings.Join(l.bootstrap, ","), time.Since(start).Round(time.Second), l.dataDir)
	return l
}

// startContainer runs a Kafka container with testcontainers-go when a Docker engine
// answers. The container is terminated at exit.
func startContainer(ctx context.Context) (brokers []string, err error) {
	defer func() {
		// testcontainers may panic when no Docker host can be found at all.
		if r := recover(); r != nil {
			err = fmt.Errorf("no Docker engine: %v", r)
		}
	}()
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return nil, fmt.Errorf("no Docker engine: %w", err)
	}
	if err := p.Health(ctx); err != nil {
		return nil, fmt.Errorf("Docker engine does not answer: %w", err)
	}
	image := envString("SPANPIPE_IT_KAFKA_IMAGE", "confluentinc/confluent-local:7.5.0")
	ctr, err := tckafka.Run(ctx, image, tckafka.WithClusterID("spanpipe-it"))
	if ctr != nil {
		atExit(func() { _ = testcontainers.TerminateContainer(ctr) })
	}
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", image, err)
	}
	return ctr.Brokers(ctx)
}

// spanpipe is the binary under test, built once per run with the fault hook.
var spanpipe struct {
	once sync.Once
	path string
	err  error
}

func spanpipeBinary(t *testing.T) string {
	t.Helper()
	spanpipe.once.Do(func() {
		gobin, err := exec.LookPath("go")
		if err != nil {
			spanpipe.err = err
			return
		}
		path := filepath.Join(workDir, "bin", "spanpipe")
		start := time.Now()
		// The fault scenarios arm the sink fault hook (SPANPIPE_FAULT_FILE), which
		// only a binary built with this tag has.
		cmd := exec.Command(gobin, "build", "-tags", "spanpipe_fault", "-o", path, "./cmd/spanpipe")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			spanpipe.err = fmt.Errorf("go build -tags spanpipe_fault ./cmd/spanpipe: %w\n%s", err, out)
			return
		}
		spanpipe.path = path
		fmt.Fprintf(os.Stderr, "integration: built %s in %s\n", path, time.Since(start).Round(100*time.Millisecond))
	})
	if spanpipe.err != nil {
		t.Fatal(spanpipe.err)
	}
	return spanpipe.path
}

// Sizes and durations are configurable through SPANPIPE_IT_* variables (README.md).

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			panic(fmt.Sprintf("%s=%q: want a positive integer", name, v))
		}
		return n
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			panic(fmt.Sprintf("%s=%q: want a positive duration such as 20s", name, v))
		}
		return d
	}
	return def
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
