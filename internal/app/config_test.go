package app

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/pipeline"
	"github.com/spanpipe/spanpipe/sinks/clickhouse"
)

func TestLoadLayersFileThenEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("kafka:\n  brokers: [file:9092]\n  group: from-file\npipeline:\n  max_batch_wait: 2s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, []string{
		"SPANPIPE_KAFKA_BROKERS=env-1:9092, env-2:9092",
		"SPANPIPE_PIPELINE_MAX_BATCH_SIZE=5000",
		"SPANPIPE_PIPELINE_ON_RETRY_EXHAUSTED=block",
		"SPANPIPE_SINK_DUCKDB_PATH=/tmp/x.duckdb",
		"SPANPIPE_KAFKA_START_FROM_END=true",
		"SPANPIPE_CONFIG=ignored",
		"HOME=/root",
	})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"brokers from env", strings.Join(cfg.Kafka.Brokers, ","), "env-1:9092,env-2:9092"},
		{"group from file", cfg.Kafka.Group, "from-file"},
		{"wait from file", cfg.Pipeline.MaxBatchWait, 2 * time.Second},
		{"batch size from env", cfg.Pipeline.MaxBatchSize, 5000},
		{"policy from env", cfg.Pipeline.OnRetryExhausted, "block"},
		{"db from env", cfg.Sink.DuckDB.Path, "/tmp/x.duckdb"},
		{"bool from env", cfg.Kafka.StartFromEnd, true},
		{"default kept", cfg.Pipeline.MaxRetries, 4},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid config rejected: %v", err)
	}
}

func TestApplyEnvErrors(t *testing.T) {
	tests := []struct{ env, want string }{
		{"SPANPIPE_PIPELINE_MAX_BATCH_SIZE=lots", "SPANPIPE_PIPELINE_MAX_BATCH_SIZE"},
		{"SPANPIPE_PIPELINE_MAX_BATCH_WAIT=5", "SPANPIPE_PIPELINE_MAX_BATCH_WAIT"},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		err := ApplyEnv(&cfg, []string{tt.env})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", tt.env, err, tt.want)
		}
	}
}

// TestUnrelatedEnvIsAWarning: Kubernetes injects SPANPIPE_PORT and
// SPANPIPE_SERVICE_HOST into every pod when a Service is named spanpipe, and a typo
// must not be fatal either: they are warned about, and the config still loads.
func TestUnrelatedEnvIsAWarning(t *testing.T) {
	env := []string{"SPANPIPE_PORT=tcp://10.0.0.1:9464", "SPANPIPE_SERVICE_HOST=10.0.0.1", "SPANPIPE_ALERTMANAGER_URL=http://am",
		"SPANPIPE_SRC=x", "SPANPIPE_KAFKA_BROKER=a:1", "SPANPIPE_KAFKA_GROUP=g", "SPANPIPE_CONFIG=", "HOME=/root"}
	cfg, err := Load("", env)
	if err != nil {
		t.Fatalf("Load: %v, want unrelated SPANPIPE_* variables ignored", err)
	}
	if cfg.Kafka.Group != "g" {
		t.Errorf("kafka.group = %q, want g from SPANPIPE_KAFKA_GROUP", cfg.Kafka.Group)
	}
	want := []string{"SPANPIPE_ALERTMANAGER_URL", "SPANPIPE_KAFKA_BROKER", "SPANPIPE_PORT", "SPANPIPE_SERVICE_HOST", "SPANPIPE_SRC"}
	if got := UnknownEnv(env); !slices.Equal(got, want) {
		t.Errorf("UnknownEnv = %v, want %v", got, want)
	}
	if len(cfg.Warnings) != len(want) || !strings.Contains(cfg.Warnings[0], "SPANPIPE_ALERTMANAGER_URL") {
		t.Errorf("Warnings = %q, want one per unknown variable", cfg.Warnings)
	}
}

