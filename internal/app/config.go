// Package app wires spanpipe's components into the processes the spanpipe binary
// runs, and loads their configuration (YAML, then SPANPIPE_* environment variables,
// then flags).
package app

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spanpipe/spanpipe/consumer"
	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/sinks/clickhouse"
	"github.com/spanpipe/spanpipe/sinks/duckdb"
	"gopkg.in/yaml.v3"
)

// Config is the whole configuration of `spanpipe consume`.
type Config struct {
	Kafka    consumer.Config   `yaml:"kafka"`
	Topics   TopicsConfig      `yaml:"topics"`
	Pipeline pipeline.Config   `yaml:"pipeline"`
	Sink     SinkConfig        `yaml:"sink"`
	Drops    dropalerts.Config `yaml:"drops"`
	Metrics  MetricsConfig     `yaml:"metrics"`
	Log      LogConfig         `yaml:"log"`

	// Warnings are what Load noticed but did not reject, for the command to log once
	// it has a logger (SPANPIPE_* variables that are no setting).
	Warnings []string `yaml:"-"`
}

// DefaultBrokers are the seed brokers of every command that is not told otherwise
// (by kafka.brokers, SPANPIPE_KAFKA_BROKERS or --brokers).
const DefaultBrokers = "127.0.0.1:9092"

// TopicsConfig is how the topics spanpipe consumes (kafka.topics) are created: by
// `spanpipe topics create`, and on start by consume and produce when they are
// missing. A topic the broker auto-creates gets its num.partitions, 1 by default,
// and a consumer group of any size then has one member at work. The drop and
// dead-letter topics have their own drops.* settings.
type TopicsConfig struct {
	// Create makes consume and produce create missing topics with these settings
	// on start (needs the CreateTopics ACL; without it they warn and wait for the
	// topic). Default true.
	Create bool `yaml:"create"`
	// Partitions of a created topic: the most consumers of one group that can work
	// at once. Default 12.
	Partitions int32 `yaml:"partitions"`
	// ReplicationFactor of a created topic; -1 means the broker's
	// default.replication.factor. Default -1.
	ReplicationFactor int16 `yaml:"replication_factor"`
	// Configs are topic configs of a created topic, such as retention.ms: "604800000".
	// Default none (the broker's defaults).
	Configs map[string]string `yaml:"configs"`
}

// Validate reports every problem, each naming its topics.* key.
func (c TopicsConfig) Validate() error {
	var errs []error
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("topics.partitions must be >= 1, got %d", c.Partitions))
	}
	if c.ReplicationFactor < 1 && c.ReplicationFactor != -1 {
		errs = append(errs, fmt.Errorf("topics.replication_factor must be >= 1 or -1 (the broker's default), got %d", c.ReplicationFactor))
	}
	for k := range c.Configs {
		if k == "" || strings.ContainsAny(k, " =") {
			errs = append(errs, fmt.Errorf("topics.configs: %q is not a topic config name", k))
		}
	}
	return errors.Join(errs...)
}

// Sink types: the values of [SinkConfig.Type].
const (
	SinkDuckDB     = "duckdb"
	SinkClickHouse = "clickhouse"
)

// SinkConfig selects and configures the sink. Only the block of the selected type is
// validated and used; the other keeps its defaults.
type SinkConfig struct {
	// Type is "duckdb" (an embedded file, for one consumer) or "clickhouse" (a
	// server, for a consumer group of any size). Default "duckdb".
	Type   string        `yaml:"type"`
	DuckDB duckdb.Config `yaml:"duckdb"`
	// ClickHouse configures the ClickHouse sink. Its password, when not in the file,
	// comes from SPANPIPE_SINK_CLICKHOUSE_PASSWORD (like any key) or else from
	// SPANPIPE_CLICKHOUSE_PASSWORD (read when connecting; see
	// [clickhouse.PasswordEnv]); the whole DSN may also come from
	// SPANPIPE_SINK_CLICKHOUSE_DSN.
	ClickHouse clickhouse.Config `yaml:"clickhouse"`
}

