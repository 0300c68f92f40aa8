package deploy

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// composeFile is the part of the Compose specification deploy/compose uses; decoded
// strictly, so a misspelt key fails here rather than being ignored by `docker compose`.
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
	Spanpipe any                       `yaml:"x-spanpipe"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       map[string]string `yaml:"build"`
	Restart     string            `yaml:"restart"`
	Command     []string          `yaml:"command"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	Ulimits     map[string]any    `yaml:"ulimits"`
	Deploy      struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
	StopGracePeriod string `yaml:"stop_grace_period"`
	DependsOn       map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test        []string `yaml:"test"`
		Interval    string   `yaml:"interval"`
		Timeout     string   `yaml:"timeout"`
		Retries     int      `yaml:"retries"`
		StartPeriod string   `yaml:"start_period"`
	} `yaml:"healthcheck"`
}

// TestCompose checks deploy/compose/docker-compose.yml without Docker: the topology
// the issue asks for, a healthcheck wherever a dependency waits for health, every
// bind-mounted file present, the drain within stop_grace_period, and the spanpipe
// config it mounts accepted by `spanpipe consume --check` with each spanpipe
// service's environment.
func TestCompose(t *testing.T) {
	dir := filepath.Join(repoRoot, "deploy", "compose")
	b, err := os.ReadFile(filepath.Join(dir, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := strictDecode(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, s := range []string{"kafka", "kafka-topics", "clickhouse", "migrate", "consumer", "alert", "loadgen", "prometheus", "alertmanager", "grafana"} {
		if _, ok := c.Services[s]; !ok {
			t.Errorf("service %s is missing", s)
		}
	}
	if n := c.Services["consumer"].Deploy.Replicas; n != 3 {
		t.Errorf("consumer replicas = %d, want 3", n)
	}
	for name, s := range c.Services {
		for dep, d := range s.DependsOn {
			ds, ok := c.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s depends on %s, which does not exist", name, dep)
			case d.Condition == "service_healthy" && ds.Healthcheck == nil:
				t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
			case d.Condition == "service_completed_successfully" && ds.Restart != "no":
				t.Errorf("%s waits for %s to complete, which restarts (restart: %q)", name, dep, ds.Restart)
			}
		}
		if s.Healthcheck != nil && len(s.Healthcheck.Test) < 2 {
			t.Errorf("%s healthcheck %v has no command", name, s.Healthcheck.Test)
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			}
		}
		if ctx := s.Build["context"]; ctx != "" {
			if _, err := os.Stat(filepath.Join(dir, ctx, s.Build["dockerfile"])); err != nil {
				t.Errorf("%s builds from %s/%s: %v", name, ctx, s.Build["dockerfile"], err)
			}
		}
	}
	for _, infra := range []string{"kafka", "clickhouse", "prometheus", "alertmanager", "grafana"} {
		if c.Services[infra].Healthcheck == nil {
			t.Errorf("%s has no healthcheck", infra)
		}
	}

	// The drain fits in the stop grace period.
	cfgPath := filepath.Join(dir, "spanpipe.yaml")
	cb, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg spanpipeConfig
	if err := yaml.Unmarshal(cb, &cfg); err != nil {
		t.Fatal(err)
	}
	shutdown, err1 := time.ParseDuration(cfg.Kafka.ShutdownTimeout)
	grace, err2 := time.ParseDuration(c.Services["consumer"].StopGracePeriod)
	if err1 != nil || err2 != nil || grace <= shutdown {
		t.Errorf("consumer stop_grace_period %q must exceed kafka.shutdown_timeout %q (%v, %v)", c.Services["consumer"].StopGracePeriod, cfg.Kafka.ShutdownTimeout, err1, err2)
	}

	// Every spanpipe service runs the mounted config with its own environment; the
	// config must pass --check as it would in the container, and hold no password.
	if strings.Contains(string(cb), "password:") {
		t.Errorf("deploy/compose/spanpipe.yaml holds a password; it belongs in the environment")
	}
	checked := 0
	for name, s := range c.Services {
		if !slices.ContainsFunc(s.Volumes, func(v string) bool { return strings.HasPrefix(v, "./spanpipe.yaml:") }) {
			continue
		}
		var env []string
		for k, v := range s.Environment {
			if k == "SPANPIPE_CONFIG" {
				v = cfgPath
			}
			env = append(env, k+"="+v)
		}
		t.Run(name, func(t *testing.T) { checkConfig(t, cfgPath, env...) })
		checked++
	}
	if checked < 4 {
		t.Errorf("%d services mount spanpipe.yaml, want the migrate, consumer, alert and loadgen services", checked)
	}

	// The spanpipe services' healthchecks run the binary (the image has no curl) on
	// the port the service serves metrics on, at a path a running spanpipe answers.
	dev := startDev(t)
	alertAddr := ""
	if cmd := c.Services["alert"].Command; slices.Contains(cmd, "--metrics-addr") {
		alertAddr = cmd[slices.Index(cmd, "--metrics-addr")+1]
	}
	portOf := func(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }
	for name, port := range map[string]string{"consumer": portOf(cfg.Metrics.Listen), "alert": portOf(alertAddr)} {
		hc := c.Services[name].Healthcheck
		if hc == nil || len(hc.Test) != 5 || hc.Test[0] != "CMD" || hc.Test[1] != "/usr/local/bin/spanpipe" || hc.Test[2] != "healthcheck" || hc.Test[3] != "--url" {
			t.Errorf("%s healthcheck %v, want [CMD /usr/local/bin/spanpipe healthcheck --url URL]", name, hc)
			continue
		}
		u, err := url.Parse(hc.Test[4])
		if err != nil || u.Port() != port {
			t.Errorf("%s healthcheck asks %s, want the metrics port %s (%v)", name, hc.Test[4], port, err)
			continue
		}
		if u.Path != "/readyz" {
			t.Errorf("%s healthcheck asks %s, want /readyz", name, u.Path)
		}
		if code, body := getOK(t, dev.metricsBase+u.Path); code != http.StatusOK {
			t.Errorf("%s healthcheck path %s: spanpipe answers %d %q, want 200", name, u.Path, code, body)
		}
	}

	// What Prometheus and Grafana load exists: the rules, the dashboard.
	prom, err := os.ReadFile(filepath.Join(dir, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/etc/prometheus/rules.yml", "names: [consumer]", "alert:9465"} {
		if !strings.Contains(string(prom), want) {
			t.Errorf("prometheus.yml does not mention %q", want)
		}
	}
}
