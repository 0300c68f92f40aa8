package clickhouse

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/spanpipe/spanpipe/internal/tlsfiles"
)

// PasswordEnv is the environment variable [Open] and [Migrate] read the password
// from when [Config.Password] is empty, so that it need not be written in a file.
const PasswordEnv = "SPANPIPE_CLICKHOUSE_PASSWORD"

// Config is the operator-tunable configuration of a [Writer] and of [Migrate].
// Start from [DefaultConfig]: zero values are not defaults.
//
// The password never appears in logs: Config implements [slog.LogValuer] and
// [fmt.Stringer] and prints "[redacted]" in its place.
type Config struct {
	// DSN, when set, names the server in one URL, as CLICKHOUSE_DSN usually does:
	// clickhouse://user:password@host1:9000,host2:9000/database?secure=true. It
	// replaces Addr and, where it gives them, Username, Password, Database, TLS.Enable
	// (secure), TLS.InsecureSkipVerify (skip_verify), TLS.ServerName
	// (tls_server_name), DialTimeout (dial_timeout), ReadTimeout (read_timeout) and
	// Compression (compress=lz4|zstd|none). Any other query parameter is an error: set
	// it with its own key. Only the native protocol (scheme clickhouse or tcp) is
	// accepted. Like Password, it is redacted in logs. Default "".
	DSN string `yaml:"dsn"`

	// Addr lists the servers' native-protocol endpoints (host:port, port 9000, or
	// 9440 with TLS). The client connects to one of them and fails over to the next.
	// Default ["127.0.0.1:9000"].
	Addr []string `yaml:"addr"`

	// Database holds every table; [Migrate] creates it. It must be a plain
	// identifier ([A-Za-z_][A-Za-z0-9_]*). Default "spanpipe".
	Database string `yaml:"database"`

	// Username is the ClickHouse user. Default "default".
	Username string `yaml:"username"`

	// Password is the user's password. When empty, the value of the environment
	// variable SPANPIPE_CLICKHOUSE_PASSWORD is used (see [PasswordEnv]). Default "".
	Password string `yaml:"password"`

	// TLS configures an encrypted connection. Default: disabled.
	TLS TLSConfig `yaml:"tls"`

	// Compression compresses the native protocol's blocks: "auto", "lz4", "zstd" or
	// "none". "auto" is "none" when every address is a loopback one (localhost,
	// 127.0.0.0/8, ::1) and "lz4" otherwise, as clickhouse-client and ClickHouse's own
	// remote_servers do: on loopback, compressing costs CPU (a fifth of the consumer's)
	// and saves no bandwidth. Default "auto".
	Compression string `yaml:"compression"`

	// DialTimeout bounds establishing a connection. Default 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`

	// ReadTimeout bounds each wait for the server's next packet, including the reply
	// to an INSERT (which with async_insert comes after the server's buffer flush)
	// and to ON CLUSTER DDL, and each INSERT into spanpipe's tables as a whole, from
	// sending it to the server's acknowledgement. Default 60s.
	ReadTimeout time.Duration `yaml:"read_timeout"`

	// Cluster is the name of the cluster (from the server's remote_servers) to create
	// the tables on. Empty means a single node. When set, DDL runs ON CLUSTER, the
	// data lives in <table>_local on every shard, and <table> is a Distributed table
	// over them (spans sharded by trace id) that the writer inserts into
	// synchronously (insert_distributed_sync=1). Default "".
	Cluster string `yaml:"cluster"`

	// Replicated selects the Replicated* MergeTree engines, which need ClickHouse
	// Keeper (or ZooKeeper) and the {shard} and {replica} macros used by the default
	// ReplicaPath and ReplicaName. It is independent of Cluster. Default false.
	Replicated bool `yaml:"replicated"`

	// ReplicaPath is the Keeper path of each replicated table. {shard}, {replica},
	// {database} and {table} are server macros, expanded by ClickHouse. Used only when
	// Replicated is set. Default "/clickhouse/tables/{shard}/{database}/{table}".
	ReplicaPath string `yaml:"replica_path"`

	// ReplicaName is the replica's name in ReplicaPath. Used only when Replicated is
	// set. Default "{replica}".
	ReplicaName string `yaml:"replica_name"`

	// TTL is the retention in days of each signal; 0 keeps data forever. Parts are
	// dropped whole (ttl_only_drop_parts=1) once the whole day is older than the TTL.
	// [Migrate] applies changes to existing tables. Default: 0 for every signal.
	TTL TTLConfig `yaml:"ttl"`

	// AsyncInsert makes the server buffer inserts and write them with the inserts of
	// other clients (async_insert=1), and still acknowledge an insert only once it
	// is written (wait_for_async_insert=1). Useful when many small batches arrive
	// (the realtime strategy, which the sink supports only with this set). The
	// deduplication token then works on Replicated tables only. When false, the
	// writer sends async_insert=0 explicitly, because newer servers enable it by
	// default. Default false.
	AsyncInsert bool `yaml:"async_insert"`

	// MaxRowsPerInsert caps the rows of one INSERT; a larger batch is split.
	// Default 100000.
	MaxRowsPerInsert int `yaml:"max_rows_per_insert"`

	// MaxBytesPerInsert caps the estimated uncompressed size of one INSERT, in bytes;
	// a larger batch is split. A single row larger than this is sent alone.
	// Default 64 MiB.
	MaxBytesPerInsert int64 `yaml:"max_bytes_per_insert"`

	// MaxPartitionsPerInsert caps the partitions (days) one INSERT touches; a batch
	// that spans more days, late or backfilled data for example, is split. It is also
	// sent as the insert's max_partitions_per_insert_block, whose server default is
	// 100. Default 100.
	MaxPartitionsPerInsert int `yaml:"max_partitions_per_insert"`

	// AutoMigrate makes [Open] apply pending migrations. When false, Open fails if a
	// migration is pending, and `spanpipe migrate` ([Migrate]) must run first.
	// Default true, which suits a single dev node. In production, set it to false and
	// run `spanpipe migrate` as a deploy step: schema changes then happen once, when
	// an operator chooses, under a user allowed to run DDL, and the consumers' user
	// needs only INSERT and SELECT; a consumer that meets a schema newer or older than
	// it expects fails at start instead of altering a shared cluster.
	AutoMigrate bool `yaml:"auto_migrate"`

	// Layout selects the tables the sink writes. "spanpipe" is spanpipe's own layout
	// (every snapshot of every span, versions, running spans; read by `spanpipe serve`).
	// "mastra" writes Mastra's base tables (mastra_span_events, mastra_log_events,
	// mastra_metric_events, mastra_score_events, mastra_feedback_events) in Database,
	// as @mastra/clickhouse's ClickhouseStoreVNext does, so that Mastra Studio reads
	// them: ended spans only, insert-only (see the package documentation).
	// Default "spanpipe" (also when empty).
	Layout string `yaml:"layout"`
}

