package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var metricsLineRE = regexp.MustCompile(`metrics\s+(http://\S+)/metrics`)

// TestDevServesLivezAndReadyz runs `spanpipe dev` as a process and asks its health
// endpoints the way a kubelet or `docker compose` would: /readyz names each check and
// passes once the partitions are held, /livez and /healthz pass, and `spanpipe
// healthcheck` (the compose healthcheck) exits 0 on /readyz and 1 on a path that fails.
func TestDevServesLivezAndReadyz(t *testing.T) {
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	dev := exec.Command(bin, "dev", "--port", "0", "--metrics-addr", "127.0.0.1:0", "--ui", "",
		"--db", filepath.Join(t.TempDir(), "dev.duckdb"), "--log-level", "warn")
	stderr, err := dev.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dev.Process.Signal(syscall.SIGTERM)
		_ = dev.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := metricsLineRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	var base string
	select {
	case base = <-found:
	case <-time.After(2 * time.Minute):
		t.Fatal("spanpipe dev did not print its metrics address within 2m")
	}

	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var code int
	var body string
	for deadline := time.Now().Add(time.Minute); ; {
		if code, body = get("/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %q after 1m, want 200", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{"ok assignment: 4 partitions held\n", "ok writer-stall: ", "ok sink: ", "ok drop-topic: "} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz body lacks %q:\n%s", want, body)
		}
	}
	for _, path := range []string{"/livez", "/healthz"} {
		if code, body := get(path); code != http.StatusOK || !strings.Contains(body, "ok poll-loop: ") || !strings.Contains(body, "ok writer: ") ||
			!strings.Contains(body, "ok sink-state: ") {
			t.Errorf("%s = %d %q, want 200 with the poll-loop, writer and sink-state (DuckDB) checks", path, code, body)
		}
	}
	if _, body := get("/metrics"); !strings.Contains(body, "\nspanpipe_consumer_ready 1\n") {
		t.Errorf("/metrics lacks spanpipe_consumer_ready 1")
	}

	healthcheck := func(url string) (int, string) {
		var out bytes.Buffer
		cmd := exec.Command(bin, "healthcheck", "--url", url)
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, out.String()
	}
	if code, out := healthcheck(base + "/readyz"); code != 0 || !strings.Contains(out, "ok assignment") {
		t.Errorf("spanpipe healthcheck /readyz: exit %d, %q; want 0 and the checks", code, out)
	}
	if code, out := healthcheck(base + "/no-such-path"); code != 1 || !strings.Contains(out, "404") {
		t.Errorf("spanpipe healthcheck on a 404: exit %d, %q; want 1 naming the status", code, out)
	}
}
