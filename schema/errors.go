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

// DecodeError is every error [Decode] returns. Err is the cause: a [*SyntaxError], a
// [*ValidationError], [ErrUnsupportedVersion] or [ErrUnknownCodec] (match them with
// errors.As and errors.Is, through DecodeError). Signal is the signal of the record's
// event type when the type could be read, and "" otherwise: a record dropped for a bad
// field is still known to be a span or a log, and its drop event should say so.
type DecodeError struct {
	Signal Signal
	Err    error
}

func (e *DecodeError) Error() string { return e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// SignalOfError returns the signal of the record a [Decode] error is about, or ""
// when the error is not from Decode or the record's type could not be read.
func SignalOfError(err error) Signal {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Signal
	}
	return ""
}
