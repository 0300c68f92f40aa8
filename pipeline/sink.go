package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/spanpipe/spanpipe/schema"
)

// Strategy decides which span snapshots are written and how.
type Strategy string

// Strategies. See the README's strategy table.
const (
	// Realtime writes every event as it arrives (a batch of one). For debugging.
	Realtime Strategy = "realtime"
	// BatchWithUpdates writes, per batch, the newest snapshot of every span seen,
	// running spans included; the store replaces a span's row by higher version.
	BatchWithUpdates Strategy = "batch-with-updates"
	// InsertOnly writes only final snapshots (ended spans and event spans).
	InsertOnly Strategy = "insert-only"
	// Auto uses the sink's preferred strategy.
	Auto Strategy = "auto"
)

// ParseStrategy parses a strategy name; "" is [Auto].
func ParseStrategy(s string) (Strategy, error) {
	switch st := Strategy(s); st {
	case "":
		return Auto, nil
	case Realtime, BatchWithUpdates, InsertOnly, Auto:
		return st, nil
	}
	return "", fmt.Errorf("pipeline: unknown strategy %q (want realtime, batch-with-updates, insert-only or auto)", s)
}

// Capabilities is what a sink declares about itself.
type Capabilities struct {
	// Preferred is the strategy [Auto] resolves to, and the fallback for an explicit
	// strategy the sink does not support.
	Preferred Strategy
	// Supported lists the strategies the sink can store correctly.
	Supported []Strategy
	// Signals lists what the sink stores; events of other signals are dropped with
	// reason unsupported-storage.
	Signals []schema.Signal
	// InProcess says the sink keeps its data in this process's memory (an embedded
	// database), so that a smaller buffer is derived for it (see
	// Config.MaxBufferSize).
	InProcess bool
}

// Supports reports whether the sink declares strategy s.
func (c Capabilities) Supports(s Strategy) bool { return slices.Contains(c.Supported, s) }

// Stores reports whether the sink declares signal s.
func (c Capabilities) Stores(s schema.Signal) bool { return slices.Contains(c.Signals, s) }

// Sink stores batches. Write must be idempotent: the same span delivered again, or an
// older snapshot of it, must leave the stored row equal to the newest snapshot; other
// signals must be idempotent on their ids. Write is called from one goroutine at a time.
type Sink interface {
	// Name identifies the sink in metrics, logs and drop events ("duckdb").
	Name() string
	Capabilities() Capabilities
	// Write stores the batch or returns an error. An error wrapped by [Permanent] is
	// not retried: the batch is split down to the records the sink rejects, and those are
	// dead-lettered. An error wrapped by [Unavailable] means the store cannot be reached
	// at all (connection refused, shutting down, timeouts): the writer waits with
	// backpressure, however long, and never dead-letters for it. Any other error is
	// retried MaxRetries times, then handled by the on_retry_exhausted policy.
	Write(ctx context.Context, b *Batch) error
}

// Batch is what a sink writes in one call. Slices are never shared with other batches.
type Batch struct {
	// Strategy is the resolved strategy the batch was built with.
	Strategy Strategy
	// Spans holds at most one snapshot per (trace id, span id): the newest version seen.
	Spans    []*schema.Span
	Logs     []*schema.Log
	Metrics  []*schema.Metric
	Scores   []*schema.Score
	Feedback []*schema.Feedback
	// Sources are the Kafka offset ranges the batch was built from, one per partition.
	// A sink may derive an idempotency token from them.
	Sources []SourceRange
}

// Len is the number of rows in the batch.
func (b *Batch) Len() int {
	return len(b.Spans) + len(b.Logs) + len(b.Metrics) + len(b.Scores) + len(b.Feedback)
}

// SourceRange is the offsets [First, Last] of one partition that fed a batch.
type SourceRange struct {
	Topic       string
	Partition   int32
	First, Last int64
}

// ErrPermanent matches errors that retrying cannot fix (see [Permanent]).
var ErrPermanent = errors.New("permanent")

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// Permanent marks err as not retryable: a schema mismatch, a type error, a missing
// table. The batch goes to the drop topic without waiting out the retry schedule.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// ErrUnavailable matches errors that say the store itself is down or unreachable (see
// [Unavailable]), as opposed to rejecting this batch.
var ErrUnavailable = errors.New("store unavailable")

type unavailableError struct{ err error }

func (e unavailableError) Error() string   { return e.err.Error() }
func (e unavailableError) Unwrap() []error { return []error{e.err, ErrUnavailable} }

// Unavailable marks err as "the store is not there": connection refused, server
// shutting down, a timeout. Kafka is the buffer, so the writer keeps retrying with
// capped backoff (lag grows, fetching pauses, an alert fires on the stall) instead of
// dead-lettering a batch that the store never looked at.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return unavailableError{err}
}