func TestClickHouseSinkConfig(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		env     []string
		check   func(c Config) string // "" when c is as expected
		wantErr []string              // substrings of Load's or Validate's error, one per problem
	}{
		{
			name: "defaults under type clickhouse",
			yaml: "sink:\n  type: clickhouse\n",
			check: func(c Config) string {
				if d := clickhouse.DefaultConfig(); c.Sink.ClickHouse.String() != d.String() {
					return "got " + c.Sink.ClickHouse.String() + ", want the defaults " + d.String()
				}
				return ""
			},
		},
		{
			name: "every key from the file",
			yaml: `sink:
  type: clickhouse
  clickhouse:
    addr: [ch-1:9440, ch-2:9440]
    database: traces
    username: spanpipe_writer
    password: from-file
    tls: {enable: true, ca_file: /etc/ca.pem, server_name: ch.internal}
    compression: zstd
    dial_timeout: 3s
    read_timeout: 2m
    cluster: prod
    replicated: true
    replica_path: /ch/{shard}/{database}/{table}
    replica_name: "{replica}"
    ttl: {spans: 30, logs: 7, metrics: 90, scores: 365, feedback: 365}
    async_insert: true
    max_rows_per_insert: 50000
    max_bytes_per_insert: 33554432
    max_partitions_per_insert: 10
    auto_migrate: false
`,
			check: func(c Config) string {
				ch := c.Sink.ClickHouse
				switch {
				case strings.Join(ch.Addr, ",") != "ch-1:9440,ch-2:9440", ch.Database != "traces", ch.Username != "spanpipe_writer",
					ch.Password != "from-file", !ch.TLS.Enable, ch.TLS.CAFile != "/etc/ca.pem", ch.TLS.ServerName != "ch.internal",
					ch.Compression != "zstd", ch.DialTimeout != 3*time.Second, ch.ReadTimeout != 2*time.Minute,
					ch.Cluster != "prod", !ch.Replicated, ch.ReplicaPath != "/ch/{shard}/{database}/{table}", ch.ReplicaName != "{replica}",
					ch.TTL != clickhouse.TTLConfig{Spans: 30, Logs: 7, Metrics: 90, Scores: 365, Feedback: 365},
					!ch.AsyncInsert, ch.MaxRowsPerInsert != 50000, ch.MaxBytesPerInsert != 32<<20, ch.MaxPartitionsPerInsert != 10, ch.AutoMigrate:
					return "got " + ch.String()
				}
				return ""
			},
		},
		{
			name: "env overrides the file",
			yaml: "sink:\n  type: duckdb\n  clickhouse:\n    database: from_file\n",
			env: []string{
				"SPANPIPE_SINK_TYPE=clickhouse",
				"SPANPIPE_SINK_CLICKHOUSE_ADDR=a:9000, b:9000",
				"SPANPIPE_SINK_CLICKHOUSE_DATABASE=from_env",
				"SPANPIPE_SINK_CLICKHOUSE_PASSWORD=from-env",
				"SPANPIPE_SINK_CLICKHOUSE_TLS_ENABLE=true",
				"SPANPIPE_SINK_CLICKHOUSE_TTL_SPANS=14",
				"SPANPIPE_SINK_CLICKHOUSE_MAX_BYTES_PER_INSERT=1048576",
				"SPANPIPE_SINK_CLICKHOUSE_READ_TIMEOUT=90s",
				"SPANPIPE_SINK_CLICKHOUSE_AUTO_MIGRATE=false",
			},
			check: func(c Config) string {
				ch := c.Sink.ClickHouse
				if c.Sink.Type != SinkClickHouse || strings.Join(ch.Addr, ",") != "a:9000,b:9000" || ch.Database != "from_env" ||
					ch.Password != "from-env" || !ch.TLS.Enable || ch.TTL.Spans != 14 || ch.MaxBytesPerInsert != 1<<20 ||
					ch.ReadTimeout != 90*time.Second || ch.AutoMigrate {
					return "got type " + c.Sink.Type + ", " + ch.String()
				}
				return ""
			},
		},
		{
			name: "dsn from env, password variable of the sink is not an unknown setting",
			yaml: "sink:\n  type: clickhouse\n",
			env:  []string{"SPANPIPE_SINK_CLICKHOUSE_DSN=clickhouse://w@ch:9000/traces?secure=true", clickhouse.PasswordEnv + "=pw"},
			check: func(c Config) string {
				r, err := c.Sink.ClickHouse.Resolve()
				if err != nil || r.Addr[0] != "ch:9000" || r.Database != "traces" || r.Username != "w" || !r.TLS.Enable {
					return "resolved to " + r.String()
				}
				return ""
			},
		},
		{
			name:    "unknown key in the block",
			yaml:    "sink:\n  type: clickhouse\n  clickhouse:\n    adress: [x:9000]\n",
			wantErr: []string{"adress"},
		},
		{
			name:    "bad values are listed with their full key",
			yaml:    "sink:\n  type: clickhouse\n  clickhouse:\n    addr: [nohost]\n    database: a-b\n    ttl: {logs: -1}\n    max_rows_per_insert: 0\n",
			wantErr: []string{`sink.clickhouse.addr "nohost"`, `sink.clickhouse.database "a-b"`, "sink.clickhouse.ttl.logs", "sink.clickhouse.max_rows_per_insert"},
		},
		{
			name:    "bad dsn",
			yaml:    "sink:\n  type: clickhouse\n  clickhouse:\n    dsn: http://ch:8123\n",
			wantErr: []string{"sink.clickhouse.dsn must start with clickhouse://"},
		},
		{
			name:    "clickhouse block ignored under type duckdb",
			yaml:    "sink:\n  type: duckdb\n  clickhouse:\n    database: a-b\n",
			wantErr: nil,
		},
		{
			name:    "unknown sink type",
			yaml:    "sink:\n  type: postgres\n",
			wantErr: []string{"sink.type must be duckdb or clickhouse"},
		},
		{
			name:    "bad env value",
			env:     []string{"SPANPIPE_SINK_CLICKHOUSE_TTL_SPANS=forever"},
			wantErr: []string{"SPANPIPE_SINK_CLICKHOUSE_TTL_SPANS"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.yaml != "" {
				path = filepath.Join(t.TempDir(), "c.yaml")
				if err := os.WriteFile(path, []byte(tt.yaml), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			env := append([]string{"SPANPIPE_KAFKA_BROKERS=k:9092"}, tt.env...)
			cfg, err := Load(path, env)
			if err == nil {
				err = cfg.Validate()
			}
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Load+Validate(%q, %q): %v", tt.yaml, tt.env, err)
				}
				if tt.check != nil {
					if msg := tt.check(cfg); msg != "" {
						t.Errorf("Load(%q, %q): %s", tt.yaml, tt.env, msg)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("Load+Validate(%q, %q): no error, want %q", tt.yaml, tt.env, tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load+Validate(%q): got %q, want it to mention %q", tt.yaml, err, w)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); len(tt.wantErr) > 1 && n != len(tt.wantErr) {
				t.Errorf("got %d problems, want %d: %v", n, len(tt.wantErr), err)
			}
		})
	}
}

// TestDeployClickHouseConfigsLoad loads the example configs of deploy/clickhouse the
// way `spanpipe consume --config` does, so that they stay valid as keys change.
func TestDeployClickHouseConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../../deploy/clickhouse/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %v, want spanpipe.yaml and cluster.yaml in deploy/clickhouse", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := Load(f, nil)
			if err != nil {
				t.Fatalf("Load(%s): %v", f, err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate(%s): %v", f, err)
			}
			if cfg.Sink.Type != SinkClickHouse {
				t.Errorf("%s: sink.type = %q, want clickhouse", f, cfg.Sink.Type)
			}
			if filepath.Base(f) == "cluster.yaml" && (cfg.Sink.ClickHouse.Cluster == "" || !cfg.Sink.ClickHouse.Replicated) {
				t.Errorf("%s: want cluster and replicated set", f)
			}
		})
	}
}

