package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spanpipe/spanpipe/alerting"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/internal/kafkatest"
	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
	"gopkg.in/yaml.v3"
)

// descRecorder registers on a real registry and remembers every metric family it
// was given, with its label names: also families that have no series yet (a vector
// whose labels are created on the first drop), which a scrape cannot show.
type descRecorder struct {
	prometheus.Registerer
	mu       sync.Mutex
	families map[string][]string
}

var descRE = regexp.MustCompile(`^Desc\{fqName: "([^"]+)", .*constLabels: \{([^}]*)\}, variableLabels: \{([^}]*)\}\}$`)

func (r *descRecorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		m := descRE.FindStringSubmatch(d.String())
		if m == nil {
			continue
		}
		var labels []string
		for _, cl := range strings.Split(m[2], ",") {
			if k, _, ok := strings.Cut(cl, "="); ok {
				labels = append(labels, k)
			}
		}
		for _, vl := range strings.Split(m[3], ",") {
			if vl = strings.TrimSuffix(strings.TrimPrefix(vl, "c("), ")"); vl != "" {
				labels = append(labels, vl)
			}
		}
		r.mu.Lock()
		r.families[m[1]] = labels
		r.mu.Unlock()
	}
	return r.Registerer.Register(c)
}

func (r *descRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// allComponents builds a consumer (DuckDB sink), a producer and an alerter, each on
// its own registry as in its own process, and returns what each registered.
func allComponents(t *testing.T) map[string]*descRecorder {
	t.Helper()
	c := kafkatest.Cluster(t, 1, "spanpipe.spans", "spanpipe.drops")
	log := slog.New(slog.DiscardHandler)
	rec := func() *descRecorder {
		return &descRecorder{Registerer: NewRegistry(), families: map[string][]string{}}
	}
	out := map[string]*descRecorder{
		dropalerts.ComponentConsumer: rec(), dropalerts.ComponentProducer: rec(), dropalerts.ComponentAlert: rec(),
	}

	cfg := DefaultConfig()
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.Sink.DuckDB.Path = filepath.Join(t.TempDir(), "r.duckdb")
	sink, err := duckdb.Open(t.Context(), cfg.Sink.DuckDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	reg := out[dropalerts.ComponentConsumer]
	if _, err := NewConsumer(cfg, sink, log, reg, nil); err != nil {
		t.Fatal(err)
	}

	pcfg := producer.DefaultConfig()
	pcfg.Brokers, pcfg.ServiceName = c.ListenAddrs(), "rules"
	reg = out[dropalerts.ComponentProducer]
	p, err := producer.New(pcfg, producer.WithRegisterer(reg), producer.WithKgoOpts(KafkaOpts(reg, log, "producer")...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })

	acfg := alerting.DefaultConfig()
	acfg.AlertmanagerURLs = []string{"http://127.0.0.1:9093"}
	reg = out[dropalerts.ComponentAlert]
	if _, err := alerting.New(acfg, KafkaOpts(reg, log, "alert"), alerting.WithRegisterer(reg)); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDroppedRecordsOnEveryComponent: spanpipe_dropped_records_total is exported by
// the consumer, the producer and the alerter, with the labels signal, reason and
// component, and with series of the component's own name from the start (so that
// rate() and the drop rule see the first drop).
func TestDroppedRecordsOnEveryComponent(t *testing.T) {
	for comp, rec := range allComponents(t) {
		labels, ok := rec.families["spanpipe_dropped_records_total"]
		if !ok {
			t.Errorf("%s does not register spanpipe_dropped_records_total", comp)
			continue
		}
		if !slices.Equal(slices.Sorted(slices.Values(labels)), []string{"component", "reason", "signal"}) {
			t.Errorf("%s: spanpipe_dropped_records_total has labels %v, want component, reason, signal", comp, labels)
		}
		mfs := mustGather(t, rec.Registerer.(*prometheus.Registry))
		found := false
		for _, mf := range mfs {
			if mf.GetName() != "spanpipe_dropped_records_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == "component" && lp.GetValue() == comp {
						found = true
					}
				}
			}
		}
		if !found {
			t.Errorf("%s exports no spanpipe_dropped_records_total{component=%q} series before its first drop", comp, comp)
		}
	}
}

// rulesFile is the part of a Prometheus rule file the test reads.
type rulesFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var (
	metricNameRE = regexp.MustCompile(`\bspanpipe_[a-zA-Z0-9_]+`)
	groupingRE   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	matcherRE    = regexp.MustCompile(`\b(spanpipe_[a-zA-Z0-9_]+)\s*\{([^}]*)\}`)
	matcherKeyRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	templateRE   = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
)

// TestPrometheusRulesUseRealMetrics reads deploy/prometheus/rules.yml and checks each
// expression against what the components really register: every spanpipe_* metric
// it uses exists (histogram suffixes allowed), every label it matches, groups or joins
// on belongs to one of those metrics (job and instance come from the scrape), and
// every $labels.X its annotations print is such a label. promtool checks syntax and
// logic (check.sh); this checks that the rules watch metrics that exist.
func TestPrometheusRulesUseRealMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf rulesFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	known := map[string][]string{}
	for _, rec := range allComponents(t) {
		for name, labels := range rec.families {
			known[name] = append(known[name], labels...)
		}
	}
	lookup := func(name string) ([]string, bool) {
		if l, ok := known[name]; ok {
			return l, true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				if l, ok := known[base]; ok {
					if suffix == "_bucket" {
						l = append(slices.Clone(l), "le")
					}
					return l, true
				}
			}
		}
		return nil, false
	}
	rules := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			rules++
			name := r.Alert + r.Record
			labels := map[string]bool{"job": true, "instance": true}
			names := metricNameRE.FindAllString(r.Expr, -1)
			if len(names) == 0 {
				t.Errorf("%s: uses no spanpipe_* metric", name)
			}
			for _, n := range names {
				ls, ok := lookup(n)
				if !ok {
					t.Errorf("%s: metric %s is not registered by the consumer, the producer or the alerter", name, n)
				}
				for _, l := range ls {
					labels[l] = true
				}
			}
			var used []string
			for _, m := range groupingRE.FindAllStringSubmatch(r.Expr, -1) {
				for _, l := range strings.Split(m[1], ",") {
					if l = strings.TrimSpace(l); l != "" {
						used = append(used, l)
					}
				}
			}
			for _, m := range matcherRE.FindAllStringSubmatch(r.Expr, -1) {
				ls, _ := lookup(m[1])
				for _, k := range matcherKeyRE.FindAllStringSubmatch(m[2], -1) {
					if !slices.Contains(ls, k[1]) {
						t.Errorf("%s: %s has no label %q", name, m[1], k[1])
					}
				}
			}
			for _, a := range r.Annotations {
				for _, m := range templateRE.FindAllStringSubmatch(a, -1) {
					used = append(used, m[1])
				}
			}
			for _, l := range used {
				if !labels[l] {
					t.Errorf("%s: label %q is not a label of any metric the rule uses (%v)", name, l, names)
				}
			}
		}
	}
	if rules == 0 {
		t.Fatal("rules.yml has no rules")
	}
	t.Logf("%d rules checked against %d registered metric families", rules, len(known))
}
