package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadLayersFileThenEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("kafka:\n  brokers: [file:9092]\n  group: from-file\npipeline:\n  max_batch_wait: 2s\n"), 0o644)
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
		{"SPANPIPE_KAFKA_BROKER=a:1", "unknown setting"},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		err := ApplyEnv(&cfg, []string{tt.env})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", tt.env, err, tt.want)
		}
	}
}
