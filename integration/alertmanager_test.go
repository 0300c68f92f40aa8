package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// alertmanager is one prometheus-alertmanager process on loopback, with its own
// config and storage directory, for the alerting scenario.
type alertmanager struct {
	url string // base URL, http://127.0.0.1:PORT
	bg  *bgProc
}

// alertmanagerBinaries are where Debian's prometheus-alertmanager package puts the
// binary (/usr/bin/prometheus-alertmanager) and the upstream name, in that order.
var alertmanagerBinaries = []string{"prometheus-alertmanager", "/usr/bin/prometheus-alertmanager", "alertmanager"}

// amInstall installs Debian's prometheus-alertmanager once per run when it is missing
// and we may (root, apt-get present, SPANPIPE_IT_NO_APT unset).
var amInstall amInstallState

type amInstallState struct {
	once sync.Once
	path string
	why  string // why there is no binary, for t.Skip
}

func alertmanagerBinary(t *testing.T) string {
	t.Helper()
	amInstall.Do(t)
	if amInstall.path == "" {
		t.Skip("no Alertmanager for the alerting scenario: " + amInstall.why)
	}
	return amInstall.path
}

func lookAlertmanager() string {
	if p := os.Getenv("SPANPIPE_IT_ALERTMANAGER"); p != "" {
		return p
	}
	for _, name := range alertmanagerBinaries {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Do finds the binary, or installs the package with apt-get and finds it then.
func (a *amInstallState) Do(t *testing.T) {
	a.once.Do(func() {
		if a.path = lookAlertmanager(); a.path != "" {
			return
		}
		switch {
		case os.Getenv("SPANPIPE_IT_NO_APT") != "":
			a.why = "prometheus-alertmanager is not installed and SPANPIPE_IT_NO_APT is set (install it: apt-get install prometheus-alertmanager, or point SPANPIPE_IT_ALERTMANAGER at a binary)"
			return
		case os.Geteuid() != 0:
			a.why = "prometheus-alertmanager is not installed and the tests do not run as root, so they cannot apt-get it (install it: apt-get install prometheus-alertmanager, or point SPANPIPE_IT_ALERTMANAGER at a binary)"
			return
		}
		if _, err := exec.LookPath("apt-get"); err != nil {
			a.why = "prometheus-alertmanager is not installed and there is no apt-get to install it (set SPANPIPE_IT_ALERTMANAGER to an alertmanager binary)"
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		install := func() ([]byte, error) {
			cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", "prometheus-alertmanager")
			// No service start from the maintainer scripts: the test starts its own.
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "RUNLEVEL=1")
			return cmd.CombinedOutput()
		}
		out, err := install()
		if err != nil { // a brand-new machine has no package lists yet
			upd, uerr := exec.CommandContext(ctx, "apt-get", "update").CombinedOutput()
			if uerr != nil {
				a.why = fmt.Sprintf("apt-get update failed: %v\n%s", uerr, tail(string(upd), 10))
				return
			}
			out, err = install()
		}
		if err != nil {
			a.why = fmt.Sprintf("apt-get install prometheus-alertmanager failed: %v\n%s", err, tail(string(out), 10))
			return
		}
		if a.path = lookAlertmanager(); a.path == "" {
			a.why = "apt-get installed prometheus-alertmanager, but none of " + strings.Join(alertmanagerBinaries, ", ") + " is there"
			return
		}
		fmt.Fprintf(os.Stderr, "integration: installed prometheus-alertmanager (%s) in %s\n", a.path, time.Since(start).Round(100*time.Millisecond))
	})
}

// freePort asks the kernel for a free loopback port. Another process may take it
// before Alertmanager binds it; startAlertmanager retries then.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// alertmanagerConfig routes everything to a receiver that notifies nobody: the test
// reads alerts from the API, which holds them whatever the routing.
const alertmanagerConfig = `route:
  receiver: blackhole
  group_by: [alertname, reason, signal, sink, component]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: blackhole
`

// startAlertmanager starts prometheus-alertmanager on a free loopback port with
// clustering off, its own config and storage under dir, and waits until /-/ready
// answers. It is stopped when the test ends. It skips the test when there is no
// binary and none can be installed, and when the binary cannot start at all.
func startAlertmanager(t *testing.T, dir string) *alertmanager {
	t.Helper()
	bin := alertmanagerBinary(t)
	dir = filepath.Join(dir, "alertmanager")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(alertmanagerConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for try := 1; try <= 3; try++ {
		port, err := freePort()
		if err != nil {
			t.Skipf("no loopback port for Alertmanager: %v", err)
		}
		am := &alertmanager{url: fmt.Sprintf("http://127.0.0.1:%d", port)}
		am.bg = startBg(t, "alertmanager", filepath.Join(dir, fmt.Sprintf("alertmanager-%d.log", try)), nil, bin,
			"--config.file="+cfg,
			"--storage.path="+filepath.Join(dir, "data"),
			fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
			"--cluster.listen-address=", // no gossip: one instance, no port 9094
			"--log.level=info")
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) && !am.bg.done() {
			if err := am.ready(t.Context()); err == nil {
				t.Logf("alertmanager %s ready (%s)", am.url, bin)
				return am
			} else {
				lastErr = err
			}
			select {
			case <-t.Context().Done():
				t.Fatal("test ended while waiting for Alertmanager")
			case <-am.bg.exited:
			case <-time.After(100 * time.Millisecond):
			}
		}
		am.bg.stop(t)
		lastErr = fmt.Errorf("%v\n%s", lastErr, am.bg.logTail(20))
	}
	t.Skipf("Alertmanager (%s) did not start on loopback after 3 tries: %v", bin, lastErr)
	return nil
}

func (am *alertmanager) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, am.url+"/-/ready", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /-/ready: %s", resp.Status)
	}
	return nil
}

