package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/internal/kafkasec"
	"github.com/twmb/franz-go/pkg/kgo"
)

// secureBroker is a `kafka.sh start --secure` cluster: SASL_SSL only, a CA of its own,
// and a SCRAM user whose password only a file holds.
type secureBroker struct {
	brokers  []string
	caFile   string
	user     string
	pwFile   string
	password string
}

func startSecureBroker(t *testing.T) secureBroker {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := startLauncher(ctx, 1, "--secure")
	if errors.Is(err, errLauncherUnavailable) {
		t.Skipf("the secured broker needs the local launcher (deploy/local/kafka.sh), which cannot run here: %v", err)
	}
	if err != nil {
		t.Fatalf("kafka.sh start --secure: %v", err)
	}
	t.Cleanup(l.stop)
	dir := filepath.Join(l.dataDir, "secure")
	user, err := os.ReadFile(filepath.Join(dir, "user"))
	if err != nil {
		t.Fatal(err)
	}
	b := secureBroker{brokers: l.bootstrap, caFile: filepath.Join(dir, "ca.pem"), user: strings.TrimSpace(string(user))}
	b.pwFile = filepath.Join(dir, b.user+".password")
	pw, err := os.ReadFile(b.pwFile)
	if err != nil {
		t.Fatal(err)
	}
	b.password = strings.TrimSpace(string(pw))
	t.Logf("secured broker %s ready in %s (CA %s)", strings.Join(b.brokers, ","), time.Since(start).Round(time.Second), b.caFile)
	return b
}

