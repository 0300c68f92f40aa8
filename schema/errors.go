package schema

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidEvent matches every validation failure (see [ValidationError]).
	ErrInvalidEvent = errors.New("schema: invalid event")
	// ErrUnsupportedVersion is returned for an envelope newer than this build reads.
	ErrUnsupportedVersion = errors.New("schema: unsupported schema version")
	// ErrUnknownCodec is returned for a codec header this build does not know.
	ErrUnknownCodec = errors.New("schema: unknown codec")
)

// ValidationError names the field of an event that is missing or malformed.
type ValidationError struct {
	Field  string // JSON path of the field, e.g. "exportedSpan.traceId"
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("schema: invalid event: %s: %s", e.Field, e.Reason)
}

// Is makes every ValidationError match [ErrInvalidEvent].
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidEvent }

// SyntaxError wraps a payload that is not well-formed for its codec.
type SyntaxError struct {
	Codec string
	Err   error
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("schema: decode %s: %v", e.Codec, e.Err) }
func (e *SyntaxError) Unwrap() error { return e.Err }