// Every health threshold is validated under its key, and against the setting it must
// exceed; YAML and the environment both reach them.
func TestMetricsHealthConfig(t *testing.T) {
	cfg, err := Load("", []string{"SPANPIPE_METRICS_READY_MAX_STALL=3m", "SPANPIPE_KAFKA_BROKERS=b:9092"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil || cfg.Metrics.ReadyMaxStall != 3*time.Minute {
		t.Fatalf("ready_max_stall from env = %s, Validate: %v", cfg.Metrics.ReadyMaxStall, err)
	}
	cfg.Metrics = MetricsConfig{LiveMaxPollGap: 30 * time.Second, ReadyMaxStall: time.Second}
	err = cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted zero and too-short health thresholds")
	}
	for _, want := range []string{"metrics.live_max_sink_call must be > 0", "metrics.ready_max_sink_failing must be > 0",
		"metrics.ready_assignment_grace must be > 0", "metrics.live_max_poll_gap (30s) must be > kafka.rebalance_timeout",
		"metrics.ready_max_stall (1s) must be > pipeline.max_batch_wait"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v\nwant it to mention %q", err, want)
		}
	}
}

// TestLoadSpeaksTheUsersKeys: a config problem names the file, line and key the
// user wrote and what is wrong, never a Go type (it used to say "field grup not
// found in type consumer.Config", "cannot unmarshal !!str `127.0.0...` into
// []string", "cannot unmarshal !!int `45` into time.Duration"), and every problem of
// the file and the environment comes at once.
func TestLoadSpeaksTheUsersKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte(`kafka:
  grup: g
  session_timeout: 45
  rebalance_timeout: soon
  fetch_max_bytes: 16XB
sink:
  duckdb:
    threads: many
pipeline: [1, 2]
`), 0o644)
	_, err := Load(path, []string{"SPANPIPE_KAFKA_SHUTDOWN_TIMEOUT=30", "SPANPIPE_PIPELINE_MAX_BATCH_BYTES=lots"})
	if err == nil {
		t.Fatal("Load accepted a broken config")
	}
	msg := err.Error()
	for _, want := range []string{
		path + ":2: kafka.grup: unknown key (kafka has brokers, client_id, fetch_max_bytes, fetch_max_partition_bytes, group,",
		path + ":3: kafka.session_timeout: 45 has no unit: write a duration such as 45s",
		path + `:4: kafka.rebalance_timeout: "soon" is not a duration`,
		path + `:5: kafka.fetch_max_bytes: "16XB" is not a size`,
		path + `:8: sink.duckdb.threads: want a whole number, got "many"`,
		path + ":9: pipeline: want a block of keys",
		"SPANPIPE_KAFKA_SHUTDOWN_TIMEOUT: 30 has no unit",
		`SPANPIPE_PIPELINE_MAX_BATCH_BYTES: "lots" is not a size`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	for _, goType := range []string{"consumer.Config", "!!", "time.Duration", "[]string", "int32", "unmarshal"} {
		if strings.Contains(msg, goType) {
			t.Errorf("error speaks Go (%q):\n%s", goType, msg)
		}
	}
	if n := len(strings.Split(msg, "\n")); n != 8 {
		t.Errorf("%d problems reported, want all 8:\n%s", n, msg)
	}
	if got := ConfigError(err).Error(); !strings.HasPrefix(got, "invalid config (8 problems):\n  "+path+":2: kafka.grup") {
		t.Errorf("ConfigError = %q", got)
	}
}