// TLSConfig configures TLS to the server.
type TLSConfig struct {
	// Enable turns TLS on. Default false.
	Enable bool `yaml:"enable"`
	// CAFile is a PEM file of the CAs that sign the server certificate. Empty uses the
	// system roots. Default "".
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key, for servers that
	// require one; set both or neither. Default "".
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked against the server certificate. Empty
	// uses the host of the address. Default "".
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables verification of the server certificate. For tests
	// only. Default false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// TTLConfig is the retention of each signal in days; 0 keeps data forever.
type TTLConfig struct {
	// Spans applies to spans and trace_roots, counted from the span's start.
	Spans int `yaml:"spans"`
	// Logs, Metrics, Scores and Feedback are counted from the event's timestamp.
	Logs     int `yaml:"logs"`
	Metrics  int `yaml:"metrics"`
	Scores   int `yaml:"scores"`
	Feedback int `yaml:"feedback"`
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Addr:                   []string{"127.0.0.1:9000"},
		Database:               "spanpipe",
		Username:               "default",
		Compression:            "auto",
		DialTimeout:            10 * time.Second,
		ReadTimeout:            60 * time.Second,
		ReplicaPath:            "/clickhouse/tables/{shard}/{database}/{table}",
		ReplicaName:            "{replica}",
		MaxRowsPerInsert:       100_000,
		MaxBytesPerInsert:      64 << 20,
		MaxPartitionsPerInsert: 100,
		AutoMigrate:            true,
		Layout:                 LayoutSpanpipe,
	}
}

var (
	identRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	clusterRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
)

// dsnParams are the DSN query parameters [Config.Resolve] maps to keys.
var dsnParams = map[string]bool{
	"secure": true, "skip_verify": true, "tls_server_name": true, "dial_timeout": true,
	"read_timeout": true, "compress": true, "username": true, "password": true, "database": true,
}