// Validate reports every problem of the selected sink, each naming its sink.* key.
func (s SinkConfig) Validate() error {
	switch s.Type {
	case SinkDuckDB:
		return keyed("sink.", s.DuckDB.Validate())
	case SinkClickHouse:
		return keyed("sink.", s.ClickHouse.Validate())
	}
	return fmt.Errorf("sink.type must be duckdb or clickhouse, got %q", s.Type)
}

// MetricsConfig configures the HTTP server for /metrics, /livez and /readyz
// (/healthz is /livez), and the thresholds of the health checks.
type MetricsConfig struct {
	// Listen is the address to serve on; empty disables the server.
	// Default "127.0.0.1:9464".
	Listen string `yaml:"listen"`
	// LiveMaxPollGap: /livez fails when the poll loop has not gone round for this
	// long (it goes round every second even when idle or paused; a rebalance may hold
	// it up to kafka.rebalance_timeout, so this must be longer). Default 2m.
	LiveMaxPollGap time.Duration `yaml:"live_max_poll_gap"`
	// LiveMaxSinkCall: /livez fails when one sink write call has not returned for
	// this long (a hung call; retries and backoff between calls do not count).
	// Default 5m.
	LiveMaxSinkCall time.Duration `yaml:"live_max_sink_call"`
	// ReadyMaxStall: /readyz fails when the oldest record neither written nor
	// dead-lettered is older than this. Must exceed pipeline.max_batch_wait.
	// Default 2m.
	ReadyMaxStall time.Duration `yaml:"ready_max_stall"`
	// ReadyMaxSinkFailing: /readyz fails when sink writes have failed (unavailable or
	// erroring) with no success for this long. Default 1m.
	ReadyMaxSinkFailing time.Duration `yaml:"ready_max_sink_failing"`
	// ReadyAssignmentGrace: /readyz fails until the member holds a partition or
	// this long has passed since it started; after that a member without partitions
	// (more members than partitions) is a ready standby. Default 30s.
	ReadyAssignmentGrace time.Duration `yaml:"ready_assignment_grace"`
}

// Validate reports every problem, each naming its key.
func (c MetricsConfig) Validate() error {
	var errs []error
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"live_max_poll_gap", c.LiveMaxPollGap}, {"live_max_sink_call", c.LiveMaxSinkCall}, {"ready_max_stall", c.ReadyMaxStall},
		{"ready_max_sink_failing", c.ReadyMaxSinkFailing}, {"ready_assignment_grace", c.ReadyAssignmentGrace}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("metrics.%s must be > 0, got %s", d.key, d.v))
		}
	}
	return errors.Join(errs...)
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
	// KafkaLevel is the level of the Kafka client's own lines (debug, info, warn or
	// error). Default warn: at info it logs every connection and rebalance step.
	KafkaLevel string `yaml:"kafka_level"`
}

// DefaultConfig returns the defaults of every component.
func DefaultConfig() Config {
	kafka := consumer.DefaultConfig()
	kafka.Brokers = []string{DefaultBrokers}
	return Config{
		Kafka:    kafka,
		Topics:   TopicsConfig{Create: true, Partitions: 12, ReplicationFactor: -1},
		Pipeline: pipeline.DefaultConfig(),
		Sink:     SinkConfig{Type: SinkDuckDB, DuckDB: duckdb.DefaultConfig(), ClickHouse: clickhouse.DefaultConfig()},
		Drops:    dropalerts.DefaultConfig(),
		Metrics: MetricsConfig{Listen: "127.0.0.1:9464", LiveMaxPollGap: 2 * time.Minute, LiveMaxSinkCall: 5 * time.Minute,
			ReadyMaxStall: 2 * time.Minute, ReadyMaxSinkFailing: time.Minute, ReadyAssignmentGrace: 30 * time.Second},
		Log: LogConfig{Level: "info", Format: "text", KafkaLevel: "warn"},
	}
}

