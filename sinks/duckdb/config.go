package duckdb

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Config is the operator-tunable configuration of a [Writer].
type Config struct {
	// Path is the database file. It is created, with its tables, when it does not
	// exist. ":memory:" keeps the database in memory: it is lost on [Writer.Close].
	// The path must not contain '?', which would start DuckDB's DSN options.
	// Default "spanpipe.duckdb".
	Path string `yaml:"path"`

	// MemoryLimit caps the memory DuckDB's buffer pool uses for this database, as a
	// size with a unit (for example "512MB", "1GB" or "2GiB"). Data that has not
	// been checkpointed yet, and large queries, spill to a temporary directory next
	// to the file beyond it. Spans are appended without an index, so writing needs
	// little: at DuckDB's own default (80% of the machine's RAM) the pool kept
	// growing with the file and held most of a consumer's 650 MB. The pool fills up
	// to the limit (rows not yet checkpointed, then cached blocks of the file), and
	// the RSS follows it about megabyte for megabyte: the writer alone peaked at
	// 225 / 192 / 166 MB with 128MB / 96MB / 64MB (150k spans). 64MB was enough for
	// writing but not for the explorer's queries over a million spans (served from
	// the same process): one failed with Out of Memory (BenchmarkReader). A
	// checkpoint holds a column's values for 2,048 rows in memory at once: spans and
	// logs whose values are tens of KB need more (2,048 outputs of 60 KB filled 96MB).
	// Before a batch whose last 2,048 rows' values need more, and when a write still
	// runs out of memory after a checkpoint, the writer raises the limit, up to half
	// of the machine's or cgroup's memory, and logs a warning with the new
	// value: set that here to start with it. Empty leaves DuckDB's default. Default
	// "96MB".
	MemoryLimit string `yaml:"memory_limit"`

	// CheckpointThreshold is how much write-ahead log DuckDB accumulates before it
	// checkpoints into the database file on its own, inside the COMMIT of the write
	// that crossed it. The writer checkpoints sooner, whenever a write fills a row group
	// of span_versions (see RowGroupSize): a checkpoint inside a row group compresses
	// the rows already in it again at the next one, so the threshold is the bound, for
	// rows too large to fill a row group below it (logged as a warning), and the most
	// log a crash leaves to replay. Rows written since the last checkpoint are held in
	// memory within MemoryLimit and spill to disk beyond it. With a 16MB threshold,
	// which DuckDB reached every 12,000 1 KB spans or so, commit sizes decided the cost
	// (the writer alone, commits of 3,000 spans: 0.040 ms per span at 16MB against
	// 0.019 at 32MB and 64MB), and larger spans paid most: `spanpipe bench --sink
	// duckdb --payload P` (one sitting, 16MB / checkpoints at row groups and 256MB):
	// 2 KB spans 0.081 / 0.043 ms per span, peak RSS 255 / 196 MB, p99 1.6 / 0.5 s;
	// 4 KB 0.207 / 0.095 ms, p99 4.5 / 1.3 s; 8 KB 0.277 / 0.181 ms, p99 9.3 / 2.3 s.
	// 1 KB spans are unchanged (0.028 / 0.028–0.030 ms). 256MB holds a row group of
	// 16,384 spans of up to about 14 KB. Default "256MB".
	CheckpointThreshold string `yaml:"checkpoint_threshold"`

	// RowGroupSize is the number of rows per row group of the database file, set
	// when the file is opened (DuckDB's ATTACH option ROW_GROUP_SIZE); 0 leaves
	// DuckDB's default, 122,880. The writer checkpoints whenever a row group of
	// span_versions fills, so it holds a row group of spans until then: 16,384 1 KB
	// spans are ~21 MB of write-ahead log, 16,384 8 KB spans ~135 MB. `spanpipe bench
	// --sink duckdb --payload P` (one sitting): with 1 KB spans (200k), 16,384 / 8,192
	// / 4,096 spent 0.030 / 0.032 / 0.037 ms per span, 440 / 465 / 494 B on disk, peak
	// RSS 168 / 158 / 158 MB; with 8 KB spans (50k), 16,384 / 8,192 / 4,096 spent
	// 0.181 / 0.140 / 0.129 ms, peak RSS 260 / 255 / 233 MB, p99 2.3 / 1.1 / 0.6 s.
	// Set 4096 for spans of 4 KB and more; the writer logs a warning, with the size
	// that fits, when a row group holds more than half of MemoryLimit. Before the writer aligned its checkpoints
	// with row groups, smaller groups held less during a checkpoint (16,384 against
	// DuckDB's default 122,880, 32MB threshold: peak RSS 221–233 against 235–257 MB).
	// A file keeps the row groups it has when the size changes. DuckDB takes multiples
	// of 2048 up to 122,880. Ignored for ":memory:". Default 16384.
	RowGroupSize int `yaml:"row_group_size"`

	// BlockSize is the size of the blocks of a database file this creates (DuckDB's
	// ATTACH option BLOCK_SIZE): a power of two from 16384 to 262144; 0 leaves
	// DuckDB's default, 262144. A file keeps the block size it was created with (DuckDB
	// refuses to attach it with another), so this only applies to a new file. Rows not
	// yet checkpointed are held in blocks of this size, one at least per column of
	// every row group being filled, and 64 KiB blocks hold them in less memory: 40k
	// spans in memory took 64 against 85 MB of the buffer pool (writer alone). `spanpipe
	// bench --sink duckdb`, 200k spans, 3 runs each alternated: peak RSS 221–226 against
	// 225–243 MB, 702–744 against 787–814 B per span on disk, consumer CPU 0.080–0.082
	// against 0.060–0.084 ms per span; with updates (2 runs each) it costs CPU: 0.123
	// against 0.110–0.111 ms per span, peak 217–218 against 234–236 MB. DuckDB keeps
	// objects for every segment of the file in memory, and a segment is at most a
	// block (a zstd segment, since: a span's input and output in a file this creates,
	// see zstdMarker, is one per row group; the figures here predate it): writing 2M
	// spans alone, glibc's share of them grew by 34 MB with 64 KiB blocks, 18 MB with
	// 128 or 256 KiB; the bench at 2M spans (16MB checkpoints)
	// peaked at 236 / 244 MB with 131072, its RSS rising 4.6% / 9.0% from the second
	// quarter to the last, against 231 / 233 MB and 13–15% with 65536, 746–757 against
	// 729–732 B per span. Ignored for ":memory:". Default 131072.
	BlockSize int `yaml:"block_size"`

	// Threads is the number of threads DuckDB runs queries with. 0 leaves DuckDB's
	// default, one per CPU core. Writing is one connection's appends and commits, and
	// a second thread only added CPU: the writer alone (150 batches of 1000 1 KB spans,
	// 2 cores, load average 9–15) spent 0.042–0.055 ms per span with 1 thread and
	// 0.057–0.074 ms with 2, at the same rate. Queries of the explorer served by the
	// same process (`consume --ui`) run on one core too: set 0 where reads matter
	// more than the writer's CPU. Default 1.
	Threads int `yaml:"threads"`
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{Path: "spanpipe.duckdb", MemoryLimit: "96MB", CheckpointThreshold: "256MB", RowGroupSize: 16384, BlockSize: 131072, Threads: 1}
}

