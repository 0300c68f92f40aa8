package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/internal/kafkatest"
)

// proc is the real binary running in the background, its stderr read as it comes.
type proc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	mu     sync.Mutex
	stderr []string
	done   chan struct{}
	err    error // valid after done
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout = &p.stdout
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr = append(p.stderr, sc.Text())
			p.mu.Unlock()
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// stderrMatch is the last stderr line matching re, or "".
func (p *proc) stderrMatch(re *regexp.Regexp) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.stderr) - 1; i >= 0; i-- {
		if re.MatchString(p.stderr[i]) {
			return p.stderr[i]
		}
	}
	return ""
}

func (p *proc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.stderr, "\n")
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("still running after %s; stderr:\n%s", d, p.stderrText())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// lastJSON decodes the last stdout line into v.
func (p *proc) lastJSON(t *testing.T, v any) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(p.stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), v); err != nil {
		t.Fatalf("last stdout line is not a JSON summary: %q\nstderr:\n%s", p.stdout.String(), p.stderrText())
	}
}

// closedPort is a local port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

var refused = regexp.MustCompile(`connection refused`)

// TestProduceUnreachableBrokerNamesReasonAndFails: against a broker that is not
// there, produce says "connection refused" within seconds, fails the records at
// --delivery-timeout and exits 1 with a summary counting them. It used to be 60 s of
// silence, then "flush: context deadline exceeded" and no summary.
func TestProduceUnreachableBrokerNamesReasonAndFails(t *testing.T) {
	p := start(t, "produce", "--brokers", closedPort(t), "--traces", "20", "--delivery-timeout", "3s", "--progress", "1s")
	began := time.Now()
	kafkatest.Eventually(t, 15*time.Second, "stderr naming connection refused", func() bool { return p.stderrMatch(refused) != "" })
	t.Logf("named the reason after %s", time.Since(began).Round(time.Millisecond))
	if code := p.wait(t, 60*time.Second); code != 1 {
		t.Fatalf("exit status %d, want 1 (records lost); stderr:\n%s", code, p.stderrText())
	}
	var sum produceSummary
	p.lastJSON(t, &sum)
	if sum.Traces != 20 || sum.Delivered != 0 || sum.Failed == 0 || sum.Records != sum.Failed+sum.NotSent {
		t.Fatalf("summary %+v: want 20 traces, nothing delivered, every record failed", sum)
	}
	if last := p.stderrMatch(regexp.MustCompile(`^spanpipe: `)); !strings.Contains(last, "records lost") || !refused.MatchString(last) {
		t.Fatalf("final error %q: want the loss and its reason", last)
	}
}

// TestProduceBrokerGoesAwayThenSIGTERM: the broker stops while produce publishes;
// produce names the problem, and SIGTERM ends it within seconds with a summary that
// accounts for every record: delivered, failed or not sent. It used to sit for 14
// minutes without progress, and SIGTERM took 127 s.
func TestProduceBrokerGoesAwayThenSIGTERM(t *testing.T) {
	c := kafkatest.Cluster(t, 4, "spanpipe.spans", "spanpipe.drops")
	p := start(t, "produce", "--brokers", c.ListenAddrs()[0], "--traces", "1000000", "--rate", "500", "--progress", "300ms")
	delivered := regexp.MustCompile(`produce: .* ([1-9][0-9]*) records delivered`)
	kafkatest.Eventually(t, 30*time.Second, "records delivered", func() bool { return p.stderrMatch(delivered) != "" })
	c.Close()
	kafkatest.Eventually(t, 30*time.Second, "stderr naming the broker problem", func() bool {
		return p.stderrMatch(regexp.MustCompile(`cannot reach Kafka broker|broker unreachable`)) != ""
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	code := p.wait(t, 20*time.Second)
	t.Logf("exited %s after SIGTERM, status %d", time.Since(signalled).Round(time.Millisecond), code)
	if code != 1 {
		t.Fatalf("exit status %d, want 1 (records lost); stderr:\n%s", code, p.stderrText())
	}
	var sum produceSummary
	p.lastJSON(t, &sum)
	if !sum.Interrupted || sum.Delivered == 0 || sum.Failed+sum.NotSent == 0 || sum.Records != sum.Delivered+sum.Failed+sum.NotSent {
		t.Fatalf("summary %+v: want some delivered, some lost, every record accounted for", sum)
	}
	if sum.Traces >= sum.TracesPlanned {
		t.Fatalf("summary %+v: the run was interrupted, yet claims every planned trace", sum)
	}
}

// TestProduceDeliversAndNamesTraces: the happy path exits 0 with every record
// delivered and names a few traces with the command to open them.
func TestProduceDeliversAndNamesTraces(t *testing.T) {
	c := kafkatest.Cluster(t, 2, "spanpipe.spans", "spanpipe.drops")
	p := start(t, "produce", "--brokers", c.ListenAddrs()[0], "--traces", "20")
	if code := p.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, p.stderrText())
	}
	var sum produceSummary
	p.lastJSON(t, &sum)
	if sum.Traces != 20 || sum.Records == 0 || sum.Delivered != sum.Records || sum.Failed+sum.NotSent != 0 {
		t.Fatalf("summary %+v: want 20 traces, every record delivered", sum)
	}
	if p.stderrMatch(regexp.MustCompile(`spanpipe trace [0-9a-f]{32} --db `)) == "" {
		t.Fatalf("stderr names no trace to open:\n%s", p.stderrText())
	}
}
