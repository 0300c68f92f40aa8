package main

import (
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/internal/kafkatest"
)

// TestDevCtrlCStopsDemoAtOnce: Ctrl-C during a long demo stops it within seconds, and
// the summary says what was published and stored, not what --demo asked for. It used
// to take 51 s, log the planned count after a cancelled flush, and exit 0.
func TestDevCtrlCStopsDemoAtOnce(t *testing.T) {
	p := start(t, "dev", "--demo", "100000", "--db", filepath.Join(t.TempDir(), "dev.duckdb"), "--port", "0",
		"--metrics-addr", "127.0.0.1:0", "--ui", "")
	progress := regexp.MustCompile(`^dev: [1-9][0-9]*/100000 demo traces published`)
	kafkatest.Eventually(t, 60*time.Second, "demo progress on stderr", func() bool { return p.stderrMatch(progress) != "" })
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	code := p.wait(t, 30*time.Second)
	t.Logf("exited %s after SIGINT", time.Since(signalled).Round(time.Millisecond))
	if code != 130 {
		t.Fatalf("exit status %d, want 130 (the demo did not finish); stderr:\n%s", code, p.stderrText())
	}
	var sum devSummary
	p.lastJSON(t, &sum)
	if !sum.Interrupted || sum.Traces == 0 || sum.Traces >= 100000 || sum.SpansStored > int64(sum.SpansEmitted) {
		t.Fatalf("summary %+v: want the traces actually published (0 < n < 100000) and no more stored than emitted", sum)
	}
	if strings.Contains(p.stderrText(), "traces=100000") {
		t.Fatalf("stderr claims the planned count:\n%s", p.stderrText())
	}
}

// TestDevPortInUseIsAnError: a --port the user gave is used or an error; a second
// dev on a taken port used to move silently to a random one.
func TestDevPortInUseIsAnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	p := start(t, "dev", "--port", port, "--db", filepath.Join(t.TempDir(), "dev.duckdb"), "--metrics-addr", "127.0.0.1:0", "--ui", "")
	if code := p.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("exit status %d, want 1; stderr:\n%s", code, p.stderrText())
	}
	if !strings.Contains(p.stderrText(), "--port "+port) {
		t.Fatalf("stderr does not name the port:\n%s", p.stderrText())
	}
}

// TestDevPrintsTracesToOpen: after the demo, dev names a few trace ids with the
// command that opens them and their explorer URL. The Kafka client logs at WARN unless
// --kafka-log-level says otherwise: its INFO lines (45 for a 3 s demo) used to drown
// spanpipe's own.
func TestDevPrintsTracesToOpen(t *testing.T) {
	kafkaInfo := regexp.MustCompile(`level=INFO .*component=kafka`)
	for _, tc := range []struct {
		kafkaLevel    string
		wantKafkaInfo bool
	}{{"", false}, {"info", true}} {
		t.Run("kafka-log-level="+tc.kafkaLevel, func(t *testing.T) {
			args := []string{"dev", "--demo", "20", "--exit-when-done", "--db", filepath.Join(t.TempDir(), "dev.duckdb"), "--port", "0",
				"--metrics-addr", "127.0.0.1:0", "--ui", "127.0.0.1:0"}
			if tc.kafkaLevel != "" {
				args = append(args, "--kafka-log-level", tc.kafkaLevel)
			}
			p := start(t, args...)
			if code := p.wait(t, 120*time.Second); code != 0 {
				t.Fatalf("exit status %d; stderr:\n%s", code, p.stderrText())
			}
			out := p.stderrText()
			cmd := regexp.MustCompile(`spanpipe trace ([0-9a-f]{32}) --db `).FindStringSubmatch(out)
			if cmd == nil || !regexp.MustCompile(`http://127\.0\.0\.1:[0-9]+/#/trace/`+cmd[1]).MatchString(out) {
				t.Fatalf("stderr lacks a trace id with its command and explorer URL:\n%s", out)
			}
			if got := kafkaInfo.MatchString(out); got != tc.wantKafkaInfo {
				t.Fatalf("Kafka client INFO lines present: %v, want %v:\n%s", got, tc.wantKafkaInfo, out)
			}
		})
	}
}