// Validate reports every problem of every component.
func (c Config) Validate() error {
	errs := []error{c.Kafka.Validate(), c.Kafka.Security.Validate("kafka."), c.Topics.Validate(), unwrapped(c.Pipeline.Validate()), c.Drops.Validate(), c.Metrics.Validate()}
	if c.Metrics.LiveMaxPollGap > 0 && c.Metrics.LiveMaxPollGap <= c.Kafka.RebalanceTimeout {
		errs = append(errs, fmt.Errorf("metrics.live_max_poll_gap (%s) must be > kafka.rebalance_timeout (%s): a rebalance holds the poll loop that long",
			c.Metrics.LiveMaxPollGap, c.Kafka.RebalanceTimeout))
	}
	if c.Metrics.ReadyMaxStall > 0 && c.Metrics.ReadyMaxStall <= c.Pipeline.MaxBatchWait {
		errs = append(errs, fmt.Errorf("metrics.ready_max_stall (%s) must be > pipeline.max_batch_wait (%s): a healthy batch waits that long",
			c.Metrics.ReadyMaxStall, c.Pipeline.MaxBatchWait))
	}
	errs = append(errs, c.Sink.Validate())
	errs = append(errs, c.Log.Validate())
	return errors.Join(errs...)
}

// Validate checks the levels and the format, naming them by their config keys.
func (c LogConfig) Validate() error { return c.validate("log.level", "log.format", "log.kafka_level") }

// ValidateFlags is Validate naming the command-line flags that set them.
func (c LogConfig) ValidateFlags() error {
	return c.validate("--log-level", "--log-format", "--kafka-log-level")
}

func (c LogConfig) validate(level, format, kafkaLevel string) error {
	var errs []error
	for _, lv := range []struct{ key, v string }{{level, c.Level}, {kafkaLevel, c.KafkaLevel}} {
		switch lv.v {
		case "debug", "info", "warn", "error":
		default:
			errs = append(errs, fmt.Errorf("%s must be debug, info, warn or error, got %q", lv.key, lv.v))
		}
	}
	switch c.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("%s must be text or json, got %q", format, c.Format))
	}
	return errors.Join(errs...)
}

// keyed names the full key in each of the joined errors of a component's Validate,
// which say "duckdb: path must not be empty": under prefix "sink." that becomes
// "sink.duckdb.path must not be empty".
func keyed(prefix string, err error) error {
	return eachProblem(err, func(msg string) string {
		if comp, rest, ok := strings.Cut(msg, ": "); ok && !strings.ContainsAny(comp, " .") {
			msg = comp + "." + rest
		}
		return prefix + msg
	})
}

// unwrapped drops the package prefix an error wrapped under its key carries:
// "pipeline.strategy: pipeline: unknown strategy" becomes "pipeline.strategy:
// unknown strategy".
func unwrapped(err error) error {
	return eachProblem(err, func(msg string) string {
		if key, rest, ok := strings.Cut(msg, ": "); ok {
			pkg, _, _ := strings.Cut(key, ".")
			msg = key + ": " + strings.TrimPrefix(rest, pkg+": ")
		}
		return msg
	})
}

// eachProblem rewrites the message of each of the joined errors of err.
func eachProblem(err error, rewrite func(string) string) error {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		out = append(out, errors.New(rewrite(e.Error())))
	}
	return errors.Join(out...)
}

// Load reads the YAML file at path (none when empty) over the defaults, then applies
// SPANPIPE_* variables from environ. It applies every valid setting and returns,
// joined, every problem of the file and the environment, each naming the user's key
// (kafka.grup, SPANPIPE_KAFKA_SESSION_TIMEOUT), never a Go type; the caller adds its
// flags' problems and [Config.Validate]'s and reports them together with
// [ConfigError]. Unknown YAML keys are problems: a typo in a config file should fail
// loudly, not silently keep a default.
func Load(path string, environ []string) (Config, error) {
	cfg := DefaultConfig()
	var errs []error
	if path != "" {
		errs = append(errs, loadFile(&cfg, path))
	}
	errs = append(errs, ApplyEnv(&cfg, environ))
	for _, k := range UnknownEnv(environ) {
		cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("environment variable %s is not a spanpipe setting; ignored", k))
	}
	cfg.Sink.DuckDB.MemoryLimit = bareBytes(cfg.Sink.DuckDB.MemoryLimit)
	cfg.Sink.DuckDB.CheckpointThreshold = bareBytes(cfg.Sink.DuckDB.CheckpointThreshold)
	return cfg, errors.Join(errs...)
}