// memoryLimitRE matches the sizes DuckDB's memory_limit setting accepts.
var memoryLimitRE = regexp.MustCompile(`(?i)^[0-9]+(\.[0-9]+)?\s*(b|bytes|kb|kib|mb|mib|gb|gib|tb|tib)$`)

// Validate reports every problem of the configuration, joined with [errors.Join].
func (c Config) Validate() error {
	var errs []error
	switch {
	case strings.TrimSpace(c.Path) == "":
		errs = append(errs, errors.New("duckdb: path must not be empty"))
	case strings.Contains(c.Path, "?"):
		errs = append(errs, fmt.Errorf("duckdb: path %q must not contain '?'", c.Path))
	}
	if c.MemoryLimit != "" && !memoryLimitRE.MatchString(strings.TrimSpace(c.MemoryLimit)) {
		errs = append(errs, fmt.Errorf("duckdb: memory_limit %q must be a size with a unit, such as 512MB or 2GB", c.MemoryLimit))
	}
	if c.CheckpointThreshold != "" && !memoryLimitRE.MatchString(strings.TrimSpace(c.CheckpointThreshold)) {
		errs = append(errs, fmt.Errorf("duckdb: checkpoint_threshold %q must be a size with a unit, such as 16MB or 256MB", c.CheckpointThreshold))
	}
	if c.RowGroupSize < 0 || c.RowGroupSize%2048 != 0 || c.RowGroupSize > 122880 {
		errs = append(errs, fmt.Errorf("duckdb: row_group_size must be a multiple of 2048 up to 122880 (0 = DuckDB's default), got %d", c.RowGroupSize))
	}
	if b := c.BlockSize; b != 0 && (b < minBlockSize || b > maxBlockSize || b&(b-1) != 0) {
		errs = append(errs, fmt.Errorf("duckdb: block_size must be a power of two from %d to %d (0 = DuckDB's default), got %d", minBlockSize, maxBlockSize, b))
	}
	if c.Threads < 0 {
		errs = append(errs, fmt.Errorf("duckdb: threads must be >= 0 (0 = DuckDB's default), got %d", c.Threads))
	}
	return errors.Join(errs...)
}

