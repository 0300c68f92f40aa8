package schema

import (
	"bytes"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// The scan path is the first of Decode's three decoders. It reads a span event
// straight off the record's bytes, without a tokenizer: jsontext's token reads,
// its string validation and its duplicate-name bookkeeping were most of the fast
// path's CPU (the null path's profile: 46% of the consumer in jsontext). It takes
// only what it can prove is decoded exactly as the reflection path decodes it: the
// span event shapes producers send, without \u escapes and without escapes in member
// names, every value checked by jsonCheck (the binary codec's payload check, held to
// jsontext's verdicts by FuzzJSONCheck). On anything else, including every bad
// record, it gives up, and Decode runs the jsontext fast path and then reflection,
// which decide and name the errors: errors, repairs and edge cases keep their single
// source. FuzzScanDecode checks it against the reflection decoder, FuzzDecodeTiers
// checks Decode against the reflection decoder alone.

// scanDecoder is the reusable state of one scan decode.
type scanDecoder struct {
	data []byte // the record
	eventStrings
	// names are the member names (positions in data) of the open objects the decoder
	// cannot tell apart by a bit, for the duplicate-name check.
	names [][2]int
	check jsonCheck
}

var scanDecoders = sync.Pool{New: func() any { return new(scanDecoder) }}

// scanMaxNames bounds the names an object may have for the scan path's quadratic
// duplicate check; an object with more is left to jsontext.
const scanMaxNames = 64

// decodeScan decodes a span event as the reflection path would, or returns
// errSlowPath when it cannot prove it does (bad input or a shape it leaves to the
// other decoders).
func decodeScan(data []byte) (*Event, error) {
	d := scanDecoders.Get().(*scanDecoder)
	defer d.release()
	d.data = data
	se := new(spanEvent)
	i := d.event(&se.ev, &se.span)
	if i < 0 || skipSpace(data, i) != len(data) || se.ev.Span == nil {
		return nil, errSlowPath
	}
	d.finish(&se.span.Correlation)
	return &se.ev, nil
}

func (d *scanDecoder) release() {
	d.data, d.names = nil, d.names[:0]
	d.reset()
	scanDecoders.Put(d)
}

// at returns data[i], or 0 past the end.
func (d *scanDecoder) at(i int) byte {
	if i < len(d.data) {
		return d.data[i]
	}
	return 0
}

// Bits of the envelope's members, for the duplicate-name check.
const (
	envType = 1 << iota
	envSpan
	envVersion
)

// event reads the envelope at the start of data into ev (an "exportedSpan" object
// into span) and returns the index past it, or -1.
func (d *scanDecoder) event(ev *Event, span *Span) int {
	i := skipSpace(d.data, 0)
	if d.at(i) != '{' {
		return -1
	}
	var seen uint64 // no span ("{}") is left to the other paths by decodeScan
	return d.object(i, func(name []byte, nameAt, i, first int) int {
		var bit uint64
		switch string(name) {
		case "type":
			bit = envType
			if d.at(i) != '"' {
				return -1
			}
			var v []byte
			if v, i = d.str(i); i >= 0 {
				ev.Type = eventType(v)
			}
		case "exportedSpan":
			bit = envSpan
			if d.at(i) != '{' {
				return -1
			}
			ev.Span = span
			i = d.span(i, span)
		case "schemaVersion":
			bit = envVersion
			var n uint64
			n, i = d.uint(i)
			ev.SchemaVersion = int(n)
		case "log", "metric", "score", "feedback":
			return -1 // other signals take the jsontext path
		default:
			i = d.other(first, nameAt, name, i)
		}
		return once(&seen, bit, i)
	})
}

// object reads the object at data[i] ('{', checked by the caller) and returns the
// index past it, or -1. It calls member for each member, with its name, where the
// name starts, the index of its value and where the object's names start in names
// (see other); member returns the index past the value, or -1 to give up.
func (d *scanDecoder) object(i int, member func(name []byte, nameAt, i, first int) int) int {
	i = skipSpace(d.data, i+1)
	if d.at(i) == '}' {
		return i + 1
	}
	first := len(d.names)
	for {
		name, end := d.name(i)
		if end < 0 {
			return -1
		}
		if i = member(name, i, end, first); i < 0 {
			return -1
		}
		switch i = d.next(i); {
		case i == 0:
			return -1
		case i < 0:
			d.names = d.names[:first]
			return -i
		}
	}
}

// other checks the value at data[i] of a member its object does not read, whose
// name (at data[nameAt]) must be new to the object, and returns the index past the
// value, or -1.
func (d *scanDecoder) other(first, nameAt int, name []byte, i int) int {
	if !d.newName(first, nameAt, name) {
		return -1
	}
	return d.check.scan(d.data, i)
}

// once returns i, the index past a known member's value, unless i is -1 or the
// member (bit, in seen; 0 for an unknown one, which newName checks) came before:
// then -1.
func once(seen *uint64, bit uint64, i int) int {
	if i < 0 || *seen&bit != 0 {
		return -1
	}
	*seen |= bit
	return i
}

// name reads a member name (no escapes) and its colon at data[i:] and returns the
// name and the index of the value (after whitespace), or -1.
func (d *scanDecoder) name(i int) ([]byte, int) {
	if d.at(i) != '"' {
		return nil, -1
	}
	end := scanString(d.data, i, false)
	if end < 0 {
		return nil, -1
	}
	name := d.data[i+1 : end-1]
	end = skipSpace(d.data, end)
	if d.at(end) != ':' {
		return nil, -1
	}
	return name, skipSpace(d.data, end+1)
}

// next reads what follows a member's value at data[i:]: after a comma, it returns
// the index of the next name; after the closing brace, minus the index past it (an
// object ends at 1 at the earliest); otherwise 0.
func (d *scanDecoder) next(i int) int {
	i = skipSpace(d.data, i)
	switch d.at(i) {
	case ',':
		return skipSpace(d.data, i+1)
	case '}':
		return -(i + 1)
	}
	return 0
}

// newName records name, read from the string at data[at], as a member of the object
// whose names start at names[first], reporting false when the object already has it
// or has more names than the check takes.
func (d *scanDecoder) newName(first, at int, name []byte) bool {
	if len(d.names)-first >= scanMaxNames {
		return false
	}
	for _, n := range d.names[first:] {
		if bytes.Equal(d.data[n[0]:n[1]], name) {
			return false
		}
	}
	d.names = append(d.names, [2]int{at + 1, at + 1 + len(name)})
	return true
}

// Indexes of the span's members, bits of the duplicate-name check; the context ids
// of Correlation follow, from spanCorrelation on, in correlationNames' order.
const (
	spanTraceID = iota
	spanID
	spanParentID
	spanExternalParentID
	spanName
	spanType_
	spanStart
	spanEnd
	spanAttributes
	spanMetadata
	spanInput
	spanOutput
	spanRequestContext
	spanErrorInfo
	spanIsEvent
	spanIsRoot
	spanIsInternal
	spanVersion
	spanTags
	spanCorrelation
)

// spanMember returns the index of the span member named name, or -1.
func spanMember(name []byte) int {
	switch string(name) {
	case "traceId":
		return spanTraceID
	case "id":
		return spanID
	case "parentSpanId":
		return spanParentID
	case "externalParentSpanId":
		return spanExternalParentID
	case "name":
		return spanName
	case "type":
		return spanType_
	case "startTime":
		return spanStart
	case "endTime":
		return spanEnd
	case "attributes":
		return spanAttributes
	case "metadata":
		return spanMetadata
	case "input":
		return spanInput
	case "output":
		return spanOutput
	case "requestContext":
		return spanRequestContext
	case "errorInfo":
		return spanErrorInfo
	case "isEvent":
		return spanIsEvent
	case "isRootSpan":
		return spanIsRoot
	case "isInternal":
		return spanIsInternal
	case "version":
		return spanVersion
	case "tags":
		return spanTags
	}
	if i := correlationIndex(name); i >= 0 {
		return spanCorrelation + i
	}
	return -1
}

// correlationNames are the JSON names of Correlation's string fields, in the order
// of correlationPtr.
var correlationNames = [...]string{"entityType", "entityId", "entityName", "entityVersionId",
	"parentEntityType", "parentEntityId", "parentEntityName", "parentEntityVersionId",
	"rootEntityType", "rootEntityId", "rootEntityName", "rootEntityVersionId",
	"userId", "organizationId", "resourceId", "runId", "sessionId", "threadId",
	"requestId", "environment", "source", "serviceName", "experimentId"}

// correlationIndex returns the index in correlationNames of name, or -1.
func correlationIndex(name []byte) int {
	for i, n := range correlationNames {
		if string(name) == n {
			return i
		}
	}
	return -1
}

// correlationPtr returns the field of c named correlationNames[i].
func correlationPtr(c *Correlation, i int) *string {
	return [...]*string{&c.EntityType, &c.EntityID, &c.EntityName, &c.EntityVersionID,
		&c.ParentEntityType, &c.ParentEntityID, &c.ParentEntityName, &c.ParentEntityVersionID,
		&c.RootEntityType, &c.RootEntityID, &c.RootEntityName, &c.RootEntityVersionID,
		&c.UserID, &c.OrganizationID, &c.ResourceID, &c.RunID, &c.SessionID, &c.ThreadID,
		&c.RequestID, &c.Environment, &c.Source, &c.ServiceName, &c.ExperimentID}[i]
}

// span reads the exportedSpan object at data[i] ('{') into s and returns the index
// past it, or -1.
func (d *scanDecoder) span(i int, s *Span) int {
	var seen uint64
	return d.object(i, func(name []byte, nameAt, i, first int) int {
		m := spanMember(name)
		switch m {
		case spanTraceID:
			i = d.setString(i, &s.TraceID)
		case spanID:
			i = d.setString(i, &s.SpanID)
		case spanParentID:
			i = d.setString(i, &s.ParentSpanID)
		case spanExternalParentID:
			i = d.setString(i, &s.ExternalParentSpanID)
		case spanName:
			i = d.setString(i, &s.Name)
		case spanType_:
			if d.at(i) != '"' {
				return -1
			}
			var v []byte
			if v, i = d.str(i); i >= 0 {
				s.Type = spanType(v)
			}
		case spanStart:
			i = d.time(i, &s.StartTime)
		case spanEnd:
			i = d.time(i, &s.EndTime)
		case spanAttributes:
			i = d.raw(i, &s.Attributes)
		case spanMetadata:
			if d.at(i) == '{' {
				i = d.metadata(i, &s.Metadata)
			} else {
				i = d.raw(i, &s.Metadata)
			}
		case spanInput:
			i = d.raw(i, &s.Input)
		case spanOutput:
			i = d.raw(i, &s.Output)
		case spanRequestContext:
			i = d.raw(i, &s.RequestContext)
		case spanIsEvent:
			i = d.bool(i, &s.IsEvent)
		case spanIsRoot:
			i = d.bool(i, &s.IsRootSpan)
		case spanIsInternal:
			i = d.bool(i, &s.IsInternal)
		case spanVersion:
			s.Version, i = d.uint(i)
		case spanTags:
			i = d.tags(i, &s.Correlation.Tags)
		case spanErrorInfo:
			i = d.errorInfo(i, &s.ErrorInfo)
		case -1:
			return d.other(first, nameAt, name, i)
		default:
			i = d.setString(i, correlationPtr(&s.Correlation, m-spanCorrelation))
		}
		return once(&seen, 1<<m, i)
	})
}

// errorInfo reads the errorInfo object at data[i] into a new *dst and returns the
// index past it, or -1 (for any other value).
func (d *scanDecoder) errorInfo(i int, dst **ErrorInfo) int {
	if d.at(i) != '{' {
		return -1
	}
	e := new(ErrorInfo)
	*dst = e
	var seen uint64
	return d.object(i, func(name []byte, nameAt, i, first int) int {
		var bit uint64
		switch string(name) {
		case "message":
			bit, i = 1<<0, d.setString(i, &e.Message)
		case "id":
			bit, i = 1<<1, d.setString(i, &e.ID)
		case "name":
			bit, i = 1<<2, d.setString(i, &e.Name)
		case "stack":
			bit, i = 1<<3, d.setString(i, &e.Stack)
		case "domain":
			bit, i = 1<<4, d.setString(i, &e.Domain)
		case "category":
			bit, i = 1<<5, d.setString(i, &e.Category)
		case "details":
			bit, i = 1<<6, d.raw(i, &e.Details)
		default:
			i = d.other(first, nameAt, name, i)
		}
		return once(&seen, bit, i)
	})
}

// metadata reads a span's metadata object at data[i] ('{') into dst, as raw does,
// noting on the way the members promote would promote. It returns the index past
// it, or -1.
func (d *scanDecoder) metadata(i int, dst *jsontext.Value) int {
	from := i
	end := d.object(i, func(name []byte, nameAt, i, first int) int {
		p := promotedIndex(name)
		if p < 0 || d.at(i) != '"' {
			return d.other(first, nameAt, name, i)
		}
		if !d.newName(first, nameAt, name) {
			return -1
		}
		v, end := d.str(i)
		if end >= 0 {
			d.promote(p, v)
		}
		return end
	})
	if end >= 0 {
		*dst = d.data[from:end:end]
	}
	return end
}

// str reads the string at data[i] ('"', checked by the caller): its contents,
// unescaped, and the index past it, or -1 (for \u escapes too). Without a backslash
// the contents are data's bytes; escapes are decoded at the end of strs, beyond the
// part handed out to fields, and overwritten by the next one.
func (d *scanDecoder) str(i int) ([]byte, int) {
	end := scanString(d.data, i, true)
	if end < 0 {
		return nil, -1
	}
	v := d.data[i+1 : end-1]
	if bytes.IndexByte(v, '\\') < 0 {
		return v, end
	}
	n := len(d.strs)
	out := appendUnescaped(d.strs, v)
	d.strs = out[:n]
	return out[n:], end
}

// appendUnescaped appends s, a string's contents whose escapes scanString accepted
// (none of them \u), with its escapes decoded.
func appendUnescaped(dst, s []byte) []byte {
	for {
		j := bytes.IndexByte(s, '\\')
		if j < 0 {
			return append(dst, s...)
		}
		dst = append(dst, s[:j]...)
		c := s[j+1]
		switch c {
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		}
		dst = append(dst, c) // '"', '\\' and '/' stand for themselves
		s = s[j+2:]
	}
}

// setString reads a string field at data[i] into dst and returns the index past it,
// or -1 (for a value that is not a string too).
func (d *scanDecoder) setString(i int, dst *string) int {
	if d.at(i) != '"' {
		return -1
	}
	v, end := d.str(i)
	if end >= 0 {
		d.set(dst, v)
	}
	return end
}

// time reads an RFC 3339 time string at data[i], accepting exactly what the
// reflection path accepts, and returns the index past it, or -1.
func (d *scanDecoder) time(i int, dst *time.Time) int {
	if d.at(i) != '"' {
		return -1
	}
	v, end := d.str(i)
	if end < 0 || parseTime(dst, v) != nil {
		return -1
	}
	return end
}

// raw keeps the payload at data[i] as a subslice of the record, as aliasRawValue
// does, and returns the index past it, or -1 (for null too, which the jsontext path
// leaves to reflection).
func (d *scanDecoder) raw(i int, dst *jsontext.Value) int {
	if d.at(i) == 'n' {
		return -1
	}
	end := d.check.scan(d.data, i)
	if end < 0 {
		return -1
	}
	*dst = d.data[i:end:end]
	return end
}

// uint reads a number at data[i] of up to 18 digits, without sign, fraction or
// exponent, which json's integer decoders all read the same way, and returns it and
// the index past it; -1 for any other value.
func (d *scanDecoder) uint(i int) (uint64, int) {
	if c := d.at(i); c < '0' || c > '9' {
		return 0, -1
	}
	end := scanNumber(d.data, i)
	if end < 0 || end-i > 18 {
		return 0, -1
	}
	var n uint64
	for _, c := range d.data[i:end] {
		if c < '0' || c > '9' {
			return 0, -1
		}
		n = n*10 + uint64(c-'0')
	}
	return n, end
}

// bool reads true or false at data[i] and returns the index past it, or -1.
func (d *scanDecoder) bool(i int, dst *bool) int {
	switch {
	case bytes.HasPrefix(d.data[i:], []byte("true")):
		*dst = true
		return i + 4
	case bytes.HasPrefix(d.data[i:], []byte("false")):
		*dst = false
		return i + 5
	}
	return -1
}

// tags reads an array of strings at data[i] into dst and returns the index past it,
// or -1 (for any other value).
func (d *scanDecoder) tags(i int, dst *[]string) int {
	if d.at(i) != '[' {
		return -1
	}
	// Count and check the strings first: the fields they fill must exist before
	// setString points at them.
	n := 0
	j := skipSpace(d.data, i+1)
	if d.at(j) != ']' {
		for {
			if d.at(j) != '"' {
				return -1
			}
			if j = scanString(d.data, j, true); j < 0 {
				return -1
			}
			n++
			j = skipSpace(d.data, j)
			if d.at(j) == ']' {
				break
			}
			if d.at(j) != ',' {
				return -1
			}
			j = skipSpace(d.data, j+1)
		}
	}
	end := j + 1 // past the bracket
	tags := make([]string, n)
	j = skipSpace(d.data, i+1)
	for k := range tags {
		j = skipSpace(d.data, d.setString(j, &tags[k]))
		j = skipSpace(d.data, j+1) // past the comma (or the bracket, after the last)
	}
	*dst = tags
	return end
}
