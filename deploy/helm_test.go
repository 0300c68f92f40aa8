package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// helmVersion is the Helm CLI the chart is checked with; Helm is a Go module, so it
// is built from the module proxy like any dependency (no download from get.helm.sh).
const helmVersion = "v3.22.0"

var helmBin struct {
	once sync.Once
	path string
	err  error
}

// helm runs the Helm CLI: $HELM when set, else the pinned version, built once per
// run (`go install helm.sh/helm/v3/cmd/helm@…` into a temporary GOBIN: one link
// instead of one per `go run`). A cold build of Helm takes minutes (see the README).
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	helmBin.once.Do(func() {
		if p := os.Getenv("HELM"); p != "" {
			helmBin.path = p // a Helm 3 CLI of the caller's choice; CI builds the pinned one
			fmt.Fprintf(os.Stderr, "deploy: using HELM=%s instead of building helm %s\n", p, helmVersion)
			return
		}
		start := time.Now()
		cmd := exec.Command("go", "install", "helm.sh/helm/v3/cmd/helm@"+helmVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+toolDir(t), "GOFLAGS=")
		if b, err := cmd.CombinedOutput(); err != nil {
			helmBin.err = fmt.Errorf("go install helm %s: %v\n%s", helmVersion, err, b)
			return
		}
		helmBin.path = filepath.Join(toolDir(t), "helm")
		fmt.Fprintf(os.Stderr, "deploy: built helm %s in %s\n", helmVersion, time.Since(start).Round(100*time.Millisecond))
	})
	if helmBin.err != nil {
		t.Fatal(helmBin.err)
	}
	cmd := exec.Command(helmBin.path, args...)
	cmd.Dir = repoRoot
	// A private Helm home: nothing read from or written to the user's.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

const chartDir = "deploy/helm/spanpipe"

