package schema

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

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
// [Version], a missing span version is derived from the event type, hex ids are lower
// case, Mastra's deprecated field names fill the current ones, and context ids found
// as string values in a span's metadata are promoted to their fields.
//
// Lone UTF-16 surrogate escapes are replaced with U+FFFD and listed in
// [Event.Repairs] (see [RepairLoneSurrogate]). Every error is a [*DecodeError].
//
// The payload fields of the event (input, output, attributes, metadata...) are
// subslices of data (of a repaired copy of it, after a repair), not copies: do not
// modify data while the event is in use.
func Decode(codec string, data []byte) (*Event, error) {
	switch codec {
	case "", CodecJSON:
	case CodecBinary:
		return decodeBinaryEvent(data)
	default:
		return nil, &DecodeError{Err: fmt.Errorf("%w: %q", ErrUnknownCodec, codec)}
	}
	// Three decoders, fastest first, each giving up on what it cannot prove it
	// decodes as the last, the reference, does (see decodeScan and decodeFast).
	ev, err := decodeScan(data)
	if err != nil {
		ev, err = decodeFast(data)
	}
	promoted := err == nil // the scan and fast paths promote as they read the metadata
	if err != nil {
		ev, err = decodeReflect(data)
		if err != nil {
			return nil, err
		}
	}
	return validated(ev, promoted)
}

// validated validates a decoded event and normalises it (see normalize: promoted
// says whether its decoder already promoted context ids from the metadata): the
// last step of every decoder, so that all report the same errors.
func validated(ev *Event, promoted bool) (*Event, error) {
	if err := ev.Validate(); err != nil {
		return nil, &DecodeError{Signal: ev.Signal(), Err: err}
	}
	ev.normalize(promoted)
	return ev, nil
}

// decodeBinaryEvent is Decode for [CodecBinary]: the same validation and
// normalisation as JSON (promotion from metadata included), the same errors.
func decodeBinaryEvent(data []byte) (*Event, error) {
	ev, err := decodeBinary(data)
	if err != nil {
		var sig Signal
		if ev != nil {
			sig = ev.Signal()
		}
		if !errors.Is(err, ErrUnsupportedVersion) {
			err = &SyntaxError{Codec: CodecBinary, Err: err}
		}
		return nil, &DecodeError{Signal: sig, Err: err}
	}
	return validated(ev, false)
}

// decodeReflect is the reference decoder, by json.Unmarshal's reflection: what the
// fast path cannot decode (other signals, unusual shapes, every bad record) is decoded
// here, so that errors and repairs have a single source.
func decodeReflect(data []byte) (*Event, error) {
	ev := new(Event)
	if err := json.Unmarshal(data, ev, decodeOpts); err != nil {
		// Repairing is tried only once strict decoding failed, so that records
		// without lone surrogates, nearly all of them, pay nothing for it.
		fixed, n := repairSurrogates(data)
		if n == 0 {
			return nil, syntaxError(data, ev, err)
		}
		ev = new(Event)
		if err := json.Unmarshal(fixed, ev, decodeOpts); err != nil {
			return nil, syntaxError(fixed, ev, err)
		}
		ev.Repairs = []Repair{RepairLoneSurrogate}
	}
	return ev, nil
}

// syntaxError wraps err, naming the signal of the record's type when it can be read:
// from a lenient scan of the top-level "type" member, or else from what Unmarshal
// decoded before it stopped.
func syntaxError(data []byte, partial *Event, err error) error {
	sig := sniffType(data).Signal()
	if sig == "" {
		sig = partial.Signal()
	}
	return &DecodeError{Signal: sig, Err: &SyntaxError{Codec: CodecJSON, Err: err}}
}

// SniffSignal returns the signal named by the top-level "type" member of a record
// that will not be decoded (too large, say), or "" when it cannot be read. It is a
// lenient scan for drop accounting, not a validation.
func SniffSignal(data []byte) Signal { return sniffType(data).Signal() }

// SniffCodecSignal is [SniffSignal] for a record of the named codec ("" means JSON):
// "" for a codec this build does not know.
func SniffCodecSignal(codec string, data []byte) Signal {
	switch codec {
	case "", CodecJSON:
		return SniffSignal(data)
	case CodecBinary:
		return sniffBinaryType(data).Signal()
	}
	return ""
}

// sniffType returns the value of the top-level "type" member of a JSON object, read
// up to the first syntax error, or "" when there is none. It runs only for records
// that failed to decode.
func sniffType(data []byte) EventType {
	dec := jsontext.NewDecoder(bytes.NewReader(data), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return ""
	}
	for dec.PeekKind() == '"' {
		name, err := dec.ReadToken()
		if err != nil {
			return ""
		}
		if name.String() != "type" {
			if dec.SkipValue() != nil {
				return ""
			}
			continue
		}
		v, err := dec.ReadToken()
		if err != nil || v.Kind() != '"' {
			return ""
		}
		return EventType(v.String())
	}
	return ""
}

