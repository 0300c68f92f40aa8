package schema

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// The fast path decodes the envelope and the span, nearly every record, by walking
// jsontext tokens instead of through json.Unmarshal's reflection, which was most of
// the consumer's CPU on the null path. It is only a shortcut: it handles the shapes
// producers send, hands any other value of a field to json.UnmarshalDecode (the very
// decoder of the reflection path), and gives up on any error, after which Decode
// runs the reflection path from the start. Errors, repairs and edge cases therefore
// come from one place; FuzzFastDecode checks that the two agree on what both accept.

// errSlowPath stops the fast path; Decode then decodes the record by reflection.
var errSlowPath = errors.New("schema: take the reflection path")

// fastDecoder is the reusable state of one fast decode.
type fastDecoder struct {
	buf bytes.Buffer // wraps the record: the decoder then reads it in place
	dec jsontext.Decoder
	eventStrings
}

// eventStrings collects the string fields of one event, for the scan and fast
// paths: they become one string (one allocation) when the event is complete.
type eventStrings struct {
	// strs holds the unquoted values; refs points each field at its part.
	strs []byte
	refs []strRef
	// promos are the string members of a span's metadata that may fill context ids;
	// the span's own fields are only all known at its end.
	promos []promo
}

// set makes v (which may lie beyond len(strs): append copies forward, which is
// safe) the value of the string field dst once the event is complete.
func (e *eventStrings) set(dst *string, v []byte) {
	if len(v) == 0 {
		*dst = ""
		return
	}
	from := len(e.strs)
	e.strs = append(e.strs, v...)
	e.refs = append(e.refs, strRef{dst, from, len(e.strs)})
}

// promote notes v, the metadata member promotedNames[field], as a candidate value
// of that context id.
func (e *eventStrings) promote(field int, v []byte) {
	at := len(e.strs)
	e.strs = append(e.strs, v...)
	e.promos = append(e.promos, promo{field, at, len(e.strs)})
}

// finish gives every string field its value, out of one allocation, and fills the
// span's context ids (c; nil: not a span) that are empty from the promoted metadata
// members: only now are the span's own ids known, and an explicit one wins.
func (e *eventStrings) finish(c *Correlation) {
	all := string(e.strs)
	for _, r := range e.refs {
		*r.dst = all[r.from:r.to]
	}
	if c == nil {
		return
	}
	for _, p := range e.promos {
		if dst := promotedField(c, p.field); *dst == "" {
			*dst = all[p.from:p.to]
		}
	}
}

// reset empties e for the next event.
func (e *eventStrings) reset() {
	clear(e.refs)
	e.strs, e.refs, e.promos = e.strs[:0], e.refs[:0], e.promos[:0]
	if cap(e.strs) > 64<<10 {
		e.strs = nil // a huge string field once should not stay pinned in the pool
	}
}

type promo struct {
	field    int // in promotedNames
	from, to int // the value, in strs
}

type strRef struct {
	dst      *string
	from, to int
}

var fastDecoders = sync.Pool{New: func() any { return new(fastDecoder) }}

// spanEvent allocates a span event and its span together.
type spanEvent struct {
	ev   Event
	span Span
}

// decodeFast decodes data as the reflection path would, or fails with any error
// when it cannot (not only on bad input: also on a shape it leaves to reflection).
func decodeFast(data []byte) (*Event, error) {
	d := fastDecoders.Get().(*fastDecoder)
	defer d.release()
	d.buf = *bytes.NewBuffer(data)
	d.dec.Reset(&d.buf, decodeOpts)
	se := new(spanEvent)
	ev := &se.ev
	if err := d.event(data, ev, &se.span); err != nil {
		return nil, err
	}
	if _, err := d.dec.ReadToken(); err != io.EOF {
		return nil, errSlowPath // trailing data
	}
	if ev.Span != nil {
		d.finish(&ev.Span.Correlation)
	} else {
		d.finish(nil)
		// Not a span event: let go of the span allocated with it.
		ev = &Event{SchemaVersion: ev.SchemaVersion, Type: ev.Type, Log: ev.Log, Metric: ev.Metric, Score: ev.Score, Feedback: ev.Feedback}
	}
	return ev, nil
}