// helmTemplate renders the chart as release "sp" with values files and --set items.
func helmTemplate(t *testing.T, overlays, set []string) (string, error) {
	t.Helper()
	args := []string{"template", "sp", chartDir}
	for _, o := range overlays {
		args = append(args, "-f", o)
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return helm(t, args...)
}

// The manifests the chart renders, decoded strictly: an unknown field (a typo such
// as terminationGracePeriodSecond, or a field at the wrong level) fails the test, as
// the API server would reject it. Local structs instead of k8s.io/api: they cover the
// CRDs (KEDA, Prometheus Operator) too, and add no dependency (see the report).
type (
	meta struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}
	header struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
	}
	configMap struct {
		header   `yaml:",inline"`
		Metadata meta              `yaml:"metadata"`
		Data     map[string]string `yaml:"data"`
	}
	secret struct {
		header     `yaml:",inline"`
		Metadata   meta              `yaml:"metadata"`
		Type       string            `yaml:"type"`
		StringData map[string]string `yaml:"stringData"`
	}
	deployment struct {
		header   `yaml:",inline"`
		Metadata meta `yaml:"metadata"`
		Spec     struct {
			Replicas *int32 `yaml:"replicas"`
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Strategy struct {
				Type string `yaml:"type"`
			} `yaml:"strategy"`
			Template struct {
				Metadata meta    `yaml:"metadata"`
				Spec     podSpec `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	podSpec struct {
		TerminationGracePeriodSeconds *int64 `yaml:"terminationGracePeriodSeconds"`
		SecurityContext               struct {
			RunAsNonRoot   *bool `yaml:"runAsNonRoot"`
			RunAsUser      int64 `yaml:"runAsUser"`
			RunAsGroup     int64 `yaml:"runAsGroup"`
			FSGroup        int64 `yaml:"fsGroup"`
			SeccompProfile struct {
				Type string `yaml:"type"`
			} `yaml:"seccompProfile"`
		} `yaml:"securityContext"`
		Containers   []container       `yaml:"containers"`
		Volumes      []volume          `yaml:"volumes"`
		NodeSelector map[string]string `yaml:"nodeSelector"`
		Tolerations  []map[string]any  `yaml:"tolerations"`
		Affinity     map[string]any    `yaml:"affinity"`
	}
	container struct {
		Name            string   `yaml:"name"`
		Image           string   `yaml:"image"`
		ImagePullPolicy string   `yaml:"imagePullPolicy"`
		Args            []string `yaml:"args"`
		Env             []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom *struct {
				SecretKeyRef *struct {
					Name     string `yaml:"name"`
					Key      string `yaml:"key"`
					Optional bool   `yaml:"optional"`
				} `yaml:"secretKeyRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		LivenessProbe   *probe                       `yaml:"livenessProbe"`
		ReadinessProbe  *probe                       `yaml:"readinessProbe"`
		Resources       map[string]map[string]string `yaml:"resources"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			SubPath   string `yaml:"subPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	}
	probe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
		PeriodSeconds    int `yaml:"periodSeconds"`
		FailureThreshold int `yaml:"failureThreshold"`
	}
	volume struct {
		Name      string                 `yaml:"name"`
		ConfigMap *struct{ Name string } `yaml:"configMap"`
		EmptyDir  *struct{}              `yaml:"emptyDir"`
		Secret    *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
	}
	service struct {
		header   `yaml:",inline"`
		Metadata meta `yaml:"metadata"`
		Spec     struct {
			ClusterIP string            `yaml:"clusterIP"`
			Selector  map[string]string `yaml:"selector"`
			Ports     []struct {
				Name       string `yaml:"name"`
				Port       int    `yaml:"port"`
				TargetPort string `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	pdb struct {
		header   `yaml:",inline"`
		Metadata meta `yaml:"metadata"`
		Spec     struct {
			MaxUnavailable any `yaml:"maxUnavailable"`
			Selector       struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
		} `yaml:"spec"`
	}
	scaledObject struct {
		header   `yaml:",inline"`
		Metadata meta `yaml:"metadata"`
		Spec     struct {
			ScaleTargetRef struct {
				Name string `yaml:"name"`
			} `yaml:"scaleTargetRef"`
			MinReplicaCount int `yaml:"minReplicaCount"`
			MaxReplicaCount int `yaml:"maxReplicaCount"`
			PollingInterval int `yaml:"pollingInterval"`
			CooldownPeriod  int `yaml:"cooldownPeriod"`
			Triggers        []struct {
				Type              string            `yaml:"type"`
				Metadata          map[string]string `yaml:"metadata"`
				AuthenticationRef *struct {
					Name string `yaml:"name"`
				} `yaml:"authenticationRef"`
			} `yaml:"triggers"`
		} `yaml:"spec"`
	}
	triggerAuth struct {
		header   `yaml:",inline"`
		Metadata meta `yaml:"metadata"`
		Spec     struct {
			SecretTargetRef []struct {
				Parameter string `yaml:"parameter"`
				Name      string `yaml:"name"`
				Key       string `yaml:"key"`
			} `yaml:"secretTargetRef"`
		} `yaml:"spec"`
	}
	serviceMonitor struct {
		header   `yaml:",inline"`
		Metadata meta `yaml:"metadata"`
		Spec     struct {
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Endpoints []struct {
				Port     string `yaml:"port"`
				Path     string `yaml:"path"`
				Interval string `yaml:"interval"`
			} `yaml:"endpoints"`
		} `yaml:"spec"`
	}
	prometheusRule struct {
		header   `yaml:",inline"`
		Metadata meta           `yaml:"metadata"`
		Spec     map[string]any `yaml:"spec"`
	}
)

// rendered is one `helm template` output, by kind.
type rendered struct {
	configMaps      []configMap
	secrets         []secret
	deployments     []deployment
	services        []service
	pdbs            []pdb
	scaledObjects   []scaledObject
	triggerAuths    []triggerAuth
	serviceMonitors []serviceMonitor
	prometheusRules []prometheusRule
	raw             string
}

func strictDecode(doc []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	return dec.Decode(v)
}

func decodeManifests(t *testing.T, out string) rendered {
	t.Helper()
	r := rendered{raw: out}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var node yaml.Node
		if err := dec.Decode(&node); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("rendered manifests are not YAML: %v", err)
		}
		if len(node.Content) == 0 {
			continue // an empty document (a template rendered nothing)
		}
		doc, err := yaml.Marshal(&node)
		if err != nil {
			t.Fatal(err)
		}
		var h header
		if err := yaml.Unmarshal(doc, &h); err != nil {
			t.Fatal(err)
		}
		var target any
		switch h.APIVersion + " " + h.Kind {
		case "v1 ConfigMap":
			target = grow(&r.configMaps)
		case "v1 Secret":
			target = grow(&r.secrets)
		case "apps/v1 Deployment":
			target = grow(&r.deployments)
		case "v1 Service":
			target = grow(&r.services)
		case "policy/v1 PodDisruptionBudget":
			target = grow(&r.pdbs)
		case "keda.sh/v1alpha1 ScaledObject":
			target = grow(&r.scaledObjects)
		case "keda.sh/v1alpha1 TriggerAuthentication":
			target = grow(&r.triggerAuths)
		case "monitoring.coreos.com/v1 ServiceMonitor":
			target = grow(&r.serviceMonitors)
		case "monitoring.coreos.com/v1 PrometheusRule":
			target = grow(&r.prometheusRules)
		default:
			t.Fatalf("unexpected manifest %s %s: add it to the decoder and its checks", h.APIVersion, h.Kind)
		}
		if err := strictDecode(doc, target); err != nil {
			t.Fatalf("%s %s: %v\n%s", h.Kind, nameOf(doc), err, doc)
		}
	}
	return r
}

// grow appends a zero element to *s and returns a pointer to it, to decode into.
func grow[T any](s *[]T) any {
	*s = append(*s, *new(T))
	return &(*s)[len(*s)-1]
}

func nameOf(doc []byte) string {
	var m struct{ Metadata meta }
	_ = yaml.Unmarshal(doc, &m)
	return m.Metadata.Name
}

func (r rendered) deployment(t *testing.T, suffix string) deployment {
	t.Helper()
	for _, d := range r.deployments {
		if strings.HasSuffix(d.Metadata.Name, suffix) {
			return d
		}
	}
	t.Fatalf("no Deployment named *%s rendered", suffix)
	return deployment{}
}

// spanpipeConfig is the part of the ConfigMap's spanpipe.yaml the checks read.
type spanpipeConfig struct {
	Kafka struct {
		Brokers         []string `yaml:"brokers"`
		Group           string   `yaml:"group"`
		Topics          []string `yaml:"topics"`
		ShutdownTimeout string   `yaml:"shutdown_timeout"`
	} `yaml:"kafka"`
	Metrics struct {
		Listen string `yaml:"listen"`
	} `yaml:"metrics"`
}

// chartValues reads the values the invariants compare against: values.yaml, then
// each overlay file.
func chartValues(t *testing.T, overlays ...string) (partitions int) {
	t.Helper()
	for _, f := range append([]string{filepath.Join(chartDir, "values.yaml")}, overlays...) {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Partitions *int `yaml:"partitions"`
		}
		if err := yaml.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if v.Partitions != nil {
			partitions = *v.Partitions
		}
	}
	return partitions
}

// TestHelmChart lints and renders the chart with the default values and with the
// secured ci/ values, decodes every manifest strictly and checks the invariants a
// deployment depends on: the drain fits in the termination grace period, KEDA never
// scales past the partition count, every probe targets a path and port the binary
// serves, no secret sits in a ConfigMap, the ConfigMap is a config the binary accepts,
// and the PrometheusRule is deploy/prometheus/rules.yml.
func TestHelmChart(t *testing.T) {
	if _, err := helm(t, "lint", "--strict", chartDir); err != nil {
		t.Fatal(err)
	}
	if _, err := helm(t, "lint", "--strict", chartDir, "-f", chartDir+"/ci/secure-values.yaml"); err != nil {
		t.Fatal(err)
	}
	dev := startDev(t)
	cases := []struct {
		name     string
		overlays []string
		set      []string
		secrets  []string // values that must reach a Secret and nothing else
	}{
		{name: "defaults"},
		{name: "secured", overlays: []string{chartDir + "/ci/secure-values.yaml"}, secrets: []string{"ch-Sentinel-5ecret", "kafka-Sentinel-5ecret"}},
		{name: "no autoscaling", set: []string{"autoscaling.enabled=false", "consumer.replicas=3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := helmTemplate(t, c.overlays, c.set)
			if err != nil {
				t.Fatal(err)
			}
			r := decodeManifests(t, out)
			checkChart(t, r, dev, chartValues(t, c.overlays...), c.secrets)
			if c.name == "no autoscaling" {
				if len(r.scaledObjects) != 0 {
					t.Errorf("autoscaling.enabled=false still renders a ScaledObject")
				}
				if d := r.deployment(t, "-consumer"); d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
					t.Errorf("consumer replicas = %v, want 3", d.Spec.Replicas)
				}
			} else if len(r.scaledObjects) != 1 {
				t.Errorf("%d ScaledObjects rendered, want 1", len(r.scaledObjects))
			}
		})
	}

	// Values that break an invariant do not render at all.
	for _, c := range []struct {
		name string
		set  []string
		want string
	}{
		{"more replicas than partitions", []string{"autoscaling.maxReplicas=13"}, "exceeds partitions (12)"},
		{"grace period shorter than the drain", []string{"consumer.terminationGracePeriodSeconds=30"}, "must be longer than config.kafka.shutdown_timeout (30s)"},
		{"unparsable shutdown_timeout", []string{"config.kafka.shutdown_timeout=1.5m"}, "use h, m and s units"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := helmTemplate(t, nil, c.set)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("helm template --set %v: %v, want a failure containing %q", c.set, err, c.want)
			}
		})
	}
}

func checkChart(t *testing.T, r rendered, dev devProcess, partitions int, secrets []string) {
	t.Helper()
	if len(r.configMaps) != 1 {
		t.Fatalf("%d ConfigMaps rendered, want 1", len(r.configMaps))
	}
	cmYAML := r.configMaps[0].Data["spanpipe.yaml"]
	var cfg spanpipeConfig
	if err := yaml.Unmarshal([]byte(cmYAML), &cfg); err != nil {
		t.Fatalf("ConfigMap spanpipe.yaml: %v", err)
	}
	shutdown, err := time.ParseDuration(cfg.Kafka.ShutdownTimeout)
	if err != nil {
		t.Fatalf("kafka.shutdown_timeout %q: %v", cfg.Kafka.ShutdownTimeout, err)
	}

	// The config the pods run is one the binary accepts (with the Secret's variables).
	dir := t.TempDir()
	ca := filepath.Join(repoRoot, "deploy", "testdata", "ca.pem") // any certificate: --check parses kafka.tls.ca_file
	cfgPath := filepath.Join(dir, "spanpipe.yaml")
	if err := os.WriteFile(cfgPath, []byte(strings.ReplaceAll(cmYAML, "/etc/spanpipe/kafka-ca/ca.pem", ca)), 0o600); err != nil {
		t.Fatal(err)
	}
	listenPort := cfg.Metrics.Listen[strings.LastIndex(cfg.Metrics.Listen, ":")+1:]
	consumer := r.deployment(t, "-consumer")
	checkConfig(t, cfgPath, podEnv(t, r, consumer, cfgPath)...)
	grace := consumer.Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil || time.Duration(*grace)*time.Second <= shutdown {
		t.Errorf("consumer terminationGracePeriodSeconds = %v, want > kafka.shutdown_timeout %s", grace, shutdown)
	}
	for _, so := range r.scaledObjects {
		if so.Spec.MaxReplicaCount > partitions || so.Spec.MaxReplicaCount < so.Spec.MinReplicaCount || so.Spec.MinReplicaCount < 1 {
			t.Errorf("ScaledObject replicas %d..%d, want 1 <= min <= max <= partitions (%d)", so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount, partitions)
		}
		if so.Spec.ScaleTargetRef.Name != consumer.Metadata.Name {
			t.Errorf("ScaledObject targets %q, want the consumer Deployment %q", so.Spec.ScaleTargetRef.Name, consumer.Metadata.Name)
		}
		for _, tr := range so.Spec.Triggers {
			md := tr.Metadata
			if tr.Type != "kafka" || md["consumerGroup"] != cfg.Kafka.Group || md["topic"] != cfg.Kafka.Topics[0] ||
				md["bootstrapServers"] != strings.Join(cfg.Kafka.Brokers, ",") {
				t.Errorf("ScaledObject trigger %s %v does not watch the consumers' group %q on %q at %v", tr.Type, md, cfg.Kafka.Group, cfg.Kafka.Topics[0], cfg.Kafka.Brokers)
			}
		}
	}
	for _, p := range r.pdbs {
		if !reflect.DeepEqual(p.Spec.Selector.MatchLabels, consumer.Spec.Selector.MatchLabels) {
			t.Errorf("PodDisruptionBudget selects %v, want the consumers %v", p.Spec.Selector.MatchLabels, consumer.Spec.Selector.MatchLabels)
		}
	}
	if len(r.pdbs) != 1 {
		t.Errorf("%d PodDisruptionBudgets, want 1", len(r.pdbs))
	}

	// Probes: a declared port, the port the process listens on, a path it serves.
	for _, d := range r.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			ports := map[string]int{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			want := listenPort
			for _, a := range c.Args {
				if v, ok := strings.CutPrefix(a, "--metrics-addr="); ok {
					want = v[strings.LastIndex(v, ":")+1:]
				}
			}
			for kind, p := range map[string]*probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
				if p == nil || p.HTTPGet == nil {
					t.Errorf("%s/%s has no HTTP %s probe", d.Metadata.Name, c.Name, kind)
					continue
				}
				if got := strconv.Itoa(ports[p.HTTPGet.Port]); got != want {
					t.Errorf("%s/%s %s probe port %q = container port %s, want the metrics port %s", d.Metadata.Name, c.Name, kind, p.HTTPGet.Port, got, want)
				}
				if code, body := getOK(t, dev.metricsBase+p.HTTPGet.Path); code != 200 {
					t.Errorf("%s/%s %s probe path %s: spanpipe answers %d %q, want 200", d.Metadata.Name, c.Name, kind, p.HTTPGet.Path, code, body)
				}
			}
			if sc := d.Spec.Template.Spec.SecurityContext; sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == 0 {
				t.Errorf("%s runs as root (securityContext %+v)", d.Metadata.Name, sc)
			}
			// Secrets reach the pods only through secretKeyRef.
			for _, e := range c.Env {
				if strings.Contains(e.Name, "PASSWORD") && e.Value != "" {
					t.Errorf("%s/%s sets %s in plain text", d.Metadata.Name, c.Name, e.Name)
				}
			}
		}
	}

	// No secret in a ConfigMap: no credential key with a value, and none of the
	// secrets given to the chart anywhere but in a Secret.
	for _, k := range []string{"password:", "token:", "secret_access_key:"} {
		for _, line := range strings.Split(cmYAML, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), k) && strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), k)) != `""` {
				t.Errorf("ConfigMap holds a credential: %q", line)
			}
		}
	}
	for _, s := range secrets {
		inSecret := false
		for _, sec := range r.secrets {
			for _, v := range sec.StringData {
				inSecret = inSecret || v == s
			}
		}
		if !inSecret {
			t.Errorf("secret value %q is in no Secret", s)
		}
		if n := strings.Count(r.raw, s); n != 1 {
			t.Errorf("secret value %q appears %d times in the manifests, want once (its Secret)", s, n)
		}
	}

	// The PrometheusRule is the promtool-tested rules file, unchanged.
	rules, err := os.ReadFile(filepath.Join(repoRoot, "deploy/prometheus/rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := yaml.Unmarshal(rules, &want); err != nil {
		t.Fatal(err)
	}
	if len(r.prometheusRules) != 1 || !reflect.DeepEqual(r.prometheusRules[0].Spec, want) {
		t.Errorf("PrometheusRule spec is not deploy/prometheus/rules.yml (%d rendered)", len(r.prometheusRules))
	}
	for _, sm := range r.serviceMonitors {
		for _, ep := range sm.Spec.Endpoints {
			if ep.Path != "/metrics" || ep.Port != "metrics" {
				t.Errorf("ServiceMonitor endpoint %+v, want port metrics path /metrics", ep)
			}
		}
	}
}

// podEnv is the SPANPIPE_* environment the container of d gets: plain values, and
// secretKeyRef values from the rendered Secrets (an optional key that no Secret
// holds is left unset, as the kubelet does).
func podEnv(t *testing.T, r rendered, d deployment, cfgPath string) []string {
	t.Helper()
	var env []string
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		switch {
		case e.Name == "SPANPIPE_CONFIG":
			env = append(env, e.Name+"="+cfgPath)
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			found := false
			for _, s := range r.secrets {
				if v, ok := s.StringData[ref.Key]; ok && s.Metadata.Name == ref.Name {
					env, found = append(env, e.Name+"="+v), true
				}
			}
			if !found && !ref.Optional {
				t.Errorf("%s: %s reads key %s of Secret %s, which is not rendered", d.Metadata.Name, e.Name, ref.Key, ref.Name)
			}
		}
	}
	return env
}