// ConfigError presents the problems of a config (from [Load], the command's flags and
// [Config.Validate]) in one style: one problem a line, under one heading.
func ConfigError(err error) error {
	if err == nil {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return fmt.Errorf("invalid config (%d %s):\n  %s", len(lines), map[bool]string{true: "problem", false: "problems"}[len(lines) == 1],
		strings.Join(lines, "\n  "))
}

// loadFile decodes the YAML file at path into cfg. The document is checked against
// cfg's keys and types first (see [checkNode]), so that each problem names its line
// and key, and every valid setting is still applied.
func loadFile(cfg *Config, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil // empty file: the defaults
	}
	var errs []error
	checkNode(doc.Content[0], reflect.TypeOf(cfg).Elem(), "", func(line int, key, problem string) {
		errs = append(errs, fmt.Errorf("%s:%d: %s: %s", path, line, key, problem))
	})
	if err := doc.Content[0].Decode(cfg); err != nil {
		errs = append(errs, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: ")))
	}
	return errors.Join(errs...)
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	timeType     = reflect.TypeOf(time.Time{})
)

// checkNode checks n against the Go type t that key decodes into, reports what
// does not fit in the user's words, and removes it from the document (so that the
// rest decodes). It also accepts what the environment accepts: a comma-separated
// string for a list, and a size with a unit (16MB, 1MiB) for a byte count. It
// reports whether n is to be kept.
func checkNode(n *yaml.Node, t reflect.Type, key string, bad func(line int, key, problem string)) bool {
	if n.Kind == yaml.AliasNode || n.Tag == "!!null" {
		return true
	}
	switch {
	case t.Kind() == reflect.Struct && t != timeType:
		if n.Kind != yaml.MappingNode {
			bad(n.Line, key, fmt.Sprintf("want a block of keys (%s), got %s", strings.Join(yamlKeys(t), ", "), describe(n)))
			return false
		}
		fields := make(map[string]reflect.StructField)
		collectFields(t, fields)
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			full := k.Value
			if key != "" {
				full = key + "." + k.Value
			}
			f, ok := fields[k.Value]
			switch {
			case !ok:
				bad(k.Line, full, fmt.Sprintf("unknown key (%s has %s)", blockName(key), strings.Join(yamlKeys(t), ", ")))
			case checkNode(v, f.Type, full, bad):
				kept = append(kept, k, v)
			}
		}
		n.Content = kept
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			bad(n.Line, key, "want a duration such as 30s, 5m or 1h30m, got "+describe(n))
			return false
		}
		if _, err := time.ParseDuration(n.Value); err != nil {
			if _, nerr := strconv.ParseFloat(n.Value, 64); nerr == nil {
				bad(n.Line, key, fmt.Sprintf("%s has no unit: write a duration such as %ss or %sms", n.Value, n.Value, n.Value))
			} else {
				bad(n.Line, key, fmt.Sprintf("%q is not a duration such as 30s, 5m or 1h30m", n.Value))
			}
			return false
		}
		n.Tag = "!!str"
	case isBytesKey(key) && t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		if n.Kind != yaml.ScalarNode {
			bad(n.Line, key, "want a size such as 1048576, 16MB or 1MiB, got "+describe(n))
			return false
		}
		v, err := parseBytesSetting(n.Value)
		if err == nil && reflect.New(t).Elem().OverflowInt(v) {
			err = fmt.Errorf("%s is too large", n.Value)
		}
		if err != nil {
			bad(n.Line, key, err.Error())
			return false
		}
		n.Value, n.Tag, n.Style = strconv.FormatInt(v, 10), "!!int", 0
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		switch n.Kind {
		case yaml.ScalarNode: // "a:9092, b:9092", as in the environment
			var items []*yaml.Node
			for _, p := range splitList(n.Value) {
				items = append(items, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p, Line: n.Line, Column: n.Column})
			}
			*n = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: items, Line: n.Line, Column: n.Column}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				if c.Kind != yaml.ScalarNode {
					bad(c.Line, key, "want a list of strings, got "+describe(c)+" in it")
					return false
				}
				c.Tag = "!!str"
			}
		default:
			bad(n.Line, key, "want a list (a, b) or a comma-separated string, got "+describe(n))
			return false
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			bad(n.Line, key, "want a block of name: value pairs, got "+describe(n))
			return false
		}
	case t.Kind() == reflect.String || t.Kind() == reflect.Bool || t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64 ||
		t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		if n.Kind != yaml.ScalarNode {
			bad(n.Line, key, "want a single value, got "+describe(n))
			return false
		}
		if t.Kind() == reflect.String {
			n.Tag = "!!str" // 0700 or true as text, as the user wrote it
			return true
		}
		if err := setField(reflect.New(t).Elem(), n.Value, false); err != nil {
			bad(n.Line, key, err.Error())
			return false
		}
		if t.Kind() == reflect.Bool {
			n.Value = strings.ToLower(n.Value)
		}
		n.Tag = ""
		n.Style = 0
	}
	return true
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a block of keys"
	case yaml.SequenceNode:
		return "a list"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:37] + "..."
	}
	return strconv.Quote(v)
}

