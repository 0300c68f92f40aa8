package clickhouse

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	w, rec := testWriter(t, DefaultConfig(), WithRegisterer(reg))
	if err := w.Write(t.Context(), fullBatch(t0)); err != nil {
		t.Fatal(err)
	}
	rec.fail = func(int, *fakeBatch) error { return ex(241, "Memory limit exceeded") }
	_ = w.Write(t.Context(), fullBatch(t0))

	for _, tc := range []struct {
		table, outcome string
		want           float64
	}{{"spans", "ok", 1}, {"spans", "error", 1}, {"feedback", "ok", 1}, {"logs", "error", 0}} {
		if got := testutil.ToFloat64(w.m.inserts.WithLabelValues(sinkName, tc.table, tc.outcome)); got != tc.want {
			t.Errorf("inserts_total{table=%s,outcome=%s}: got %v, want %v", tc.table, tc.outcome, got, tc.want)
		}
	}
	// A second writer on the same registry shares the collectors.
	testWriter(t, DefaultConfig(), WithRegisterer(reg))

	problems, err := promlint.NewWithMetricFamilies(mustGather(t, reg)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func mustGather(t *testing.T, reg *prometheus.Registry) []*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

func TestPasswordFromEnv(t *testing.T) {
	t.Setenv(PasswordEnv, "from-env")
	cfg := DefaultConfig()
	o, err := cfg.options()
	if err != nil {
		t.Fatal(err)
	}
	if o.Auth.Password != "from-env" {
		t.Errorf("password: got %q, want the value of %s", o.Auth.Password, PasswordEnv)
	}
	cfg.Password = "from-config"
	if o, _ := cfg.options(); o.Auth.Password != "from-config" {
		t.Errorf("password: got %q, want the configured one to win", o.Auth.Password)
	}
}