// amAlert is the part of an Alertmanager API v2 gettableAlert the test reads.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// alerts is GET /api/v2/alerts with the given label matchers (name="value"). The API
// lists alerts that have not ended: a resolved alert (endsAt in the past) is gone.
func (am *alertmanager) alerts(ctx context.Context, matchers ...string) ([]amAlert, error) {
	q := url.Values{}
	for _, m := range matchers {
		q.Add("filter", m)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, am.url+"/api/v2/alerts?"+q.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v2/alerts: %s", resp.Status)
	}
	var out []amAlert
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("GET /api/v2/alerts: %w", err)
	}
	return out, nil
}

// bgProc is a background process of the test (Alertmanager, `spanpipe alert`): its
// output goes to a log file, it is killed with the test binary and stopped when the
// test ends.
type bgProc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}

	mu      sync.Mutex
	matched map[*regexp.Regexp]chan string
}

// startBg starts bin with args. watch lists regexps of log lines to wait for (see
// await): the first submatch of the first line matching each is delivered.
func startBg(t *testing.T, name, logPath string, watch []*regexp.Regexp, bin string, args ...string) *bgProc {
	t.Helper()
	p := &bgProc{name: name, logPath: logPath, exited: make(chan struct{}), matched: map[*regexp.Regexp]chan string{}}
	for _, re := range watch {
		p.matched[re] = make(chan string, 1)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w := &lineWriter{f: logf, onLine: func(line string) {
		for re, ch := range p.matched {
			if m := re.FindStringSubmatch(line); m != nil {
				v := m[0]
				if len(m) > 1 {
					v = m[1]
				}
				select {
				case ch <- v:
				default:
				}
			}
		}
	}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = childEnv()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *bgProc) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// await waits for the first log line matching re (passed to startBg) and returns its
// first submatch.
func (p *bgProc) await(t *testing.T, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	select {
	case v := <-p.matched[re]:
		return v
	case <-p.exited:
		t.Fatalf("%s exited (%s) before logging %q:\n%s", p.name, p.cmd.ProcessState, re, p.logTail(30))
	case <-time.After(timeout):
		t.Fatalf("%s did not log %q within %s:\n%s", p.name, re, timeout, p.logTail(30))
	}
	return ""
}

// stop sends SIGTERM, waits up to 20s, then kills. It returns the exit code (-1 when
// killed).
func (p *bgProc) stop(t *testing.T) int {
	if p.done() {
		return p.cmd.ProcessState.ExitCode()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Logf("%s did not exit within 20s of SIGTERM; killed", p.name)
		return -1
	}
}

func (p *bgProc) logTail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	return fmt.Sprintf("--- %s (%s) last %d log lines ---\n%s", p.name, p.logPath, n, tail(string(b), n))
}

// scrapeURL reads a /metrics page.
func scrapeURL(ctx context.Context, u string) (metricSet, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("GET " + u + ": " + resp.Status)
	}
	return parseMetrics(resp.Body)
}

// runSpanpipe runs a spanpipe subcommand to completion and returns its stdout.
func runSpanpipe(t *testing.T, ctx context.Context, logPath string, args ...string) string {
	t.Helper()
	var stdout strings.Builder
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, spanpipeBinary(t), args...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = &stdout, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("spanpipe %s: %v\nstdout:\n%s\nstderr:\n%s", args[0], err, stdout.String(), tail(string(b), 20))
	}
	return stdout.String()
}

// atoiOr parses n, or returns -1.
func atoiOr(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}