// env is the SPANPIPE_KAFKA_* settings of a client of b; the password comes from its
// file unless with overrides it (KEY=VALUE items replace or add variables).
func (b secureBroker) env(with ...string) []string {
	env := map[string]string{
		"SPANPIPE_KAFKA_BROKERS":            strings.Join(b.brokers, ","),
		"SPANPIPE_KAFKA_TLS_ENABLE":         "true",
		"SPANPIPE_KAFKA_TLS_CA_FILE":        b.caFile,
		"SPANPIPE_KAFKA_SASL_MECHANISM":     "scram-sha-512",
		"SPANPIPE_KAFKA_SASL_USERNAME":      b.user,
		"SPANPIPE_KAFKA_SASL_PASSWORD_FILE": b.pwFile,
	}
	for _, kv := range with {
		k, v, _ := strings.Cut(kv, "=")
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	out := childEnv()
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// secureRun is one finished spanpipe process.
type secureRun struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

func runWithEnv(t *testing.T, ctx context.Context, env []string, args ...string) secureRun {
	t.Helper()
	cmd := exec.CommandContext(ctx, spanpipeBinary(t), args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = sysProcAttr()
	start := time.Now()
	err := cmd.Run()
	r := secureRun{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("spanpipe %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// TestSecureKafka runs the real binary against a SASL_SSL broker (SCRAM-SHA-512, a CA
// of its own): produce and consume work, and the DuckDB file holds every span; a
// wrong password and an untrusted certificate each end the command with a clear error
// and a non-zero exit within seconds; the password never shows in --check output,
// logs, errors or /metrics.
func TestSecureKafka(t *testing.T) {
	b := startSecureBroker(t)
	dir := t.TempDir()
	topic := "secure-" + randomHex(4)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	// The consumer's password comes from the environment, the producer's from a file:
	// both ways a secret reaches a pod.
	cfgPath := filepath.Join(dir, "consume.yaml")
	db := filepath.Join(dir, "secure.duckdb")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, `kafka:
  brokers: [%s]
  topics: [%s]
  group: secure-it
  tls:
    enable: true
    ca_file: %s
  sasl:
    mechanism: scram-sha-512
    username: %s
sink:
  type: duckdb
  duckdb:
    path: %s
`, strings.Join(b.brokers, ","), topic, b.caFile, b.user, db), 0o600); err != nil {
		t.Fatal(err)
	}
	consumerEnv := b.env("SPANPIPE_KAFKA_SASL_PASSWORD_FILE=", "SPANPIPE_KAFKA_SASL_PASSWORD="+b.password, "SPANPIPE_KAFKA_BROKERS=")

	var seen []string // everything the binary printed, checked for the password at the end
	check := runWithEnv(t, ctx, consumerEnv, "consume", "--config", cfgPath, "--check")
	seen = append(seen, check.stdout, check.stderr)
	if check.code != 0 || !strings.Contains(check.stdout, "config ok") {
		t.Fatalf("consume --check: exit %d\n%s%s", check.code, check.stdout, check.stderr)
	}

	prod := runWithEnv(t, ctx, b.env(), "produce", "--topic", topic, "--traces", "40")
	seen = append(seen, prod.stdout, prod.stderr)
	if prod.code != 0 {
		t.Fatalf("produce over SASL_SSL: exit %d\n%s", prod.code, prod.stderr)
	}
	var sum struct{ Spans, Dropped int }
	if err := json.Unmarshal([]byte(strings.TrimSpace(prod.stdout)), &sum); err != nil || sum.Spans == 0 || sum.Dropped != 0 {
		t.Fatalf("produce summary %q: %v (want spans > 0, none dropped)", prod.stdout, err)
	}

	// A few poison records: the consumer dead-letters them to the drop topic over
	// SASL_SSL, where drops tail, alert and replay read them below.
	const poisonN = 3
	sec := kafkasec.Config{TLS: kafkasec.TLS{Enable: true, CAFile: b.caFile},
		SASL: kafkasec.SASL{Mechanism: "scram-sha-512", Username: b.user, PasswordFile: b.pwFile}}
	secOpts, err := sec.Opts()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.brokers...), kgo.DefaultProduceTopic(topic)}, secOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range poisonN {
		if err := raw.ProduceSync(ctx, &kgo.Record{Key: fmt.Appendf(nil, "poison-%d", i), Value: []byte(`{"type":"log","log":`)}).FirstErr(); err != nil {
			t.Fatalf("produce poison over SASL_SSL: %v", err)
		}
	}
	raw.Close()

	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "consume.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cons := exec.Command(spanpipeBinary(t), "consume", "--config", cfgPath, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", port))
	cons.Env, cons.Stdout, cons.Stderr, cons.SysProcAttr = consumerEnv, logf, logf, sysProcAttr()
	if err := cons.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cons.Wait() }()
	defer func() {
		if cons.ProcessState == nil {
			_ = cons.Process.Kill()
			<-exited
		}
	}()
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	var page string
	for deadline := time.Now().Add(2 * time.Minute); ; {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("consume exited (%v) before storing the spans:\n%s", err, tail(string(b), 30))
		default:
		}
		if m, err := scrapeURL(ctx, metricsURL); err == nil && m.sum("spanpipe_sink_rows_written_total") > 0 &&
			m.sum("spanpipe_consumer_commits_total") > 0 && m.sum("spanpipe_consumer_lag_records") == 0 &&
			m.sum("spanpipe_dropped_records_total", "reason=decode-error", "component=consumer") == poisonN {
			page = rawPage(t, ctx, metricsURL)
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("consume over SASL_SSL did not catch up within 2m:\n%s", tail(string(b), 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	seen = append(seen, page)
	if !strings.Contains(page, `spanpipe_kafka_connects_total{client="consumer"`) {
		t.Errorf("/metrics has no kprom connects for the consumer client:\n%s", page)
	}
	_ = cons.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("consume exited with %v after SIGTERM", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("consume did not exit within 1m of SIGTERM")
	}
	logs, _ := os.ReadFile(logPath)
	seen = append(seen, string(logs))
	if v := readStores(t, []string{db}); v.distinct() != int64(sum.Spans) || v.fileDupes != 0 {
		t.Errorf("DuckDB holds %d distinct spans (%d duplicate rows), want the %d produced", v.distinct(), v.fileDupes, sum.Spans)
	}

	// The other commands share the settings. drops tail reads the drop events the
	// consumer published over SASL_SSL.
	tailRun := runWithEnv(t, ctx, b.env(), "drops", "tail", "--from-beginning", "--json", "--exit-after", "1", "--timeout", "30s")
	seen = append(seen, tailRun.stdout, tailRun.stderr)
	if tailRun.code != 0 || !strings.Contains(tailRun.stdout, `"reason":"decode-error"`) {
		t.Errorf("drops tail over SASL_SSL: exit %d, want the decode-error drop event\nstdout: %s\nstderr: %s", tailRun.code, tailRun.stdout, tail(tailRun.stderr, 10))
	}

	// replay reads the dead letters and re-publishes them to the spans topic.
	replayRun := runWithEnv(t, ctx, b.env(), "replay", "--to-topics", topic, "--group", "")
	seen = append(seen, replayRun.stdout, replayRun.stderr)
	if replayRun.code != 0 || !strings.Contains(replayRun.stdout, fmt.Sprintf("replayed %d dead letters", poisonN)) {
		t.Errorf("replay over SASL_SSL: exit %d, want %d replayed\nstdout: %s\nstderr: %s", replayRun.code, poisonN, replayRun.stdout, tail(replayRun.stderr, 10))
	}

	// alert reads the drop topic and posts the decode-error alert to a webhook.
	posted := make(chan string, 16)
	hook := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case posted <- string(body):
		default:
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hook.Serve(ln) }()
	defer hook.Close()
	alertCtx, stopAlert := context.WithTimeout(ctx, 2*time.Minute)
	defer stopAlert()
	alertDone := make(chan secureRun, 1)
	go func() {
		alertDone <- runWithEnv(t, alertCtx, b.env(), "alert", "--webhook", "http://"+ln.Addr().String()+"/", "--group", "alert-"+randomHex(4), "--metrics-addr", "")
	}()
	var body string
	select {
	case body = <-posted:
	case r := <-alertDone:
		t.Fatalf("alert over SASL_SSL exited %d before posting:\n%s", r.code, tail(r.stderr, 20))
	case <-time.After(90 * time.Second):
		t.Error("alert over SASL_SSL posted nothing to the webhook within 90s")
	}
	if body != "" && !strings.Contains(body, "decode-error") {
		t.Errorf("alert posted %q, want the decode-error alert", body)
	}
	stopAlert()
	seen = append(seen, (<-alertDone).stderr)

	// Misconfiguration: a clear error naming the keys to check, exit 1, within seconds
	// (the preflight answers before any retry loop starts).
	for _, c := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"alert, wrong password", b.env("SPANPIPE_KAFKA_SASL_PASSWORD_FILE=", "SPANPIPE_KAFKA_SASL_PASSWORD=wrong-"+b.password),
			[]string{"alert", "--alertmanager", "http://127.0.0.1:9", "--metrics-addr", ""}, "rejected the SASL credentials"},
		{"consume, wrong password", b.env("SPANPIPE_KAFKA_SASL_PASSWORD_FILE=", "SPANPIPE_KAFKA_SASL_PASSWORD=wrong-"+b.password, "SPANPIPE_KAFKA_BROKERS="),
			[]string{"consume", "--config", cfgPath, "--metrics-addr", ""}, "rejected the SASL credentials"},
		{"produce, wrong password", b.env("SPANPIPE_KAFKA_SASL_PASSWORD_FILE=", "SPANPIPE_KAFKA_SASL_PASSWORD=wrong-"+b.password),
			[]string{"produce", "--topic", topic, "--traces", "1"}, "rejected the SASL credentials"},
		{"consume, untrusted certificate", b.env("SPANPIPE_KAFKA_SASL_PASSWORD_FILE=", "SPANPIPE_KAFKA_SASL_PASSWORD="+b.password, "SPANPIPE_KAFKA_BROKERS=", "SPANPIPE_KAFKA_TLS_CA_FILE="+untrustedCA(t, dir)),
			[]string{"consume", "--config", cfgPath, "--metrics-addr", ""}, "certificate is not trusted (check kafka.tls.ca_file)"},
		{"produce, system roots", b.env("SPANPIPE_KAFKA_TLS_CA_FILE="),
			[]string{"produce", "--topic", topic, "--traces", "1"}, "certificate is not trusted"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runWithEnv(t, ctx, c.env, c.args...)
			seen = append(seen, r.stdout, r.stderr)
			if r.code != 1 || !strings.Contains(r.stderr, c.want) {
				t.Errorf("exit %d after %s, stderr:\n%s\nwant exit 1 and %q", r.code, r.took.Round(time.Millisecond), tail(r.stderr, 10), c.want)
			}
			// "Within seconds": the preflight's own bound, with room for a loaded machine.
			if r.took > 30*time.Second {
				t.Errorf("took %s to fail, want well under 30s", r.took)
			}
			t.Logf("exit %d after %s: %s", r.code, r.took.Round(time.Millisecond), strings.TrimSpace(tail(r.stderr, 1)))
		})
	}

	for _, s := range seen {
		if strings.Contains(s, b.password) {
			t.Errorf("the SASL password appears in the output of a command:\n%s", s)
		}
	}
	logFigures(t, "secure_spans", sum.Spans, "poison_dead_lettered", poisonN, "produce_s", prod.took.Seconds())
}

// untrustedCA writes a self-signed CA certificate that signed nothing the broker has.
func untrustedCA(t *testing.T, dir string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "not the broker's CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "untrusted-ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func rawPage(t *testing.T, ctx context.Context, u string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