// Resolve returns the configuration with [Config.DSN] applied to the other keys and
// cleared; without a DSN it returns c unchanged. [Open], [Migrate] and
// [Config.Validate] resolve the configuration themselves; Resolve is for callers that
// want to show the effective settings.
func (c Config) Resolve() (Config, error) {
	if c.DSN == "" {
		return c, nil
	}
	scheme, rest, ok := strings.Cut(c.DSN, "://")
	if !ok || (scheme != "clickhouse" && scheme != "tcp") {
		return c, errors.New("clickhouse: dsn must start with clickhouse:// or tcp:// (the native protocol)")
	}
	if _, query, ok := strings.Cut(rest, "?"); ok {
		q, err := url.ParseQuery(query)
		if err != nil {
			return c, fmt.Errorf("clickhouse: dsn query: %w", err)
		}
		for k := range q {
			if !dsnParams[k] {
				return c, fmt.Errorf("clickhouse: dsn parameter %q is not supported; set it with its own sink.clickhouse key", k)
			}
		}
		if v, ok := q["compress"]; ok {
			switch v[0] {
			case "lz4", "true", "1":
				c.Compression = "lz4"
			case "zstd":
				c.Compression = "zstd"
			case "none", "false", "0":
				c.Compression = "none"
			case "auto":
				c.Compression = "auto"
			default:
				return c, fmt.Errorf("clickhouse: dsn compress must be auto, lz4, zstd or none, got %q", v[0])
			}
		}
	}
	o, err := ch.ParseDSN(c.DSN) // redacts the password from its errors
	if err != nil {
		return c, fmt.Errorf("clickhouse: dsn: %w", err)
	}
	c.Addr = o.Addr
	if o.Auth.Username != "" {
		c.Username = o.Auth.Username
	}
	if o.Auth.Password != "" {
		c.Password = o.Auth.Password
	}
	if o.Auth.Database != "" {
		c.Database = o.Auth.Database
	}
	if o.TLS != nil {
		c.TLS.Enable = true
		c.TLS.InsecureSkipVerify = c.TLS.InsecureSkipVerify || o.TLS.InsecureSkipVerify
		if o.TLS.ServerName != "" {
			c.TLS.ServerName = o.TLS.ServerName
		}
	}
	if o.DialTimeout != 0 {
		c.DialTimeout = o.DialTimeout
	}
	if o.ReadTimeout != 0 {
		c.ReadTimeout = o.ReadTimeout
	}
	c.DSN = ""
	return c, nil
}

// Validate reports every problem of the configuration, joined with [errors.Join].
// With a [Config.DSN], the configuration it resolves to is checked.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("clickhouse: "+format, a...)) }
	if r, err := c.Resolve(); err != nil {
		errs = append(errs, err)
	} else {
		c = r
	}
	if len(c.Addr) == 0 {
		bad("addr must list at least one host:port")
	}
	for _, a := range c.Addr {
		if i := strings.LastIndexByte(a, ':'); i <= 0 || i == len(a)-1 {
			bad("addr %q must be host:port", a)
		}
	}
	if !identRE.MatchString(c.Database) {
		bad("database %q must be an identifier ([A-Za-z_][A-Za-z0-9_]*)", c.Database)
	}
	if c.Username == "" {
		bad("username must not be empty")
	}
	if _, ok := compressionMethods[c.Compression]; !ok && c.Compression != "auto" {
		bad("compression must be auto, lz4, zstd or none, got %q", c.Compression)
	}
	if c.DialTimeout <= 0 {
		bad("dial_timeout must be > 0, got %s", c.DialTimeout)
	}
	if c.ReadTimeout <= 0 {
		bad("read_timeout must be > 0, got %s", c.ReadTimeout)
	}
	if c.Cluster != "" && !clusterRE.MatchString(c.Cluster) {
		bad("cluster %q must match [A-Za-z0-9_][A-Za-z0-9_.-]*", c.Cluster)
	}
	if c.Replicated {
		if c.ReplicaPath == "" || strings.ContainsAny(c.ReplicaPath, `'\`) {
			bad("replica_path %q must be non-empty and contain no quote or backslash", c.ReplicaPath)
		}
		if c.ReplicaName == "" || strings.ContainsAny(c.ReplicaName, `'\`) {
			bad("replica_name %q must be non-empty and contain no quote or backslash", c.ReplicaName)
		}
	}
	for _, t := range []struct {
		key  string
		days int
	}{{"spans", c.TTL.Spans}, {"logs", c.TTL.Logs}, {"metrics", c.TTL.Metrics}, {"scores", c.TTL.Scores}, {"feedback", c.TTL.Feedback}} {
		if t.days < 0 {
			bad("ttl.%s must be >= 0 days (0 = keep forever), got %d", t.key, t.days)
		}
	}
	if c.MaxRowsPerInsert <= 0 {
		bad("max_rows_per_insert must be > 0, got %d", c.MaxRowsPerInsert)
	}
	if c.MaxBytesPerInsert <= 0 {
		bad("max_bytes_per_insert must be > 0, got %d", c.MaxBytesPerInsert)
	}
	if c.MaxPartitionsPerInsert <= 0 {
		bad("max_partitions_per_insert must be > 0, got %d", c.MaxPartitionsPerInsert)
	}
	if c.Layout != "" && c.Layout != LayoutSpanpipe && c.Layout != LayoutMastra {
		bad("layout must be %s or %s, got %q", LayoutSpanpipe, LayoutMastra, c.Layout)
	} else if c.Layout == LayoutMastra && (c.Cluster != "" || c.Replicated || c.TTL != (TTLConfig{})) {
		bad("layout %s takes Mastra's tables as @mastra/clickhouse created them: cluster, replicated and ttl must be unset", LayoutMastra)
	}
	t := c.TLS
	if !t.Enable && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify) {
		bad("tls.ca_file, tls.cert_file, tls.key_file and tls.insecure_skip_verify need tls.enable: true")
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad("tls.cert_file and tls.key_file must be set together")
	}
	return errors.Join(errs...)
}