// TestLoadAcceptsWhatTheEnvironmentAccepts: a list may be a comma-separated string
// in the file too, and every byte count takes the units DuckDB's sizes take (16MB
// was accepted by sink.duckdb.checkpoint_threshold but not by fetch_max_bytes).
func TestLoadAcceptsWhatTheEnvironmentAccepts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte(`kafka:
  brokers: 127.0.0.1:9092, 127.0.0.2:9092
  fetch_max_bytes: 16MB
pipeline:
  max_batch_bytes: 1MiB
  max_record_bytes: "2 MiB"
sink:
  duckdb:
    memory_limit: 1073741824
    checkpoint_threshold: 256MB
drops:
  max_message_bytes: 1048576
`), 0o644)
	cfg, err := Load(path, []string{"SPANPIPE_PIPELINE_MAX_BUFFER_BYTES=256MB", "SPANPIPE_SINK_CLICKHOUSE_MAX_BYTES_PER_INSERT=1GiB"})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"kafka.brokers", strings.Join(cfg.Kafka.Brokers, ","), "127.0.0.1:9092,127.0.0.2:9092"},
		{"kafka.fetch_max_bytes", cfg.Kafka.FetchMaxBytes, int32(16_000_000)},
		{"pipeline.max_batch_bytes", cfg.Pipeline.MaxBatchBytes, int64(1 << 20)},
		{"pipeline.max_record_bytes", cfg.Pipeline.MaxRecordBytes, 2 << 20},
		{"pipeline.max_buffer_bytes", cfg.Pipeline.MaxBufferBytes, int64(256_000_000)},
		{"sink.clickhouse.max_bytes_per_insert", cfg.Sink.ClickHouse.MaxBytesPerInsert, int64(1 << 30)},
		{"sink.duckdb.memory_limit", cfg.Sink.DuckDB.MemoryLimit, "1073741824B"},
		{"sink.duckdb.checkpoint_threshold", cfg.Sink.DuckDB.CheckpointThreshold, "256MB"},
		{"drops.max_message_bytes", cfg.Drops.MaxMessageBytes, 1 << 20},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v (%T), want %v (%T)", c.key, c.got, c.got, c.want, c.want)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "16MB": 16e6, "16mb": 16e6, "1MiB": 1 << 20,
		"1.5GiB": 3 << 29, "2 KB": 2000, "512b": 512, "7bytes": 7, "1TiB": 1 << 40} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "-1MB", "16XB", "1.5", "0.5B", "99999999TiB"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) accepted", in)
		}
	}
}

func TestValidateNamesEachKeyOnce(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Pipeline.Strategy = "fastest"
	cfg.Sink.DuckDB.Path = ""
	err := cfg.Validate()
	for _, want := range []string{`pipeline.strategy: unknown strategy "fastest"`, "sink.duckdb.path must not be empty"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want %q", err, want)
		}
	}
}

