package pipeline

import (
	"errors"
	"fmt"
	"time"
)

// Retry-exhaustion policies.
const (
	// OnExhaustedDeadLetter sends the batch to the drop topic after MaxRetries retries
	// and moves on (the default).
	OnExhaustedDeadLetter = "dead-letter"
	// OnExhaustedBlock retries forever with capped backoff: lag instead of dead letters.
	OnExhaustedBlock = "block"
)

// Config tunes batching, retries and limits. Zero values are not defaults: start from
// [DefaultConfig].
type Config struct {
	// Strategy is realtime, batch-with-updates, insert-only or auto. Default auto.
	Strategy Strategy `yaml:"strategy"`
	// MaxBatchSize flushes once this many records are buffered. Default 1000.
	MaxBatchSize int `yaml:"max_batch_size"`
	// MaxBatchBytes flushes once the buffered record values reach this many bytes,
	// because LLM spans can be 100 KB and more. Default 16 MiB.
	MaxBatchBytes int64 `yaml:"max_batch_bytes"`
	// MaxBatchWait flushes this long after the first record entered an empty buffer.
	// Default 5s.
	MaxBatchWait time.Duration `yaml:"max_batch_wait"`
	// MaxBufferSize bounds the records held in memory, in the open buffer and in
	// batches waiting for the sink together; a poll takes no more than the room left.
	// At the limit the consumer flushes and pauses fetching: Kafka holds the rest. 0
	// (the default) derives it from the sink: 4 × max_batch_size for a sink that
	// stores in this process (DuckDB), whose memory adds up with the buffer's in one
	// RSS, and 10 × max_batch_size otherwise, because a write takes every batch
	// queued and a larger buffer makes larger inserts under a backlog. Measured with
	// `spanpipe bench` (200k 1 KB spans, 2 runs each): DuckDB with 4000 instead of
	// 10000 held 73 instead of 93–98 MB on the Go side at its RSS peak (peak RSS 274
	// against 305 MB) for less drain (81–83% of its append ceiling against 94–97%;
	// with updates 55–76% against 80%: writes merge fewer batches), p99 the same,
	// while ClickHouse with 4000 drained 8.6–8.8k instead of 10.2–14.3k spans/s and
	// missed its p99 (6.2–7.1 s). Since then DuckDB's writes got cheaper and its
	// checkpoints more frequent, and 10000 no longer pays for DuckDB: on 2026-12-02
	// (200k 1 KB spans) it drained 92% / 75% of the ceiling at 0.028 / 0.034 ms per
	// span, peak RSS 246 / 253 MB, against 4000's 90%, 0.028 ms and 170 MB. Merged
	// writes that large cross a cliff: past about a third of
	// sink.duckdb.checkpoint_threshold in span bytes, a commit costs DuckDB twice the
	// CPU per span (README, Performance, "Larger spans").
	MaxBufferSize int `yaml:"max_buffer_size"`
	// MaxBufferBytes bounds the record bytes held the same way: with 100 KB LLM spans,
	// MaxBufferSize alone would allow a gigabyte. Default 64 MiB.
	MaxBufferBytes int64 `yaml:"max_buffer_bytes"`
	// GoMemoryLimitBytes is the Go runtime's soft memory limit for the consume
	// process (runtime/debug.SetMemoryLimit; the GOMEMLIMIT environment variable, when
	// set, wins). The garbage collector works harder near it instead of letting the
	// heap grow to twice what is live (GOGC's default): at 200k 1 KB spans the Go side
	// held 186 MB at peak for a live heap of 88 MB. It bounds the Go heap only, not an
	// embedded DuckDB's memory. 0 derives it from what the consumer may hold:
	// max_buffer_bytes + 4 × kafka.fetch_max_bytes (as derived) + 32 MiB (with the
	// defaults 104 MiB for DuckDB, 112 MiB otherwise), plus max_bytes_per_insert with
	// the ClickHouse sink; -1 sets none. A
	// set value must be at least max_buffer_bytes, or a full buffer would keep the
	// collector running. Default 0.
	GoMemoryLimitBytes int64 `yaml:"go_memory_limit_bytes"`
	// GoGCPercent is the Go garbage collector's target (runtime/debug.SetGCPercent; the
	// GOGC environment variable, when set, wins): how far the heap may grow past what
	// is live before a collection. 0 derives it from the sink: 50 for one that keeps
	// its data in this process (an embedded DuckDB, whose memory adds up with the Go
	// heap in one RSS), Go's 100 otherwise. At `spanpipe bench --sink duckdb` (200k
	// 1 KB spans) 50 took the Go side at the RSS peak from 52–75 to 41–49 MB at the
	// same consumer CPU per span. -1 turns the target off (the collector then runs
	// only near go_memory_limit_bytes). Default 0.
	GoGCPercent int `yaml:"go_gc_percent"`
	// MaxRecordBytes is the largest record value accepted; larger ones are dropped
	// with reason too-large (their payload goes to the drop topic). Default 4 MiB.
	MaxRecordBytes int `yaml:"max_record_bytes"`
	// MaxRetries is how many times a failed write is retried. Default 4.
	MaxRetries int `yaml:"max_retries"`
	// RetryDelay is the first backoff; each retry doubles it (500ms, 1s, 2s, 4s).
	RetryDelay time.Duration `yaml:"retry_delay"`
	// MaxRetryDelay caps the backoff under the block policy. Default 30s.
	MaxRetryDelay time.Duration `yaml:"max_retry_delay"`
	// OnRetryExhausted is dead-letter (default) or block.
	OnRetryExhausted string `yaml:"on_retry_exhausted"`
}

