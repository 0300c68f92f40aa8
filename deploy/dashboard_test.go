package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// grafanaVars stand in for the dashboard's variables so that its queries parse as
// Prometheus would receive them.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$job", ".*", "$instance", ".*")

// synthetic are series Prometheus makes itself, not found on any /metrics page.
var synthetic = map[string]bool{"up": true, "scrape_duration_seconds": true}

// TestDashboard parses every PromQL expression of the Grafana dashboard with the
// Prometheus parser and checks that every metric it reads is exported by a running
// `spanpipe dev` (consumer, pipeline, sink and franz-go's kprom metrics): a renamed
// metric turns a panel blank without anyone noticing, this turns it red.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/spanpipe.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	used := map[string][]string{} // metric -> panels
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			expr, err := parser.ParseExpr(grafanaVars.Replace(tg.Expr))
			if err != nil {
				t.Errorf("panel %q: %q does not parse: %v", p.Title, tg.Expr, err)
				continue
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" {
					used[vs.Name] = append(used[vs.Name], p.Title)
				}
				return nil
			})
		}
	}
	// The panels the issue asks for, by what they read.
	for _, m := range []string{"spanpipe_pipeline_records_consumed_total", "spanpipe_consumer_lag_records",
		"spanpipe_sink_write_duration_seconds_bucket", "spanpipe_sink_retries_total", "spanpipe_dropped_records_total",
		"spanpipe_pipeline_buffered_records", "spanpipe_consumer_rebalances_total", "spanpipe_sink_errors_total"} {
		if len(used[m]) == 0 {
			t.Errorf("no panel reads %s", m)
		}
	}

	// Some series appear only once the pipeline has moved (lag after the first fetch,
	// write latency after the first flush): poll until every metric is there, or
	// report what is still missing at the deadline.
	dev := startDev(t)
	var exported map[string]bool
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		exported = scrapeNames(t, dev.metricsBase+"/metrics")
		all := true
		for m := range used {
			all = all && (exported[m] || synthetic[m])
		}
		if all || time.Now().After(deadline) {
			break
		}
	}
	var missing []string
	for m, panels := range used {
		if !exported[m] && !synthetic[m] {
			missing = append(missing, m+" (panels: "+strings.Join(slices.Compact(panels), ", ")+")")
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("the dashboard reads %s, which spanpipe does not export", m)
	}
	if !exported["spanpipe_kafka_fetch_bytes_total"] {
		t.Errorf("no kprom metric on /metrics: the dashboard's Kafka client panels would be empty")
	}
}

// scrapeNames returns the series names on a /metrics page (histograms with their
// _bucket, _sum and _count series).
func scrapeNames(t *testing.T, url string) map[string]bool {
	t.Helper()
	code, page := get(t, url)
	if code != 200 {
		t.Fatalf("GET %s: %d", url, code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(page))
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	names := map[string]bool{}
	for name, f := range families {
		names[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = true
			}
		}
	}
	return names
}