func (d *fastDecoder) release() {
	d.buf = bytes.Buffer{}
	d.dec.Reset(&d.buf)
	d.reset()
	fastDecoders.Put(d)
}

// event reads the envelope. span is where an "exportedSpan" object goes.
func (d *fastDecoder) event(data []byte, ev *Event, span *Span) error {
	if tok, err := d.dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return errSlowPath
	}
	for d.dec.PeekKind() == '"' {
		name, err := d.name()
		if err != nil {
			return err
		}
		switch string(name) {
		case "type":
			err = enum(d, &ev.Type, eventType)
		case "exportedSpan":
			if d.dec.PeekKind() != '{' {
				return d.reflect(&ev.Span)
			}
			ev.Span = span
			if err := d.span(data, span); err != nil {
				return err
			}
		case "schemaVersion":
			if d.dec.PeekKind() != '0' {
				err = d.reflect(&ev.SchemaVersion)
				break
			}
			var n uint64
			if n, err = d.uint(); err == nil {
				ev.SchemaVersion = int(n)
			}
		case "log":
			err = d.reflect(&ev.Log)
		case "metric":
			err = d.reflect(&ev.Metric)
		case "score":
			err = d.reflect(&ev.Score)
		case "feedback":
			err = d.reflect(&ev.Feedback)
		default:
			err = d.dec.SkipValue()
		}
		if err != nil {
			return err
		}
	}
	if tok, err := d.dec.ReadToken(); err != nil || tok.Kind() != '}' {
		return errSlowPath
	}
	return nil
}

// enum reads a string member through conv, which keeps the known values' constants
// instead of a copy; anything but a string goes to reflection, which names the error.
func enum[T any](d *fastDecoder, dst *T, conv func([]byte) T) error {
	if d.dec.PeekKind() != '"' {
		return d.reflect(dst)
	}
	v, err := d.str()
	if err == nil {
		*dst = conv(v)
	}
	return err
}

// span reads the members of an exportedSpan object.
func (d *fastDecoder) span(data []byte, s *Span) error {
	if _, err := d.dec.ReadToken(); err != nil {
		return err
	}
	for d.dec.PeekKind() == '"' {
		name, err := d.name()
		if err != nil {
			return err
		}
		c := &s.Correlation
		switch string(name) {
		case "traceId":
			err = d.setString(&s.TraceID)
		case "id":
			err = d.setString(&s.SpanID)
		case "parentSpanId":
			err = d.setString(&s.ParentSpanID)
		case "externalParentSpanId":
			err = d.setString(&s.ExternalParentSpanID)
		case "name":
			err = d.setString(&s.Name)
		case "type":
			err = enum(d, &s.Type, spanType)
		case "startTime":
			err = d.time(&s.StartTime)
		case "endTime":
			err = d.time(&s.EndTime)
		case "attributes":
			err = d.raw(&s.Attributes)
		case "metadata":
			if d.dec.PeekKind() != '{' {
				err = d.raw(&s.Metadata)
				break
			}
			err = d.metadata(data, &s.Metadata)
		case "input":
			err = d.raw(&s.Input)
		case "output":
			err = d.raw(&s.Output)
		case "requestContext":
			err = d.raw(&s.RequestContext)
		case "errorInfo":
			err = d.reflect(&s.ErrorInfo)
		case "isEvent":
			err = d.bool(&s.IsEvent)
		case "isRootSpan":
			err = d.bool(&s.IsRootSpan)
		case "isInternal":
			err = d.bool(&s.IsInternal)
		case "version":
			if d.dec.PeekKind() != '0' {
				err = d.reflect(&s.Version)
				break
			}
			s.Version, err = d.uint()
		case "tags":
			err = d.reflect(&c.Tags)
		default:
			if dst := correlationField(c, name); dst != nil {
				err = d.setString(dst)
			} else {
				err = d.dec.SkipValue()
			}
		}
		if err != nil {
			return err
		}
	}
	_, err := d.dec.ReadToken()
	return err
}

