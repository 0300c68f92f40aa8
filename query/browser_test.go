//go:build browser

package query_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/query"
	"github.com/spanpipe/spanpipe/schema"
)

// TestBrowser drives the explorer of a real `spanpipe dev --demo 50` in Debian's
// chromium: filter to error traces, open one (waterfall and error message), see a
// newly published trace appear in the live view, and check that span content made of
// HTML and script payloads is shown as text and executes nothing. Run it with
// `make browser-test`, which installs chromium when it is missing. With
// SPANPIPE_SCREENSHOTS=DIR it writes the screenshots of the README there.
func TestBrowser(t *testing.T) {
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: run `make browser-test` (apt-get install chromium)")
	}
	bin := filepath.Join(t.TempDir(), "spanpipe")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/spanpipe/spanpipe/cmd/spanpipe").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	dev := exec.Command(bin, "dev", "--demo", "50", "--db", filepath.Join(t.TempDir(), "b.duckdb"), "--port", "0",
		"--metrics-addr", "127.0.0.1:0", "--ui", "127.0.0.1:0", "--log-level", "warn")
	stderr, err := dev.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dev.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- dev.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = dev.Process.Kill()
			<-done
		}
	})
	broker, ui := devAddrs(t, stderr)
	t.Logf("dev: broker %s, explorer %s", broker, ui)

	pcfg := producer.DefaultConfig()
	pcfg.Brokers, pcfg.ServiceName = []string{broker}, "browser-test"
	prod, err := producer.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(context.Background())

	// Untrusted content: every field the page shows carries markup and script.
	const img = `<img src=x onerror="window.__xss='img'">`
	const script = `<script>window.__xss='script'</script>`
	xss := prod.StartSpan(producer.SpanOptions{Name: "xss " + img, Type: schema.AgentRun, EntityType: "agent",
		EntityName: script, Input: map[string]string{"html": img + script}, Attributes: map[string]string{script: img},
		Metadata: map[string]string{"note": img}})
	child := xss.StartChild(producer.SpanOptions{Name: script, Type: schema.ToolCall, Input: img})
	child.End(producer.EndOptions{Err: errors.New("failed: " + img), Output: script})
	xss.End(producer.EndOptions{Output: map[string]string{"text": img}})
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitAPI(t, ctx, ui+"api/v1/traces/"+xss.TraceID())
	waitFor(t, ctx, "50 demo traces stored", func() bool {
		var n int
		return getCount(ui+"api/v1/traces?limit=200&service=spanpipe-demo", &n) == nil && n >= 50
	})

	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.WindowSize(1400, 900))...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	shots := os.Getenv("SPANPIPE_SCREENSHOTS")
	shot := func(name string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			if shots == "" {
				return nil
			}
			var buf []byte
			if err := chromedp.FullScreenshot(&buf, 100).Do(ctx); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name), buf, 0o644)
		})
	}
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(bctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// Filter to error traces with the form; the URL carries the filter.
	var hash string
	var statuses []string
	run("trace list, filtered to errors",
		chromedp.Navigate(ui+"#/traces"),
		chromedp.WaitVisible(`tr.trace-row`),
		chromedp.SetValue(`input[name=service]`, "spanpipe-demo"),
		chromedp.SetValue(`select[name=status]`, "error"),
		chromedp.Click(`#filters button[type=submit]`),
		chromedp.Poll(`location.hash.includes("status=error") && location.hash.includes("service=spanpipe-demo") && document.querySelectorAll("tr.trace-row").length > 0 &&
			[...document.querySelectorAll("tr.trace-row")].every(r => r.dataset.status === "error")`, nil, chromedp.WithPollingTimeout(30*time.Second)),
		chromedp.Evaluate(`location.hash`, &hash),
		chromedp.Evaluate(`[...document.querySelectorAll("tr.trace-row")].map(r => r.dataset.status)`, &statuses),
		shot("traces.png"),
	)
	t.Logf("filtered list %s: %d error traces", hash, len(statuses))

	// Open the first error trace: the waterfall has a row per span, the error shows.
	var traceID string
	run("open an error trace",
		chromedp.AttributeValue(`tr.trace-row`, "data-trace-id", &traceID, nil),
		chromedp.Click(`tr.trace-row`),
		chromedp.WaitVisible(`#waterfall .wf-row`),
	)
	var tr query.Trace
	if err := getJSON(ui+"api/v1/traces/"+traceID, &tr); err != nil {
		t.Fatal(err)
	}
	var rows int
	var errText, detail string
	run("waterfall and error",
		chromedp.Poll(`document.querySelectorAll("#span-detail .error-msg").length > 0`, nil, chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Evaluate(`document.querySelectorAll("#waterfall .wf-row").length`, &rows),
		chromedp.Text(`main > .error-msg`, &errText),
		chromedp.Text(`#span-detail`, &detail),
		shot("trace.png"),
	)
	if rows != tr.SpanCount || rows < 3 {
		t.Errorf("waterfall: %d rows, want one per span (%d)", rows, tr.SpanCount)
	}
	if !strings.Contains(errText, "upstream returned 503") || !strings.Contains(detail, "upstream returned 503") {
		t.Errorf("error message: banner %q, detail %q; want the span's error", errText, detail)
	}

	// Live: a trace published now appears without reloading.
	run("live view", chromedp.Navigate(ui+"#/live"), chromedp.WaitVisible(`#live tr.trace-row`))
	fresh := prod.StartSpan(producer.SpanOptions{Name: "live check", Type: schema.AgentRun})
	fresh.End(producer.EndOptions{})
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	run("new trace in the live view",
		chromedp.WaitVisible(fmt.Sprintf(`#live tr[data-trace-id=%q]`, fresh.TraceID())))

	run("metrics", chromedp.Navigate(ui+"#/metrics?range=1h"), chromedp.WaitVisible(`#charts svg rect`), shot("metrics.png"))

	// Drops: a poison record on the spans topic becomes a decode-error drop event,
	// which the drops view shows, reason and error.
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: pcfg.Topic, Value: []byte("{poison")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var drops string
	run("drops",
		chromedp.Navigate(ui+"#/drops?range=1h"),
		// The drop event takes a moment to be published and read: re-route until it shows.
		chromedp.Poll(`(() => { const d = document.querySelector("#drop-samples"); if (d && d.textContent.includes("decode-error")) return true; `+
			`if (d) route(); return false; })()`, nil, chromedp.WithPollingTimeout(60*time.Second), chromedp.WithPollingInterval(time.Second)),
		chromedp.Text(`#drops`, &drops),
		shot("drops.png"),
	)
	if !strings.Contains(drops, "decode-error") || !strings.Contains(drops, "tracing") && !strings.Contains(drops, "unknown") {
		t.Errorf("drops view: %q, want the poison record's decode-error", drops)
	}

	// XSS: the payloads are shown as text in the list, the tree, the span details,
	// and nothing ran.
	var xssState string
	var imgs int
	var listText, treeText, spanText string
	run("xss",
		chromedp.Navigate(ui+"#/traces?q=xss"),
		chromedp.WaitVisible(`tr.trace-row`),
		chromedp.Text(`#traces`, &listText),
		chromedp.Navigate(ui+"#/trace/"+xss.TraceID()+"?span="+child.SpanID()),
		chromedp.WaitVisible(`#waterfall .wf-row`),
		chromedp.Poll(`document.querySelectorAll("#span-detail pre").length > 0`, nil, chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Text(`#waterfall`, &treeText),
		chromedp.Text(`#span-detail`, &spanText),
		chromedp.Click(`#waterfall .wf-row`),
		chromedp.Poll(`document.querySelector("#span-detail").textContent.includes("Metadata")`, nil, chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Evaluate(`String(window.__xss)`, &xssState),
		chromedp.Evaluate(`document.querySelectorAll("main img, main script").length`, &imgs),
	)
	if xssState != "undefined" || imgs != 0 {
		t.Errorf("payload executed or became markup: window.__xss = %s, %d img/script elements in the page", xssState, imgs)
	}
	for what, text := range map[string]string{"list": listText, "tree": treeText, "span detail": spanText} {
		if !strings.Contains(text, `<img src=x onerror=`) && !strings.Contains(text, `<script>`) {
			t.Errorf("%s: payload not shown as text: %q", what, text)
		}
	}
}

var (
	brokerLine = regexp.MustCompile(`^\s+broker\s+(\S+)`)
	uiLine     = regexp.MustCompile(`^\s+explorer\s+(http://\S+)`)
)

// devAddrs reads the broker and explorer addresses that dev prints, then keeps
// draining its stderr.
func devAddrs(t *testing.T, r io.Reader) (broker, ui string) {
	t.Helper()
	sc := bufio.NewScanner(r)
	deadline := time.Now().Add(time.Minute)
	for (broker == "" || ui == "") && time.Now().Before(deadline) && sc.Scan() {
		if m := brokerLine.FindStringSubmatch(sc.Text()); m != nil {
			broker = m[1]
		}
		if m := uiLine.FindStringSubmatch(sc.Text()); m != nil {
			ui = m[1]
		}
	}
	if broker == "" || ui == "" {
		t.Fatalf("spanpipe dev did not print its broker and explorer addresses")
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
	return broker, ui
}

func getJSON(url string, out any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return jsonUnmarshal(b, out)
}

func getCount(url string, n *int) error {
	var p query.TracePage
	if err := getJSON(url, &p); err != nil {
		return err
	}
	*n = len(p.Traces)
	return nil
}

func waitAPI(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	waitFor(t, ctx, url, func() bool { return getJSON(url, &query.Trace{}) == nil })
}

func waitFor(t *testing.T, ctx context.Context, what string, ok func() bool) {
	t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !ok() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}