func blockName(key string) string {
	if key == "" {
		return "the file"
	}
	return key
}

// collectFields maps the YAML keys of struct type t to their fields, inline blocks
// included.
func collectFields(t reflect.Type, out map[string]reflect.StructField) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, flags, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if flags == "inline" && sf.Type.Kind() == reflect.Struct {
			collectFields(sf.Type, out)
			continue
		}
		if tag != "" && tag != "-" && sf.IsExported() {
			out[tag] = sf
		}
	}
}

// yamlKeys lists the keys of struct type t, sorted.
func yamlKeys(t reflect.Type) []string {
	fields := make(map[string]reflect.StructField)
	collectFields(t, fields)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// isBytesKey: the byte counts are the keys named after bytes (fetch_max_bytes,
// max_bytes_per_insert).
func isBytesKey(key string) bool {
	last := key[strings.LastIndex(key, ".")+1:]
	last = strings.ToLower(strings.TrimPrefix(last, "SPANPIPE_"))
	return slices.Contains(strings.Split(last, "_"), "bytes")
}

// bytesRE is the size syntax of DuckDB's memory_limit, which the DuckDB keys pass on
// as written: spanpipe's own byte counts accept the same, with the same units.
var bytesRE = regexp.MustCompile(`(?i)^([0-9]+(?:\.[0-9]+)?)\s*(b|bytes|kb|kib|mb|mib|gb|gib|tb|tib)?$`)

var byteUnits = map[string]float64{"": 1, "b": 1, "bytes": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}

// ParseBytes reads a byte count: a whole number of bytes, or a number with a unit,
// as DuckDB reads them: KB, MB, GB and TB are powers of 1000, KiB, MiB, GiB and TiB
// powers of 1024 (16MB is 16000000 bytes, 16MiB 16777216).
func ParseBytes(s string) (int64, error) {
	m := bytesRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size: write bytes (1048576) or a size with a unit (16MB, 1MiB, 2GB)", s)
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	v := f * byteUnits[strings.ToLower(m[2])]
	if v >= 1<<63 {
		return 0, fmt.Errorf("%s is too large", s)
	}
	if v != float64(int64(v)) {
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	}
	return int64(v), nil
}

// parseBytesSetting is [ParseBytes] for a config key, which also takes -1: the value
// pipeline.go_memory_limit_bytes documents as "no limit" (every other byte key's
// Validate rejects it with its own message).
func parseBytesSetting(s string) (int64, error) {
	if strings.TrimSpace(s) == "-1" {
		return -1, nil
	}
	return ParseBytes(s)
}

// bareBytes gives a plain byte count a unit, which DuckDB's size settings require.
func bareBytes(s string) string {
	if _, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64); err == nil {
		return strings.TrimSpace(s) + "B"
	}
	return s
}

func splitList(s string) []string {
	var parts []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	return parts
}