// repairSurrogates returns a copy of data in which every \u escape of a lone UTF-16
// surrogate (a high one not followed by a low one, or a low one alone) is replaced
// with \ufffd, and how many were replaced; (nil, 0) when there are none. The escape
// and its replacement have the same length, so nothing else moves. Backslashes only
// occur in JSON strings, so the scan needs no tokenizer: it steps over each escape,
// and an escaped backslash cannot be mistaken for the start of one.
func repairSurrogates(data []byte) ([]byte, int) {
	var out []byte
	n := 0
	for i := 0; i < len(data); {
		j := bytes.IndexByte(data[i:], '\\')
		if j < 0 {
			break
		}
		i += j
		if i+1 >= len(data) || data[i+1] != 'u' {
			i += 2
			continue
		}
		r, ok := hex4(data, i+2)
		switch {
		case !ok || r < 0xD800 || r > 0xDFFF:
			i += 6
			continue
		case r < 0xDC00 && i+7 < len(data) && data[i+6] == '\\' && data[i+7] == 'u':
			if r2, ok := hex4(data, i+8); ok && r2 >= 0xDC00 && r2 <= 0xDFFF {
				i += 12 // a valid pair
				continue
			}
		}
		if out == nil {
			out = bytes.Clone(data)
		}
		copy(out[i:], `\ufffd`)
		n++
		i += 6
	}
	return out, n
}

// hex4 parses the four hex digits at data[i:i+4].
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
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

// normalize completes a decoded, valid event; promoted says that context ids were
// already promoted from the span's metadata.
func (ev *Event) normalize(promoted bool) {
	if ev.SchemaVersion == 0 {
		ev.SchemaVersion = Version
	}
	switch {
	case ev.Log != nil:
		l := ev.Log
		lowerIDs(&l.TraceID, &l.SpanID)
		if len(l.Tags) > 0 && (l.Correlation == nil || len(l.Correlation.Tags) == 0) {
			if l.Correlation == nil {
				l.Correlation = new(Correlation)
			}
			l.Correlation.Tags = l.Tags
		}
	case ev.Metric != nil:
		lowerIDs(&ev.Metric.TraceID, &ev.Metric.SpanID)
	case ev.Score != nil:
		s := ev.Score
		lowerIDs(&s.TraceID, &s.SpanID)
		if hexID("", s.ScoreTraceID, 32) == nil {
			lowerIDs(&s.ScoreTraceID)
		}
		fill(&s.ScoreSource, s.Source)
		s.Correlation = fillExperiment(s.Correlation, s.ExperimentID)
	case ev.Feedback != nil:
		f := ev.Feedback
		lowerIDs(&f.TraceID, &f.SpanID)
		fill(&f.FeedbackSource, f.Source)
		fill(&f.FeedbackUserID, f.UserID)
		f.Correlation = fillExperiment(f.Correlation, f.ExperimentID)
	}
	s := ev.Span
	if s == nil {
		return
	}
	// Ids are hex; the same id in another case is the same id, and keys compare bytes.
	lowerIDs(&s.TraceID, &s.SpanID, &s.ParentSpanID)
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
	if !promoted && len(s.Metadata) > 0 && s.Metadata.Kind() == '{' {
		promote(&s.Correlation, s.Metadata)
	}
}

// lowerIDs lower-cases validated hex ids. Nearly all are lower case already: a
// word-at-a-time check finds them so, and strings.ToLower (which returns such an id
// as it is, without allocating, but a byte at a time) runs only for the others.
func lowerIDs(ids ...*string) {
	for _, id := range ids {
		if mayHaveUpper(*id) {
			*id = strings.ToLower(*id)
		}
	}
}

// mayHaveUpper reports false only when s has no byte strings.ToLower would change:
// it is ASCII and no byte has bit 0x40 set with bit 0x20 clear, as every byte of
// 'A'..'Z' has (and '@', '[' ... '_', which only cost the slow path). Hex digits and
// lower case letters pass, eight at a time.
func mayHaveUpper(s string) bool {
	const (
		b6 = 0x4040404040404040
		b7 = 0x8080808080808080
	)
	i := 0
	for ; len(s)-i >= 8; i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		// (x << 1) moves each byte's bit 0x20 to its 0x40; nothing crosses into a
		// byte's 0x40 from its neighbour.
		if x&^(x<<1)&b6|x&b7 != 0 {
			return true
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || c&0x40 != 0 && c&0x20 == 0 {
			return true
		}
	}
	return false
}

// fill sets an empty current field from its deprecated name, as Mastra's stores do.
func fill(dst *string, deprecated string) {
	if *dst == "" {
		*dst = deprecated
	}
}

// fillExperiment returns c with ExperimentID set from a deprecated top-level
// experimentId when c has none (allocating c when needed).
func fillExperiment(c *Correlation, id string) *Correlation {
	if id == "" || (c != nil && c.ExperimentID != "") {
		return c
	}
	if c == nil {
		c = new(Correlation)
	}
	c.ExperimentID = id
	return c
}

// promote fills empty context fields from metadata (a JSON object) with the string
// values of its top-level members named as those fields (promotedNames). A field
// already set wins: our own producer sets them explicitly, and the explicit value is
// the one the app meant. Metadata that does not parse promotes nothing.
func promote(c *Correlation, metadata jsontext.Value) {
	d := fastDecoders.Get().(*fastDecoder)
	defer d.release()
	d.buf = *bytes.NewBuffer(metadata)
	d.dec.Reset(&d.buf)
	if tok, err := d.dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return
	}
	for d.dec.PeekKind() == '"' {
		name, err := d.name()
		if err != nil {
			return
		}
		i := promotedIndex(name)
		if i < 0 || *promotedField(c, i) != "" || d.dec.PeekKind() != '"' {
			if d.dec.SkipValue() != nil {
				return
			}
			continue
		}
		// Set only once the whole object has parsed: a broken one promotes nothing.
		if d.setString(promotedField(c, i)) != nil {
			return
		}
	}
	if tok, err := d.dec.ReadToken(); err != nil || tok.Kind() != '}' {
		return
	}
	if _, err := d.dec.ReadToken(); err != io.EOF {
		return
	}
	d.finish(nil)
}
