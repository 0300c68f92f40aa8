package schema

import (
	"fmt"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// HeaderCodec is the Kafka record header that names the codec of the record's value.
// A record without it is JSON.
const HeaderCodec = "spanpipe-codec"

// CodecJSON is the name of the JSON codec, the default.
const CodecJSON = "json"

// Decode decodes and validates one record value written with the named codec ("" means
// JSON). On success the event is normalised: a missing schema version reads as
// [Version], a missing span version is derived from the event type, and context ids
// found as string values in a span's metadata are promoted to their fields.
//
// The payload fields of the event (input, output, attributes, metadata...) are
// subslices of data, not copies: do not modify data while the event is in use.
func Decode(codec string, data []byte) (*Event, error) {
	switch codec {
	case "", CodecJSON:
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownCodec, codec)
	}
	ev := new(Event)
	if err := json.Unmarshal(data, ev, decodeOpts); err != nil {
		return nil, &SyntaxError{Codec: CodecJSON, Err: err}
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	ev.normalize()
	return ev, nil
}

// Encode appends the JSON encoding of ev to dst. It does not validate.
func Encode(dst []byte, ev *Event) ([]byte, error) {
	if ev.SchemaVersion == 0 {
		// Write the version explicitly so that future readers never have to guess.
		c := *ev
		c.SchemaVersion = Version
		ev = &c
	}
	b, err := json.Marshal(ev, encodeOpts)
	if err != nil {
		return dst, fmt.Errorf("schema: encode %s event: %w", ev.Type, err)
	}
	return append(dst, b...), nil
}

var (
	// Mastra's field names are camelCase and matched exactly; accepting case variants
	// would cost time on every field for no producer we know of.
	decodeOpts = json.JoinOptions(
		json.MatchCaseInsensitiveNames(false),
		jsontext.AllowDuplicateNames(false),
		json.WithUnmarshalers(json.UnmarshalFromFunc(aliasRawValue)),
	)
	encodeOpts = json.JoinOptions(json.Deterministic(true))
)

// aliasRawValue keeps a payload (input, output, attributes...) as a subslice of the
// record instead of a copy: payloads are most of a span's bytes, and copying them was
// the largest cost of decoding. Unmarshal from a byte slice reads values straight out
// of that slice, which stays unchanged for the whole call, so the value returned by
// ReadValue is part of data (TestDecodeAliasesInput guards that). The decoded event
// therefore refers to the record's bytes, which the pipeline never reuses.
func aliasRawValue(dec *jsontext.Decoder, v *jsontext.Value) error {
	raw, err := dec.ReadValue()
	if err != nil {
		return err
	}
	*v = raw[:len(raw):len(raw)]
	return nil
}

func (ev *Event) normalize() {
	if ev.SchemaVersion == 0 {
		ev.SchemaVersion = Version
	}
	s := ev.Span
	if s == nil {
		return
	}
	s.Event = ev.Type
	if s.Version == 0 {
		switch ev.Type {
		case SpanStarted:
			s.Version = 1
		case SpanUpdated:
			s.Version = 2
		case SpanEnded:
			s.Version = 3
		}
	}
	if len(s.Metadata) > 0 && s.Metadata.Kind() == '{' {
		promote(&s.Correlation, s.Metadata)
	}
}

// promotedIDs are the context ids Mastra reads from string values in span metadata.
type promotedIDs struct {
	UserID          jsontext.Value `json:"userId"`
	OrganizationID  jsontext.Value `json:"organizationId"`
	ResourceID      jsontext.Value `json:"resourceId"`
	RunID           jsontext.Value `json:"runId"`
	SessionID       jsontext.Value `json:"sessionId"`
	ThreadID        jsontext.Value `json:"threadId"`
	RequestID       jsontext.Value `json:"requestId"`
	Environment     jsontext.Value `json:"environment"`
	Source          jsontext.Value `json:"source"`
	ServiceName     jsontext.Value `json:"serviceName"`
	ExperimentID    jsontext.Value `json:"experimentId"`
	EntityVersionID jsontext.Value `json:"entityVersionId"`
}

// promote fills empty context fields from metadata. A field already set wins: our own
// producer sets them explicitly, and the explicit value is the one the app meant.
func promote(c *Correlation, metadata jsontext.Value) {
	var p promotedIDs
	if json.Unmarshal(metadata, &p) != nil {
		return
	}
	set := func(dst *string, v jsontext.Value) {
		if *dst != "" || len(v) == 0 || v.Kind() != '"' {
			return
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			*dst = s
		}
	}
	set(&c.UserID, p.UserID)
	set(&c.OrganizationID, p.OrganizationID)
	set(&c.ResourceID, p.ResourceID)
	set(&c.RunID, p.RunID)
	set(&c.SessionID, p.SessionID)
	set(&c.ThreadID, p.ThreadID)
	set(&c.RequestID, p.RequestID)
	set(&c.Environment, p.Environment)
	set(&c.Source, p.Source)
	set(&c.ServiceName, p.ServiceName)
	set(&c.ExperimentID, p.ExperimentID)
	set(&c.EntityVersionID, p.EntityVersionID)
}