// metadata reads a span's metadata object (the caller peeked '{') into dst, as raw
// does, noting on the way the members promote would promote.
func (d *fastDecoder) metadata(data []byte, dst *jsontext.Value) error {
	from := d.dec.InputOffset() // before the ':' that precedes the value
	if _, err := d.dec.ReadToken(); err != nil {
		return err
	}
	for d.dec.PeekKind() == '"' {
		name, err := d.name()
		if err != nil {
			return err
		}
		i := promotedIndex(name)
		if i < 0 || d.dec.PeekKind() != '"' {
			if err := d.dec.SkipValue(); err != nil {
				return err
			}
			continue
		}
		v, err := d.str()
		if err != nil {
			return err
		}
		d.promote(i, v)
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return err
	}
	to := int(d.dec.InputOffset())
	start := int(from) + bytes.IndexByte(data[from:to], '{')
	*dst = data[start:to:to]
	return nil
}

// correlationField returns the string field of c named name (its JSON name), or nil.
func correlationField(c *Correlation, name []byte) *string {
	switch string(name) {
	case "entityType":
		return &c.EntityType
	case "entityId":
		return &c.EntityID
	case "entityName":
		return &c.EntityName
	case "entityVersionId":
		return &c.EntityVersionID
	case "parentEntityType":
		return &c.ParentEntityType
	case "parentEntityId":
		return &c.ParentEntityID
	case "parentEntityName":
		return &c.ParentEntityName
	case "parentEntityVersionId":
		return &c.ParentEntityVersionID
	case "rootEntityType":
		return &c.RootEntityType
	case "rootEntityId":
		return &c.RootEntityID
	case "rootEntityName":
		return &c.RootEntityName
	case "rootEntityVersionId":
		return &c.RootEntityVersionID
	}
	if i := promotedIndex(name); i >= 0 {
		return promotedField(c, i)
	}
	return nil
}

// promotedNames are the metadata members promote reads, which are also the names of
// the context id fields they fill.
var promotedNames = [...]string{"userId", "organizationId", "resourceId", "runId", "sessionId", "threadId",
	"requestId", "environment", "source", "serviceName", "experimentId", "entityVersionId"}

// promotedIndex returns the index in promotedNames of name, or -1.
func promotedIndex(name []byte) int {
	for i, n := range promotedNames {
		if string(name) == n {
			return i
		}
	}
	return -1
}

// promotedField returns the field of c named promotedNames[i].
func promotedField(c *Correlation, i int) *string {
	return [...]*string{&c.UserID, &c.OrganizationID, &c.ResourceID, &c.RunID, &c.SessionID, &c.ThreadID,
		&c.RequestID, &c.Environment, &c.Source, &c.ServiceName, &c.ExperimentID, &c.EntityVersionID}[i]
}

// name reads an object member name, unquoted. It is valid until the next read.
func (d *fastDecoder) name() ([]byte, error) {
	v, err := d.dec.ReadValue()
	if err != nil {
		return nil, err
	}
	return d.unquote(v)
}

// str reads a string value (the caller peeked '"'), unquoted. It is valid until the
// next read or unquote.
func (d *fastDecoder) str() ([]byte, error) {
	v, err := d.dec.ReadValue()
	if err != nil {
		return nil, err
	}
	return d.unquote(v)
}

// unquote returns the contents of the string token v. The decoder has validated it,
// so without a backslash its contents are its bytes; escapes are decoded at the end
// of strs, beyond the part handed out to fields, and overwritten by the next one.
func (d *fastDecoder) unquote(v jsontext.Value) ([]byte, error) {
	if bytes.IndexByte(v, '\\') < 0 {
		return v[1 : len(v)-1], nil
	}
	n := len(d.strs)
	out, err := jsontext.AppendUnquote(d.strs, v)
	if err != nil {
		return nil, err
	}
	d.strs = out[:n]
	return out[n:], nil
}

