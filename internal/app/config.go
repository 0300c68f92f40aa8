// Package app wires spanpipe's components into the processes the spanpipe binary
// runs, and loads their configuration (YAML, then SPANPIPE_* environment variables,
// then flags).
package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
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
	Pipeline pipeline.Config   `yaml:"pipeline"`
	Sink     SinkConfig        `yaml:"sink"`
	Drops    dropalerts.Config `yaml:"drops"`
	Metrics  MetricsConfig     `yaml:"metrics"`
	Log      LogConfig         `yaml:"log"`

	// Warnings are what Load noticed but did not reject, for the command to log once
	// it has a logger (SPANPIPE_* variables that are no setting).
	Warnings []string `yaml:"-"`
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
	return Config{
		Kafka:    consumer.DefaultConfig(),
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
	errs := []error{c.Kafka.Validate(), c.Kafka.Security.Validate("kafka."), c.Pipeline.Validate(), c.Drops.Validate(), c.Metrics.Validate()}
	if c.Metrics.LiveMaxPollGap > 0 && c.Metrics.LiveMaxPollGap <= c.Kafka.RebalanceTimeout {
		errs = append(errs, fmt.Errorf("metrics.live_max_poll_gap (%s) must be > kafka.rebalance_timeout (%s): a rebalance holds the poll loop that long",
			c.Metrics.LiveMaxPollGap, c.Kafka.RebalanceTimeout))
	}
	if c.Metrics.ReadyMaxStall > 0 && c.Metrics.ReadyMaxStall <= c.Pipeline.MaxBatchWait {
		errs = append(errs, fmt.Errorf("metrics.ready_max_stall (%s) must be > pipeline.max_batch_wait (%s): a healthy batch waits that long",
			c.Metrics.ReadyMaxStall, c.Pipeline.MaxBatchWait))
	}
	switch c.Sink.Type {
	case SinkDuckDB:
		if err := c.Sink.DuckDB.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("sink.duckdb: %w", err))
		}
	case SinkClickHouse:
		errs = append(errs, prefixEach("sink.", c.Sink.ClickHouse.Validate()))
	default:
		errs = append(errs, fmt.Errorf("sink.type must be duckdb or clickhouse, got %q", c.Sink.Type))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level must be debug, info, warn or error, got %q", c.Log.Level))
	}
	switch c.Log.KafkaLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.kafka_level must be debug, info, warn or error, got %q", c.Log.KafkaLevel))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format must be text or json, got %q", c.Log.Format))
	}
	return errors.Join(errs...)
}

// prefixEach prefixes each of the joined errors of err, so that every problem names
// its full key: clickhouse.Config's "clickhouse: ttl.logs must be >= 0" becomes
// "sink.clickhouse: ttl.logs must be >= 0".
func prefixEach(prefix string, err error) error {
	if err == nil {
		return nil
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return fmt.Errorf("%s%w", prefix, err)
	}
	var out []error
	for _, e := range joined.Unwrap() {
		out = append(out, fmt.Errorf("%s%w", prefix, e))
	}
	return errors.Join(out...)
}

// Load reads the YAML file at path (none when empty) over the defaults, then applies
// SPANPIPE_* variables from environ. Unknown YAML keys are errors: a typo in a config
// file should fail loudly, not silently keep a default.
func Load(path string, environ []string) (Config, error) {
	cfg := DefaultConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := ApplyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	for _, k := range UnknownEnv(environ) {
		cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("environment variable %s is not a spanpipe setting; ignored", k))
	}
	return cfg, nil
}

// ApplyEnv sets fields from SPANPIPE_<SECTION>_<KEY> variables, named after the YAML
// keys in upper case: SPANPIPE_KAFKA_BROKERS=a:9092,b:9092,
// SPANPIPE_PIPELINE_MAX_BATCH_SIZE=5000, SPANPIPE_SINK_DUCKDB_PATH=/data/x.duckdb,
// SPANPIPE_SINK_CLICKHOUSE_TLS_ENABLE=true, SPANPIPE_SINK_CLICKHOUSE_TTL_SPANS=30.
// Lists are comma-separated, durations use Go syntax (5s, 250ms).
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
		if err := setField(f, v); err != nil {
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

func setField(f reflect.Value, s string) error {
	if f.Type() == reflect.TypeOf(time.Duration(0)) {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
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
			return err
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, f.Type().Bits())
		if err != nil {
			return err
		}
		f.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, f.Type().Bits())
		if err != nil {
			return err
		}
		f.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(s, f.Type().Bits())
		if err != nil {
			return err
		}
		f.SetFloat(n)
	case reflect.Slice:
		if f.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list type %s", f.Type())
		}
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		f.Set(reflect.ValueOf(parts).Convert(f.Type()))
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}