// ApplyEnv sets fields from SPANPIPE_<SECTION>_<KEY> variables, named after the YAML
// keys in upper case: SPANPIPE_KAFKA_BROKERS=a:9092,b:9092,
// SPANPIPE_PIPELINE_MAX_BATCH_SIZE=5000, SPANPIPE_SINK_DUCKDB_PATH=/data/x.duckdb,
// SPANPIPE_SINK_CLICKHOUSE_TLS_ENABLE=true, SPANPIPE_SINK_CLICKHOUSE_TTL_SPANS=30.
// Lists are comma-separated, durations use Go syntax (5s, 250ms), byte counts take
// the units of [ParseBytes] (16MB, 1MiB).
func ApplyEnv(cfg *Config, environ []string) error {
	vars := make(map[string]string)
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, "SPANPIPE_") {
			vars[k] = v
		}
	}
	if len(vars) == 0 {
		return nil
	}
	var errs []error
	walkYAML(reflect.ValueOf(cfg).Elem(), "SPANPIPE", func(name string, f reflect.Value) {
		v, ok := vars[name]
		if !ok {
			return
		}
		if err := setField(f, v, isBytesKey(name)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	})
	return errors.Join(errs...)
}

// UnknownEnv lists the SPANPIPE_* variables in environ that are no setting, sorted.
// They are not errors: the prefix is not ours alone (Kubernetes injects
// SPANPIPE_PORT and SPANPIPE_SERVICE_HOST into every pod of a namespace with a
// Service named spanpipe, and other tools' variables may share it), so a command
// warns about them and goes on.
func UnknownEnv(environ []string) []string {
	known := make(map[string]bool)
	var cfg Config
	walkYAML(reflect.ValueOf(&cfg).Elem(), "SPANPIPE", func(name string, _ reflect.Value) { known[name] = true })
	var out []string
	for _, kv := range environ {
		k, _, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, "SPANPIPE_") && !known[k] && !ignoredEnv[k] && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// ignoredEnv are SPANPIPE_ variables read elsewhere, not config keys. The
// ClickHouse sink reads its password from SPANPIPE_CLICKHOUSE_PASSWORD when the
// config has none; the explorer reads its token from SPANPIPE_UI_TOKEN (query.TokenEnv).
var ignoredEnv = map[string]bool{"SPANPIPE_CONFIG": true, clickhouse.PasswordEnv: true, "SPANPIPE_UI_TOKEN": true}

func walkYAML(v reflect.Value, prefix string, fn func(string, reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, flags, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if flags == "inline" && sf.Type.Kind() == reflect.Struct {
			walkYAML(v.Field(i), prefix, fn) // its keys sit in the enclosing block
			continue
		}
		if tag == "" || tag == "-" || !sf.IsExported() {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		f := v.Field(i)
		if f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(time.Time{}) {
			walkYAML(f, name, fn)
			continue
		}
		fn(name, f)
	}
}

// setField sets f from s as the environment writes values, and says what is wrong
// with s in the user's words.
func setField(f reflect.Value, s string, bytes bool) error {
	if f.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
				return fmt.Errorf("%s has no unit: write a duration such as %ss or %sms", s, s, s)
			}
			return fmt.Errorf("%q is not a duration such as 30s, 5m or 1h30m", s)
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", s)
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var n int64
		var err error
		if bytes {
			n, err = parseBytesSetting(s)
		} else if n, err = strconv.ParseInt(strings.TrimSpace(s), 10, 64); err != nil {
			err = fmt.Errorf("want a whole number, got %q", s)
		}
		if err == nil && f.OverflowInt(n) {
			err = fmt.Errorf("%s is out of range", s)
		}
		if err != nil {
			return err
		}
		f.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, f.Type().Bits())
		if err != nil {
			return fmt.Errorf("want a whole number >= 0, got %q", s)
		}
		f.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(strings.TrimSpace(s), f.Type().Bits())
		if err != nil {
			return fmt.Errorf("want a number, got %q", s)
		}
		f.SetFloat(n)
	case reflect.Slice:
		if f.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("cannot be set from the environment; set it in the config file")
		}
		f.Set(reflect.ValueOf(splitList(s)).Convert(f.Type()))
	default:
		return fmt.Errorf("cannot be set from the environment; set it in the config file")
	}
	return nil
}