// setString reads a string field into dst (by reflection when it is not a string).
func (d *fastDecoder) setString(dst *string) error {
	if d.dec.PeekKind() != '"' {
		return d.reflect(dst)
	}
	v, err := d.str()
	if err != nil {
		return err
	}
	d.set(dst, v)
	return nil
}

// time reads an RFC 3339 time, accepting exactly what the reflection path accepts.
func (d *fastDecoder) time(dst *time.Time) error {
	if d.dec.PeekKind() != '"' {
		return d.reflect(dst)
	}
	b, err := d.str()
	if err != nil {
		return err
	}
	return parseTime(dst, b)
}

// parseTime parses b, a time string's contents, into dst, accepting exactly what the
// reflection path accepts (and failing on anything else).
func parseTime(dst *time.Time, b []byte) error {
	if err := dst.UnmarshalText(b); err != nil {
		return err
	}
	// json's time decoder rejects what time's RFC 3339 parser lets through: a
	// one-digit hour, a comma before the fraction, an offset hour ≥ 24 or minute ≥ 60.
	switch {
	case b[len("2006-01-02T")+1] == ':', b[len("2006-01-02T15:04:05")] == ',':
		return errSlowPath
	case b[len(b)-1] != 'Z' && (parseDec2(b[len(b)-len("07:00"):]) >= 24 || parseDec2(b[len(b)-len("00"):]) >= 60):
		return errSlowPath
	}
	return nil
}

// parseDec2 parses two decimal digits, as json's time decoder does.
func parseDec2(b []byte) byte { return 10*(b[0]-'0') + (b[1] - '0') }

// raw keeps a payload as a subslice of the record, as aliasRawValue does.
func (d *fastDecoder) raw(dst *jsontext.Value) error {
	if d.dec.PeekKind() == 'n' {
		return d.reflect(dst)
	}
	v, err := d.dec.ReadValue()
	if err != nil {
		return err
	}
	*dst = v[:len(v):len(v)]
	return nil
}

// uint reads a number (the caller peeked '0') of up to 18 digits, without sign,
// fraction or exponent, which json's integer decoders all read the same way; another
// number ends the fast path.
func (d *fastDecoder) uint() (uint64, error) {
	v, err := d.dec.ReadValue()
	if err != nil {
		return 0, err
	}
	if len(v) > 18 {
		return 0, errSlowPath
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, errSlowPath
		}
		n = n*10 + uint64(c-'0')
	}
	return n, nil
}

func (d *fastDecoder) bool(dst *bool) error {
	switch d.dec.PeekKind() {
	case 't', 'f':
		tok, err := d.dec.ReadToken()
		if err != nil {
			return err
		}
		*dst = tok.Bool()
		return nil
	}
	return d.reflect(dst)
}

// reflect decodes the next value into dst with the reflection path's decoder, for
// the members and the shapes the fast path leaves to it.
func (d *fastDecoder) reflect(dst any) error { return json.UnmarshalDecode(&d.dec, dst) }

// eventType returns v as an EventType, without allocating for the known ones.
func eventType(v []byte) EventType {
	switch string(v) {
	case string(SpanStarted):
		return SpanStarted
	case string(SpanUpdated):
		return SpanUpdated
	case string(SpanEnded):
		return SpanEnded
	case string(LogEvent):
		return LogEvent
	case string(MetricEvent):
		return MetricEvent
	case string(ScoreEvent):
		return ScoreEvent
	case string(FeedbackEvent):
		return FeedbackEvent
	}
	return EventType(v)
}

// spanType returns v as a SpanType, without allocating for the known ones.
func spanType(v []byte) SpanType {
	if t, ok := knownSpanTypes[string(v)]; ok {
		return t
	}
	return SpanType(v)
}