var compressionMethods = map[string]ch.CompressionMethod{
	"lz4":  ch.CompressionLZ4,
	"zstd": ch.CompressionZSTD,
	"none": ch.CompressionNone,
}

// compression returns the method [Config.Compression] stands for: "auto" resolved
// against the addresses.
func (c Config) compression() string {
	if c.Compression != "auto" {
		return c.Compression
	}
	for _, a := range c.Addr {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return "lz4"
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return "lz4"
		}
	}
	return "none"
}

// password returns the configured password, or the one in the environment.
func (c Config) password() string {
	if c.Password != "" {
		return c.Password
	}
	return os.Getenv(PasswordEnv)
}

// tlsConfig builds the TLS configuration, reading the files it names; nil when TLS
// is disabled.
func (c Config) tlsConfig() (*tls.Config, error) {
	t := c.TLS
	if !t.Enable {
		return nil, nil
	}
	cfg, err := tlsfiles.Files{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
		ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}.Config()
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	return cfg, nil
}

// options builds the clickhouse-go options of the configuration.
func (c Config) options() (*ch.Options, error) {
	tlsCfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	o := &ch.Options{
		Protocol: ch.Native,
		Addr:     c.Addr,
		Auth: ch.Auth{
			Database: c.Database,
			Username: c.Username,
			Password: c.password(),
		},
		TLS:         tlsCfg,
		Compression: &ch.Compression{Method: compressionMethods[c.compression()]},
		DialTimeout: c.DialTimeout,
		ReadTimeout: c.ReadTimeout,
		// Fail over in the listed order; a dead first host costs one dial timeout.
		ConnOpenStrategy: ch.ConnOpenInOrder,
	}
	o.ClientInfo.Products = append(o.ClientInfo.Products, struct{ Name, Version string }{Name: "spanpipe", Version: "1"})
	return o, nil
}

const redacted = "[redacted]"

// LogValue implements [slog.LogValuer]: every setting, with the password redacted.
func (c Config) LogValue() slog.Value {
	pw := ""
	if c.Password != "" {
		pw = redacted
	}
	return slog.GroupValue(
		slog.String("dsn", redactDSN(c.DSN)),
		slog.Any("addr", c.Addr),
		slog.String("database", c.Database),
		slog.String("username", c.Username),
		slog.String("password", pw),
		slog.Bool("tls", c.TLS.Enable),
		slog.String("compression", c.compression()),
		slog.String("cluster", c.Cluster),
		slog.Bool("replicated", c.Replicated),
		slog.Bool("async_insert", c.AsyncInsert),
		slog.Any("ttl_days", c.TTL),
		slog.String("layout", c.Layout),
	)
}

// String implements [fmt.Stringer] with the password redacted, so that printing the
// configuration with %v or %+v does not leak it.
func (c Config) String() string {
	if c.Password != "" {
		c.Password = redacted
	}
	c.DSN = redactDSN(c.DSN)
	type plain Config // no methods: formats field by field
	return fmt.Sprintf("%+v", plain(c))
}

// GoString implements [fmt.GoStringer] with the password redacted (for %#v).
func (c Config) GoString() string { return "clickhouse.Config" + c.String() }

// redactDSN hides the password of a DSN, in its user info and in a password
// parameter. Anything it cannot parse is hidden whole.
func redactDSN(dsn string) string {
	if dsn == "" {
		return ""
	}
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return redacted
	}
	base, query, hasQuery := strings.Cut(rest, "?")
	if at := strings.LastIndexByte(base, '@'); at >= 0 {
		if i := strings.IndexByte(base[:at], ':'); i >= 0 {
			base = base[:i+1] + redacted + base[at:]
		}
	}
	if !hasQuery {
		return scheme + "://" + base
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return scheme + "://" + base + "?" + redacted
	}
	if q.Has("password") {
		q.Set("password", redacted)
	}
	return scheme + "://" + base + "?" + q.Encode()
}
