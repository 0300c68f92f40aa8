package producer

import (
	"errors"
	"fmt"
	"time"

	"github.com/spanpipe/spanpipe/schema"
)

// Buffer-full policies.
const (
	// OnFullDrop drops the event at once when the buffer is full (counted, reported
	// through OnDrop and the metrics, and later published as a drop event). Emit never
	// blocks the application. The default.
	OnFullDrop = "drop"
	// OnFullBlock blocks Emit up to BlockTimeout for room, then drops.
	OnFullBlock = "block"
)

// Config configures a [Producer].
type Config struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string `yaml:"brokers"`
	// Topic receives every signal. Default "spanpipe.spans".
	Topic string `yaml:"topic"`
	// DropTopic receives the producer's drop events. Default "spanpipe.drops".
	DropTopic string `yaml:"drop_topic"`
	// ServiceName is written into every span, log, metric, score and feedback that does
	// not name one. Required.
	ServiceName string `yaml:"service_name"`
	// Environment is written where an event has none ("production", "staging"...).
	Environment string `yaml:"environment"`
	// ClientID names the producer in broker logs. Default "spanpipe-producer".
	ClientID string `yaml:"client_id"`
	// MaxBufferedRecords bounds the records waiting for Kafka. Default 10000.
	MaxBufferedRecords int `yaml:"max_buffered_records"`
	// MaxBufferedBytes bounds the bytes waiting for Kafka. Default 64 MiB.
	MaxBufferedBytes int `yaml:"max_buffered_bytes"`
	// OnBufferFull is "drop" (default) or "block".
	OnBufferFull string `yaml:"on_buffer_full"`
	// BlockTimeout is how long Emit may wait for room under the block policy.
	// Default 1s.
	BlockTimeout time.Duration `yaml:"block_timeout"`
	// Linger is how long a partition's batch waits for more records. Default 5ms.
	Linger time.Duration `yaml:"linger"`
	// Compression is zstd (default), lz4, snappy, gzip or none.
	Compression string `yaml:"compression"`
	// Codec is the wire form of the events: "json" (default, [schema.CodecJSON]),
	// readable by every spanpipe consumer and by any tool, or "spanpipe-bin/v1"
	// ([schema.CodecBinary]), the same events in a compact binary form that a consumer
	// decodes several times faster. Every record names its codec in its
	// spanpipe-codec header, so a topic may mix both; a consumer older than the binary
	// codec dead-letters binary records (unknown codec), so switch producers only once
	// every consumer is upgraded.
	Codec string `yaml:"codec"`
	// MaxRecordBytes is the largest encoded event sent; larger ones are dropped with
	// reason too-large. Keep it 1 KiB below the topic's max.message.bytes (batches are
	// built up to it plus 1 KiB of framing). Default 1000000, for the broker default 1048588.
	MaxRecordBytes int `yaml:"max_record_bytes"`
	// DeliveryTimeout bounds how long a record may wait for Kafka (including while the
	// cluster is down) before it is dropped with reason producer-send-failed.
	// Default 2m.
	DeliveryTimeout time.Duration `yaml:"delivery_timeout"`
	// DropReportInterval is how often counted drops are published as drop events.
	// Default 5s.
	DropReportInterval time.Duration `yaml:"drop_report_interval"`
	// Redact configures the sensitive-data filter, on by default.
	Redact RedactConfig `yaml:"redact"`
}

// DefaultConfig returns the defaults. Brokers and ServiceName must still be set.
func DefaultConfig() Config {
	return Config{
		Topic:              "spanpipe.spans",
		DropTopic:          "spanpipe.drops",
		ClientID:           "spanpipe-producer",
		MaxBufferedRecords: 10000,
		MaxBufferedBytes:   64 << 20,
		OnBufferFull:       OnFullDrop,
		BlockTimeout:       time.Second,
		Linger:             5 * time.Millisecond,
		Compression:        "zstd",
		Codec:              schema.CodecJSON,
		MaxRecordBytes:     1_000_000,
		DeliveryTimeout:    2 * time.Minute,
		DropReportInterval: 5 * time.Second,
		Redact:             DefaultRedactConfig(),
	}
}

// Validate reports every problem, each naming its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(c.Brokers) == 0 {
		bad("producer.brokers must list at least one broker")
	}
	if c.Topic == "" {
		bad("producer.topic must not be empty")
	}
	if c.DropTopic == "" {
		bad("producer.drop_topic must not be empty")
	}
	if c.ServiceName == "" {
		bad("producer.service_name must not be empty (it is written into every span)")
	}
	if c.MaxBufferedRecords <= 0 {
		bad("producer.max_buffered_records must be > 0, got %d", c.MaxBufferedRecords)
	}
	if c.MaxBufferedBytes <= 0 {
		bad("producer.max_buffered_bytes must be > 0, got %d", c.MaxBufferedBytes)
	}
	switch c.OnBufferFull {
	case OnFullDrop, OnFullBlock:
	default:
		bad("producer.on_buffer_full must be %q or %q, got %q", OnFullDrop, OnFullBlock, c.OnBufferFull)
	}
	if c.OnBufferFull == OnFullBlock && c.BlockTimeout <= 0 {
		bad("producer.block_timeout must be > 0 with on_buffer_full=block, got %s", c.BlockTimeout)
	}
	if c.Linger < 0 {
		bad("producer.linger must be >= 0, got %s", c.Linger)
	}
	if _, err := compression(c.Compression); err != nil {
		bad("producer.compression: %v", err)
	}
	switch c.Codec {
	case "", schema.CodecJSON, schema.CodecBinary:
	default:
		bad("producer.codec must be %q or %q, got %q", schema.CodecJSON, schema.CodecBinary, c.Codec)
	}
	if c.MaxRecordBytes <= 0 {
		bad("producer.max_record_bytes must be > 0, got %d", c.MaxRecordBytes)
	}
	if c.DeliveryTimeout <= 0 {
		bad("producer.delivery_timeout must be > 0, got %s", c.DeliveryTimeout)
	}
	if c.DropReportInterval <= 0 {
		bad("producer.drop_report_interval must be > 0, got %s", c.DropReportInterval)
	}
	if err := c.Redact.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
