package clickhouse_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/sinks/clickhouse"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := clickhouse.DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate(): %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*clickhouse.Config)
		want []string // substrings of the error, one per problem
	}{
		{"no addr", func(c *clickhouse.Config) { c.Addr = nil }, []string{"addr must list"}},
		{"bad addr", func(c *clickhouse.Config) { c.Addr = []string{"localhost"} }, []string{`addr "localhost" must be host:port`}},
		{"bad database", func(c *clickhouse.Config) { c.Database = "span-pipe" }, []string{`database "span-pipe"`}},
		{"injection in database", func(c *clickhouse.Config) { c.Database = "x; DROP TABLE y" }, []string{"database"}},
		{"bad cluster", func(c *clickhouse.Config) { c.Cluster = "a`b" }, []string{"cluster"}},
		{"bad replica path", func(c *clickhouse.Config) { c.Replicated, c.ReplicaPath = true, "/x/'y" }, []string{"replica_path"}},
		{"replica path ignored when not replicated", func(c *clickhouse.Config) { c.ReplicaPath = "" }, nil},
		{"compression", func(c *clickhouse.Config) { c.Compression = "brotli" }, []string{"compression"}},
		{"ttl", func(c *clickhouse.Config) { c.TTL.Logs = -1 }, []string{"ttl.logs must be >= 0"}},
		{"tls files without tls", func(c *clickhouse.Config) { c.TLS.CAFile = "/ca.pem" }, []string{"need tls.enable"}},
		{"cert without key", func(c *clickhouse.Config) { c.TLS.Enable, c.TLS.CertFile = true, "/c.pem" }, []string{"set together"}},
		{"everything at once", func(c *clickhouse.Config) {
			c.Username = ""
			c.DialTimeout, c.ReadTimeout = 0, -time.Second
			c.MaxRowsPerInsert, c.MaxBytesPerInsert, c.MaxPartitionsPerInsert = 0, 0, 0
		}, []string{"username", "dial_timeout", "read_timeout", "max_rows_per_insert", "max_bytes_per_insert", "max_partitions_per_insert"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := clickhouse.DefaultConfig()
			tt.edit(&cfg)
			err := cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: got %q, want it to mention %q", err, w)
				}
			}
			var joined interface{ Unwrap() []error }
			if errors.As(err, &joined) && len(joined.Unwrap()) != len(tt.want) {
				t.Errorf("Validate: got %d problems, want %d: %v", len(joined.Unwrap()), len(tt.want), err)
			}
		})
	}
}

func TestConfigRedactsPassword(t *testing.T) {
	cfg := clickhouse.DefaultConfig()
	cfg.Password = "hunter2-secret"
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("open", "config", cfg)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("open", "config", cfg)
	for _, s := range []string{buf.String(), fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg),
		fmt.Sprintf("%+v", struct{ C clickhouse.Config }{cfg})} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("password leaked: %s", s)
		}
		if !strings.Contains(s, "[redacted]") {
			t.Errorf("no redaction marker in %s", s)
		}
	}
	if !strings.Contains(buf.String(), `"database":"spanpipe"`) {
		t.Errorf("log lacks the other settings: %s", buf.String())
	}
}

func TestResolveDSN(t *testing.T) {
	tests := []struct {
		name    string
		dsn     string
		check   func(c clickhouse.Config) string // "" when c is as expected
		wantErr string
	}{
		{name: "none", dsn: "", check: func(c clickhouse.Config) string {
			if c.Addr[0] != "127.0.0.1:9000" || c.Database != "spanpipe" {
				return "defaults changed"
			}
			return ""
		}},
		{name: "hosts credentials database", dsn: "clickhouse://writer:s3cret@ch1:9000,ch2:9000/traces", check: func(c clickhouse.Config) string {
			if strings.Join(c.Addr, ",") != "ch1:9000,ch2:9000" || c.Username != "writer" || c.Password != "s3cret" || c.Database != "traces" || c.TLS.Enable {
				return fmt.Sprintf("%+v", c)
			}
			return ""
		}},
		{name: "no path keeps database", dsn: "tcp://ch:9000", check: func(c clickhouse.Config) string {
			if c.Database != "spanpipe" || c.Username != "default" {
				return fmt.Sprintf("database %q username %q", c.Database, c.Username)
			}
			return ""
		}},
		{name: "tls and timeouts", dsn: "clickhouse://ch:9440/db?secure=true&skip_verify=true&tls_server_name=ch.internal&dial_timeout=3s&read_timeout=2m&compress=zstd",
			check: func(c clickhouse.Config) string {
				if !c.TLS.Enable || !c.TLS.InsecureSkipVerify || c.TLS.ServerName != "ch.internal" ||
					c.DialTimeout != 3*time.Second || c.ReadTimeout != 2*time.Minute || c.Compression != "zstd" {
					return fmt.Sprintf("%+v", c)
				}
				return ""
			}},
		{name: "http scheme", dsn: "http://ch:8123", wantErr: "native protocol"},
		{name: "unknown parameter", dsn: "clickhouse://ch:9000?max_execution_time=60", wantErr: `"max_execution_time" is not supported`},
		{name: "bad compression", dsn: "clickhouse://ch:9000?compress=gzip", wantErr: "compress must be"},
		{name: "no host", dsn: "clickhouse:///db", wantErr: "dsn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := clickhouse.DefaultConfig()
			cfg.DSN = tt.dsn
			got, err := cfg.Resolve()
			verr := cfg.Validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || verr == nil {
					t.Fatalf("Resolve(%q): got %v (Validate %v), want an error mentioning %q", tt.dsn, err, verr, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil || verr != nil {
				t.Fatalf("Resolve(%q): %v; Validate: %v", tt.dsn, err, verr)
			}
			if got.DSN != "" {
				t.Errorf("Resolve(%q) kept the DSN", tt.dsn)
			}
			if msg := tt.check(got); msg != "" {
				t.Errorf("Resolve(%q): got %s", tt.dsn, msg)
			}
		})
	}
}

func TestConfigRedactsDSNPassword(t *testing.T) {
	cfg := clickhouse.DefaultConfig()
	cfg.DSN = "clickhouse://writer:hunter2-secret@ch:9000/db?secure=true&password=hunter2-other"
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("open", "config", cfg)
	for _, s := range []string{buf.String(), fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("password leaked: %s", s)
		}
		if !strings.Contains(s, "writer:[redacted]@ch:9000/db") {
			t.Errorf("DSN not shown with the password redacted: %s", s)
		}
	}
}