// DefaultConfig returns Mastra's defaults plus the byte limits Kafka needs.
func DefaultConfig() Config {
	return Config{
		Strategy:         Auto,
		MaxBatchSize:     1000,
		MaxBatchBytes:    16 << 20,
		MaxBatchWait:     5 * time.Second,
		MaxBufferBytes:   64 << 20,
		MaxRecordBytes:   4 << 20,
		MaxRetries:       4,
		RetryDelay:       500 * time.Millisecond,
		MaxRetryDelay:    30 * time.Second,
		OnRetryExhausted: OnExhaustedDeadLetter,
	}
}

// bufferSize is MaxBufferSize, or when it is 0 the size derived for a sink of caps.
func (c Config) bufferSize(caps Capabilities) int {
	switch {
	case c.MaxBufferSize > 0:
		return c.MaxBufferSize
	case caps.InProcess:
		return 4 * c.MaxBatchSize
	default:
		return 10 * c.MaxBatchSize
	}
}

// Validate reports every problem, each naming its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, err := ParseStrategy(string(c.Strategy)); err != nil {
		bad("pipeline.strategy: %w", err)
	}
	if c.MaxBatchSize <= 0 {
		bad("pipeline.max_batch_size must be > 0, got %d", c.MaxBatchSize)
	}
	if c.MaxBatchBytes <= 0 {
		bad("pipeline.max_batch_bytes must be > 0, got %d", c.MaxBatchBytes)
	}
	if c.MaxBatchWait <= 0 {
		bad("pipeline.max_batch_wait must be > 0, got %s", c.MaxBatchWait)
	}
	switch {
	case c.MaxBufferSize < 0:
		bad("pipeline.max_buffer_size must be 0 (derived from the sink) or >= pipeline.max_batch_size, got %d", c.MaxBufferSize)
	case c.MaxBufferSize > 0 && c.MaxBufferSize < c.MaxBatchSize:
		bad("pipeline.max_buffer_size (%d) must be >= pipeline.max_batch_size (%d)", c.MaxBufferSize, c.MaxBatchSize)
	}
	if c.MaxBufferBytes < c.MaxBatchBytes {
		bad("pipeline.max_buffer_bytes (%d) must be >= pipeline.max_batch_bytes (%d)", c.MaxBufferBytes, c.MaxBatchBytes)
	}
	switch {
	case c.GoMemoryLimitBytes < -1:
		bad("pipeline.go_memory_limit_bytes must be -1 (none), 0 (derived) or a size, got %d", c.GoMemoryLimitBytes)
	case c.GoMemoryLimitBytes > 0 && c.GoMemoryLimitBytes < c.MaxBufferBytes:
		bad("pipeline.go_memory_limit_bytes (%d) must be >= pipeline.max_buffer_bytes (%d): a full buffer would keep the garbage collector running",
			c.GoMemoryLimitBytes, c.MaxBufferBytes)
	}
	switch {
	case c.GoGCPercent < -1:
		bad("pipeline.go_gc_percent must be -1 (off), 0 (derived from the sink) or a percentage, got %d", c.GoGCPercent)
	case c.GoGCPercent == -1 && c.GoMemoryLimitBytes == -1:
		bad("pipeline.go_gc_percent -1 (off) needs a Go memory limit, but pipeline.go_memory_limit_bytes is -1 (none): the heap would never be collected")
	}
	if c.MaxRecordBytes <= 0 {
		bad("pipeline.max_record_bytes must be > 0, got %d", c.MaxRecordBytes)
	}
	if c.MaxRetries < 0 {
		bad("pipeline.max_retries must be >= 0, got %d", c.MaxRetries)
	}
	if c.RetryDelay <= 0 {
		bad("pipeline.retry_delay must be > 0, got %s", c.RetryDelay)
	}
	if c.MaxRetryDelay < c.RetryDelay {
		bad("pipeline.max_retry_delay (%s) must be >= pipeline.retry_delay (%s)", c.MaxRetryDelay, c.RetryDelay)
	}
	switch c.OnRetryExhausted {
	case OnExhaustedDeadLetter, OnExhaustedBlock:
	default:
		bad("pipeline.on_retry_exhausted must be %q or %q, got %q", OnExhaustedDeadLetter, OnExhaustedBlock, c.OnRetryExhausted)
	}
	return errors.Join(errs...)
}