// dsn renders the configuration as a duckdb-go DSN for an in-memory database: the
// settings as URL query parameters. [Open] attaches the file to it (see attach).
func (c Config) dsn() string {
	q := url.Values{}
	if c.MemoryLimit != "" {
		q.Set("memory_limit", strings.TrimSpace(c.MemoryLimit))
	}
	if c.CheckpointThreshold != "" {
		q.Set("checkpoint_threshold", strings.TrimSpace(c.CheckpointThreshold))
	}
	if c.Threads > 0 {
		q.Set("threads", strconv.Itoa(c.Threads))
	}
	if c.Path != ":memory:" {
		// An in-memory instance spills to ./.tmp; a file database, next to its file.
		q.Set("temp_directory", c.Path+".tmp")
	}
	if len(q) == 0 {
		return ":memory:"
	}
	return ":memory:?" + q.Encode()
}

// The block sizes DuckDB can create a file with.
const (
	minBlockSize = 16384
	maxBlockSize = 262144
)

// newFileStorageVersion is the storage version of the files this creates: the oldest
// with zstd for strings (see zstdMarker). DuckDB creates v1.0.0 files unless told, for
// the sake of DuckDB releases before 1.2 (February 2025), which cannot open later ones;
// a file keeps the version it was created with.
const newFileStorageVersion = "v1.2.0"

// attach returns the statement that attaches the database file to a connection's
// instance as the catalog [catalogName], or "" for ":memory:". newFile tells whether
// the file does not exist yet: only then does it name the block size and the
// storage version.
func (c Config) attach(newFile bool) string {
	if c.Path == ":memory:" {
		return ""
	}
	var opts []string
	if c.RowGroupSize > 0 {
		opts = append(opts, fmt.Sprintf("ROW_GROUP_SIZE %d", c.RowGroupSize))
	}
	if newFile && c.BlockSize > 0 {
		opts = append(opts, fmt.Sprintf("BLOCK_SIZE %d", c.BlockSize))
	}
	if newFile {
		opts = append(opts, "STORAGE_VERSION '"+newFileStorageVersion+"'")
	}
	with := ""
	if len(opts) > 0 {
		with = " (" + strings.Join(opts, ", ") + ")"
	}
	return fmt.Sprintf("ATTACH IF NOT EXISTS '%s' AS %s%s", strings.ReplaceAll(c.Path, "'", "''"), catalogName, with)
}