func TestGoMemoryLimit(t *testing.T) {
	duck := pipeline.Capabilities{InProcess: true}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		caps pipeline.Capabilities
		want int64
	}{
		{"derived from the defaults", func(*Config) {}, pipeline.Capabilities{}, 64<<20 + 4*4<<20 + 32<<20},
		{"derived for an in-process sink: its smaller fetches", func(*Config) {}, duck, 64<<20 + 4*2<<20 + 32<<20},
		{"derived from larger buffers", func(c *Config) { c.Pipeline.MaxBufferBytes, c.Kafka.FetchMaxBytes = 256<<20, 16<<20 }, duck,
			256<<20 + 4*16<<20 + 32<<20},
		{"set", func(c *Config) { c.Pipeline.GoMemoryLimitBytes = 500 << 20 }, duck, 500 << 20},
		{"none", func(c *Config) { c.Pipeline.GoMemoryLimitBytes = -1 }, duck, 0},
		{"derived for ClickHouse: an insert's columns too", func(c *Config) { c.Sink.Type = SinkClickHouse }, pipeline.Capabilities{},
			64<<20 + 4*4<<20 + 32<<20 + 64<<20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.edit(&cfg)
			if got := GoMemoryLimit(cfg, tc.caps); got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}
}

// TestGoRuntimeDerivedFromTheSink: an unset fetch size and collector target are
// derived from the sink, a set one wins, and the fetch never drops below one
// partition's bytes (which Validate allows up to 4 MiB when the size is unset).
func TestGoRuntimeDerivedFromTheSink(t *testing.T) {
	duck := pipeline.Capabilities{InProcess: true}
	for _, tc := range []struct {
		name      string
		edit      func(*Config)
		caps      pipeline.Capabilities
		wantFetch int32
		wantGC    int
	}{
		{"remote sink", func(*Config) {}, pipeline.Capabilities{}, 4 << 20, 100},
		{"in-process sink", func(*Config) {}, duck, 2 << 20, 50},
		{"in-process sink, large partition fetches", func(c *Config) { c.Kafka.FetchMaxPartitionBytes = 3 << 20 }, duck, 3 << 20, 50},
		{"set values win", func(c *Config) { c.Kafka.FetchMaxBytes, c.Pipeline.GoGCPercent = 8<<20, 200 }, duck, 8 << 20, 200},
		{"collector off", func(c *Config) { c.Pipeline.GoGCPercent = -1 }, pipeline.Capabilities{}, 4 << 20, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.edit(&cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := FetchMaxBytes(cfg, tc.caps); got != tc.wantFetch {
				t.Errorf("FetchMaxBytes = %d, want %d", got, tc.wantFetch)
			}
			if got := GoGCPercent(cfg, tc.caps); got != tc.wantGC {
				t.Errorf("GoGCPercent = %d, want %d", got, tc.wantGC)
			}
		})
	}
}

func TestGoGCPercentValidate(t *testing.T) {
	for _, tc := range []struct {
		name, env, want string
	}{
		{"below -1", "SPANPIPE_PIPELINE_GO_GC_PERCENT=-2", "pipeline.go_gc_percent must be -1 (off), 0 (derived from the sink) or a percentage, got -2"},
		{"off without a limit", "SPANPIPE_PIPELINE_GO_GC_PERCENT=-1,SPANPIPE_PIPELINE_GO_MEMORY_LIMIT_BYTES=-1", "the heap would never be collected"},
		{"not a number", "SPANPIPE_PIPELINE_GO_GC_PERCENT=half", `SPANPIPE_PIPELINE_GO_GC_PERCENT: want a whole number, got "half"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load("", strings.Split(tc.env, ","))
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestGoMemoryLimitNoneIsWritable: -1, the documented "no limit", is read from the
// file and the environment although it is not a size; other byte keys refuse it.
func TestGoMemoryLimitNoneIsWritable(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		env        []string
		wantErr    string
	}{
		{"file", "pipeline:\n  go_memory_limit_bytes: -1\n", nil, ""},
		{"environment", "", []string{"SPANPIPE_PIPELINE_GO_MEMORY_LIMIT_BYTES=-1"}, ""},
		{"another byte key", "pipeline:\n  max_batch_bytes: -1\n", nil, "max_batch_bytes"},
		{"below -1", "pipeline:\n  go_memory_limit_bytes: -2\n", nil, "go_memory_limit_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(path, []byte("kafka:\n  brokers: [a:9092]\n"+tc.file), 0o644)
			cfg, err := Load(path, tc.env)
			if err == nil {
				err = cfg.Validate()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load: %v, want an error naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := GoMemoryLimit(cfg, pipeline.Capabilities{InProcess: true}); got != 0 {
				t.Fatalf("GoMemoryLimit = %d, want 0 (none) from -1", got)
			}
		})
	}
}
