package deploy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot is the module root (this package is deploy/).
var repoRoot = func() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Dir(wd)
}()

// tools holds the binaries the tests build once per run.
var tools struct {
	dir         string
	dirOnce     sync.Once
	spanpipe    string
	spanpipeErr error
	spanOnce    sync.Once
}

func toolDir(t *testing.T) string {
	tools.dirOnce.Do(func() {
		d, err := os.MkdirTemp("", "spanpipe-deploy-test-")
		if err != nil {
			panic(err)
		}
		tools.dir = d
	})
	return tools.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	stopDev()
	if tools.dir != "" {
		os.RemoveAll(tools.dir)
	}
	os.Exit(code)
}

// spanpipeBin builds ./cmd/spanpipe once (the same flags as `make build`, so the
// package archives are shared with the other test packages' builds).
func spanpipeBin(t *testing.T) string {
	t.Helper()
	tools.spanOnce.Do(func() {
		out := filepath.Join(toolDir(t), "spanpipe")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/spanpipe")
		cmd.Dir = repoRoot
		if b, err := cmd.CombinedOutput(); err != nil {
			tools.spanpipeErr = fmt.Errorf("go build ./cmd/spanpipe: %v\n%s", err, b)
			return
		}
		tools.spanpipe = out
	})
	if tools.spanpipeErr != nil {
		t.Fatal(tools.spanpipeErr)
	}
	return tools.spanpipe
}

// checkConfig runs `spanpipe consume --config path --check` with env (KEY=VALUE
// items added to a clean environment) and fails the test unless it accepts it.
func checkConfig(t *testing.T, path string, env ...string) {
	t.Helper()
	cmd := exec.Command(spanpipeBin(t), "consume", "--config", path, "--check")
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "config ok") {
		t.Errorf("spanpipe consume --check --config %s: %v\n%s", path, err, out)
	}
}

// cleanEnv is the test's environment without SPANPIPE_* variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SPANPIPE_") {
			env = append(env, kv)
		}
	}
	return env
}

// devProcess is a running `spanpipe dev`: in-process broker, consumer, DuckDB.
type devProcess struct {
	metricsBase string // http://host:port
}

var devMetricsRE = regexp.MustCompile(`metrics\s+(http://\S+)/metrics`)

// dev is the package's one `spanpipe dev`, started by the first test that needs it
// and stopped by TestMain.
var dev struct {
	once sync.Once
	cmd  *exec.Cmd
	base string
	err  error
}

// startDev returns the running `spanpipe dev --demo 50` (so that every pipeline
// metric has moved), starting it on first use, once its metrics server is up.
func startDev(t *testing.T) devProcess {
	t.Helper()
	bin := spanpipeBin(t)
	dev.once.Do(func() {
		dir := toolDir(t)
		cmd := exec.Command(bin, "dev", "--demo", "50", "--db", filepath.Join(dir, "dev.duckdb"),
			"--port", "0", "--metrics-addr", "127.0.0.1:0", "--log-level", "warn")
		cmd.Env = cleanEnv()
		cmd.Dir = dir
		stderr, err := cmd.StderrPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			dev.err = err
			return
		}
		dev.cmd = cmd
		found := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				if m := devMetricsRE.FindStringSubmatch(sc.Text()); m != nil {
					select {
					case found <- m[1]:
					default:
					}
				}
			}
			_, _ = io.Copy(io.Discard, stderr)
		}()
		select {
		case dev.base = <-found:
		case <-time.After(2 * time.Minute):
			dev.err = fmt.Errorf("spanpipe dev did not print its metrics address within 2m")
		}
	})
	if dev.err != nil {
		t.Fatal(dev.err)
	}
	return devProcess{metricsBase: dev.base}
}

// stopDev ends the shared `spanpipe dev` (SIGINT: its graceful stop).
func stopDev() {
	if dev.cmd == nil {
		return
	}
	_ = dev.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = dev.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = dev.cmd.Process.Kill()
		<-done
	}
}

// get fetches base+path and returns the status code and body.
// getOK polls url until it answers 200 or a minute passes, and returns the last
// answer: /readyz of a process that just started fails until its partitions arrive.
func getOK(t *testing.T, url string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		code, body := get(t, url)
		if code == http.StatusOK || time.Now().After(deadline) {
			return code, body
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
