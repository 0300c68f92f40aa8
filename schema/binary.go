package schema

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// CodecBinary is the name of the compact binary codec, for Go producers: the same
// [Event] as the JSON codec, with field numbers instead of member names and lengths
// instead of quoting, so that a consumer reads a span without tokenizing it.
//
// The wire form of one record:
//
//	record   = 0x01 message                  the format version, then the envelope
//	message  = *(key value)                  fields in any order, each number at most once
//	key      = uvarint(number<<2 | wiretype)
//	wiretype   0: uvarint
//	           1: uvarint length, then that many bytes (a string, a raw JSON payload,
//	              a nested message, a time or a list)
//	           2: 8 bytes, a little-endian IEEE 754 float64
//	time     = zigzag varint seconds since 1970-01-01 UTC, uvarint nanoseconds < 1e9
//	list     = *(uvarint length, bytes)      tags; labels as key, value, key, value...
//
// Strings are UTF-8; payloads (attributes, metadata, input, output...) are their JSON
// text, validated on decode as the JSON codec validates them. An absent field is the
// zero value; a nested message, list or payload that is present is kept present even
// when empty (as "correlationContext":{} or "tags":[] are in JSON). Unknown field
// numbers are skipped, as unknown JSON members are. Times carry the instant only:
// they decode in UTC (every store keeps instants). The field numbers are listed in
// the binField* constants of this file and must never be reused.
const CodecBinary = "spanpipe-bin/v1"

// binFormatVersion is the first byte of every binary record.
const binFormatVersion = 1

// Wire types.
const (
	wtVarint = 0
	wtBytes  = 1
	wtFixed  = 2
)

// Field numbers, per message. Append only; never renumber.
const (
	// Envelope.
	binEvType, binEvSchemaVersion, binEvSpan, binEvLog, binEvMetric, binEvScore, binEvFeedback = 1, 2, 3, 4, 5, 6, 7

	// Span.
	binSpanTraceID, binSpanID, binSpanParentID, binSpanExternalParentID, binSpanName, binSpanType = 1, 2, 3, 4, 5, 6
	binSpanCorrelation, binSpanStart, binSpanEnd, binSpanAttributes, binSpanMetadata              = 7, 8, 9, 10, 11
	binSpanInput, binSpanOutput, binSpanErrorInfo, binSpanRequestContext, binSpanFlags            = 12, 13, 14, 15, 16
	binSpanVersion                                                                                = 17

	// Correlation: the 23 string fields in the order of the struct (1..23), then tags.
	binCorrTags = 24

	// ErrorInfo.
	binErrMessage, binErrID, binErrName, binErrStack, binErrDomain, binErrCategory, binErrDetails = 1, 2, 3, 4, 5, 6, 7

	// Log.
	binLogID, binLogTimestamp, binLogTraceID, binLogSpanID, binLogLevel, binLogMessage = 1, 2, 3, 4, 5, 6
	binLogData, binLogCorrelation, binLogMetadata, binLogTags                          = 7, 8, 9, 10

	// Metric.
	binMetricID, binMetricTimestamp, binMetricTraceID, binMetricSpanID, binMetricName       = 1, 2, 3, 4, 5
	binMetricValue, binMetricLabels, binMetricCorrelation, binMetricCost, binMetricMetadata = 6, 7, 8, 9, 10

	// CostContext.
	binCostProvider, binCostModel, binCostEstimated, binCostUnit, binCostMetadata = 1, 2, 3, 4, 5

	// Score.
	binScoreID, binScoreTimestamp, binScoreTraceID, binScoreSpanID, binScoreScoreTraceID = 1, 2, 3, 4, 5
	binScoreScorerID, binScoreScorerName, binScoreScorerVersion, binScoreScoreSource     = 6, 7, 8, 9
	binScoreSource, binScoreScore, binScoreReason, binScoreTargetEntityType              = 10, 11, 12, 13
	binScoreCorrelation, binScoreMetadata, binScoreExperimentID                          = 14, 15, 16

	// Feedback.
	binFbID, binFbTimestamp, binFbTraceID, binFbSpanID, binFbFeedbackSource, binFbType = 1, 2, 3, 4, 5, 6
	binFbValue, binFbComment, binFbSourceID, binFbFeedbackUserID, binFbCorrelation     = 7, 8, 9, 10, 11
	binFbMetadata, binFbSource, binFbUserID, binFbExperimentID                         = 12, 13, 14, 15
)

// Span flags (binSpanFlags).
const (
	binFlagIsEvent = 1 << iota
	binFlagIsRootSpan
	binFlagIsInternal
)

// correlationStrings returns c's string fields in wire order (numbers 1..23).
func correlationStrings(c *Correlation) [23]*string {
	return [...]*string{&c.EntityType, &c.EntityID, &c.EntityName, &c.EntityVersionID,
		&c.ParentEntityType, &c.ParentEntityID, &c.ParentEntityName, &c.ParentEntityVersionID,
		&c.RootEntityType, &c.RootEntityID, &c.RootEntityName, &c.RootEntityVersionID,
		&c.UserID, &c.OrganizationID, &c.ResourceID, &c.RunID, &c.SessionID, &c.ThreadID,
		&c.RequestID, &c.Environment, &c.Source, &c.ServiceName, &c.ExperimentID}
}

// EncodeAs appends ev encoded with the named codec ("" means JSON) to dst. Like
// [Encode], it does not validate the event, but fails on what the codec cannot carry.
func EncodeAs(dst []byte, codec string, ev *Event) ([]byte, error) {
	switch codec {
	case "", CodecJSON:
		return Encode(dst, ev)
	case CodecBinary:
		return EncodeBinary(dst, ev)
	}
	return dst, fmt.Errorf("%w: %q", ErrUnknownCodec, codec)
}

// EncodeBinary appends the [CodecBinary] encoding of ev to dst. It does not
// validate; it fails, as [Encode] does, on a string that is not UTF-8, a payload
// that is not one JSON value and a float that is not finite.
func EncodeBinary(dst []byte, ev *Event) ([]byte, error) {
	e := binEncoder{b: append(dst, binFormatVersion)}
	e.str(binEvType, string(ev.Type))
	v := ev.SchemaVersion
	if v == 0 {
		v = Version // written explicitly, as by Encode
	}
	e.varint(binEvSchemaVersion, zigzag(int64(v)))
	if s := ev.Span; s != nil {
		at := e.begin(binEvSpan)
		e.span(s)
		e.end(at)
	}
	if l := ev.Log; l != nil {
		at := e.begin(binEvLog)
		e.str(binLogID, l.LogID)
		e.time(binLogTimestamp, l.Timestamp)
		e.str(binLogTraceID, l.TraceID)
		e.str(binLogSpanID, l.SpanID)
		e.str(binLogLevel, l.Level)
		e.str(binLogMessage, l.Message)
		e.raw(binLogData, l.Data)
		e.correlation(binLogCorrelation, l.Correlation)
		e.raw(binLogMetadata, l.Metadata)
		e.list(binLogTags, l.Tags)
		e.end(at)
	}
	if m := ev.Metric; m != nil {
		at := e.begin(binEvMetric)
		e.str(binMetricID, m.MetricID)
		e.time(binMetricTimestamp, m.Timestamp)
		e.str(binMetricTraceID, m.TraceID)
		e.str(binMetricSpanID, m.SpanID)
		e.str(binMetricName, m.Name)
		e.float(binMetricValue, m.Value)
		if m.Labels != nil {
			// In key order, as JSON writes them: the same event, the same bytes.
			kv := make([]string, 0, 2*len(m.Labels))
			for _, k := range slices.Sorted(maps.Keys(m.Labels)) {
				kv = append(kv, k, m.Labels[k])
			}
			e.list(binMetricLabels, kv)
		}
		e.correlation(binMetricCorrelation, m.Correlation)
		if c := m.CostContext; c != nil {
			at := e.begin(binMetricCost)
			e.str(binCostProvider, c.Provider)
			e.str(binCostModel, c.Model)
			if c.EstimatedCost != nil {
				e.key(binCostEstimated, wtFixed)
				e.fixed(*c.EstimatedCost)
			}
			e.str(binCostUnit, c.CostUnit)
			e.raw(binCostMetadata, c.CostMetadata)
			e.end(at)
		}
		e.raw(binMetricMetadata, m.Metadata)
		e.end(at)
	}
	if s := ev.Score; s != nil {
		at := e.begin(binEvScore)
		e.str(binScoreID, s.ScoreID)
		e.time(binScoreTimestamp, s.Timestamp)
		e.str(binScoreTraceID, s.TraceID)
		e.str(binScoreSpanID, s.SpanID)
		e.str(binScoreScoreTraceID, s.ScoreTraceID)
		e.str(binScoreScorerID, s.ScorerID)
		e.str(binScoreScorerName, s.ScorerName)
		e.str(binScoreScorerVersion, s.ScorerVersion)
		e.str(binScoreScoreSource, s.ScoreSource)
		e.str(binScoreSource, s.Source)
		e.float(binScoreScore, s.Score)
		e.str(binScoreReason, s.Reason)
		e.str(binScoreTargetEntityType, s.TargetEntityType)
		e.correlation(binScoreCorrelation, s.Correlation)
		e.raw(binScoreMetadata, s.Metadata)
		e.str(binScoreExperimentID, s.ExperimentID)
		e.end(at)
	}
	if f := ev.Feedback; f != nil {
		at := e.begin(binEvFeedback)
		e.str(binFbID, f.FeedbackID)
		e.time(binFbTimestamp, f.Timestamp)
		e.str(binFbTraceID, f.TraceID)
		e.str(binFbSpanID, f.SpanID)
		e.str(binFbFeedbackSource, f.FeedbackSource)
		e.str(binFbType, f.FeedbackType)
		e.raw(binFbValue, f.Value)
		e.str(binFbComment, f.Comment)
		e.str(binFbSourceID, f.SourceID)
		e.str(binFbFeedbackUserID, f.FeedbackUserID)
		e.correlation(binFbCorrelation, f.Correlation)
		e.raw(binFbMetadata, f.Metadata)
		e.str(binFbSource, f.Source)
		e.str(binFbUserID, f.UserID)
		e.str(binFbExperimentID, f.ExperimentID)
		e.end(at)
	}
	if e.err != nil {
		return dst, fmt.Errorf("schema: encode %s event as %s: %w", ev.Type, CodecBinary, e.err)
	}
	return e.b, nil
}

// binEncoder appends fields to b; the first error sticks and is reported at the end.
type binEncoder struct {
	b   []byte
	err error
}

func (e *binEncoder) span(s *Span) {
	e.str(binSpanTraceID, s.TraceID)
	e.str(binSpanID, s.SpanID)
	e.str(binSpanParentID, s.ParentSpanID)
	e.str(binSpanExternalParentID, s.ExternalParentSpanID)
	e.str(binSpanName, s.Name)
	e.str(binSpanType, string(s.Type))
	if !s.Correlation.isZero() {
		e.correlation(binSpanCorrelation, &s.Correlation)
	}
	e.time(binSpanStart, s.StartTime)
	e.time(binSpanEnd, s.EndTime)
	e.raw(binSpanAttributes, s.Attributes)
	e.raw(binSpanMetadata, s.Metadata)
	e.raw(binSpanInput, s.Input)
	e.raw(binSpanOutput, s.Output)
	if ei := s.ErrorInfo; ei != nil {
		at := e.begin(binSpanErrorInfo)
		e.str(binErrMessage, ei.Message)
		e.str(binErrID, ei.ID)
		e.str(binErrName, ei.Name)
		e.str(binErrStack, ei.Stack)
		e.str(binErrDomain, ei.Domain)
		e.str(binErrCategory, ei.Category)
		e.raw(binErrDetails, ei.Details)
		e.end(at)
	}
	e.raw(binSpanRequestContext, s.RequestContext)
	var flags uint64
	if s.IsEvent {
		flags |= binFlagIsEvent
	}
	if s.IsRootSpan {
		flags |= binFlagIsRootSpan
	}
	if s.IsInternal {
		flags |= binFlagIsInternal
	}
	if flags != 0 {
		e.varint(binSpanFlags, flags)
	}
	if s.Version != 0 {
		e.varint(binSpanVersion, s.Version)
	}
}

// isZero reports whether c has no field set. Tags that are present but empty count
// as set: JSON keeps "tags":[] (omitzero drops only nil).
func (c *Correlation) isZero() bool {
	if c.Tags != nil {
		return false
	}
	for _, p := range correlationStrings(c) {
		if *p != "" {
			return false
		}
	}
	return true
}

func (e *binEncoder) correlation(num int, c *Correlation) {
	if c == nil {
		return
	}
	at := e.begin(num)
	for i, p := range correlationStrings(c) {
		e.str(i+1, *p)
	}
	e.list(binCorrTags, c.Tags)
	e.end(at)
}

func (e *binEncoder) key(num, wt int) { e.b = binary.AppendUvarint(e.b, uint64(num)<<2|uint64(wt)) }

func (e *binEncoder) varint(num int, v uint64) {
	e.key(num, wtVarint)
	e.b = binary.AppendUvarint(e.b, v)
}

// str writes a non-empty string (an empty one is the absent field's value).
func (e *binEncoder) str(num int, s string) {
	if s == "" {
		return
	}
	if !utf8.ValidString(s) && e.err == nil {
		e.err = fmt.Errorf("field %d: string is not valid UTF-8", num)
	}
	e.key(num, wtBytes)
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

// raw writes a present payload, which must be one JSON value; the whitespace around
// it is dropped, as the JSON codec drops it.
func (e *binEncoder) raw(num int, v jsontext.Value) {
	if len(v) == 0 {
		return
	}
	v = trimJSONSpace(v)
	if !v.IsValid() && e.err == nil {
		e.err = fmt.Errorf("field %d: payload is not a valid JSON value", num)
	}
	e.key(num, wtBytes)
	e.b = binary.AppendUvarint(e.b, uint64(len(v)))
	e.b = append(e.b, v...)
}

func (e *binEncoder) time(num int, t time.Time) {
	if t.IsZero() {
		return
	}
	e.key(num, wtBytes)
	var tmp [2 * binary.MaxVarintLen64]byte
	b := binary.AppendUvarint(tmp[:0], zigzag(t.Unix()))
	b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	e.b = binary.AppendUvarint(e.b, uint64(len(b)))
	e.b = append(e.b, b...)
}

// float writes a float; zero is omitted, but not -0, which JSON keeps.
func (e *binEncoder) float(num int, f float64) {
	if math.Float64bits(f) == 0 {
		return
	}
	e.key(num, wtFixed)
	e.fixed(f)
}

func (e *binEncoder) fixed(f float64) {
	if (math.IsNaN(f) || math.IsInf(f, 0)) && e.err == nil {
		e.err = fmt.Errorf("float %v is not finite (JSON cannot carry it either)", f)
	}
	e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(f))
}

// list writes a present list of strings (nil is absent, empty is present).
func (e *binEncoder) list(num int, l []string) {
	if l == nil {
		return
	}
	at := e.begin(num)
	for _, s := range l {
		if !utf8.ValidString(s) && e.err == nil {
			e.err = fmt.Errorf("field %d: string is not valid UTF-8", num)
		}
		e.b = binary.AppendUvarint(e.b, uint64(len(s)))
		e.b = append(e.b, s...)
	}
	e.end(at)
}

// begin starts a length-prefixed field; end writes its length once its contents are
// appended, moving them up by the length's size (a few bytes of a short copy, where
// computing every size first would walk the event twice).
func (e *binEncoder) begin(num int) int {
	e.key(num, wtBytes)
	return len(e.b)
}

func (e *binEncoder) end(at int) {
	n := len(e.b) - at
	var tmp [binary.MaxVarintLen64]byte
	l := binary.PutUvarint(tmp[:], uint64(n))
	e.b = append(e.b, tmp[:l]...)
	copy(e.b[at+l:], e.b[at:at+n])
	copy(e.b[at:], tmp[:l])
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// trimJSONSpace drops JSON whitespace around a payload.
func trimJSONSpace(v []byte) []byte {
	for len(v) > 0 && isJSONSpace(v[0]) {
		v = v[1:]
	}
	for len(v) > 0 && isJSONSpace(v[len(v)-1]) {
		v = v[:len(v)-1]
	}
	return v
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// errBinary is the cause of every syntax error of the binary codec.
var errBinary = errors.New("malformed record")

// binDecoder is the reusable state of one binary decode. Strings are collected in
// strs and become one string (one allocation) at the end, as in the fast JSON path.
type binDecoder struct {
	check    jsonCheck
	strs     []byte
	refs     []strRef
	repaired bool
}

var binDecoders = sync.Pool{New: func() any { return new(binDecoder) }}

// decodeBinary decodes a [CodecBinary] record into an event, not yet validated. It
// never trusts a length: every one is checked against the bytes left before use, and
// nothing is allocated by a length read from the record (a list is allocated after
// it was walked, at most one element per byte).
func decodeBinary(data []byte) (*Event, error) {
	if len(data) == 0 {
		return nil, binErr("", "empty record")
	}
	if data[0] != binFormatVersion {
		if data[0] > binFormatVersion {
			return nil, fmt.Errorf("%w: %s format version %d (this build reads %d)", ErrUnsupportedVersion, CodecBinary, data[0], binFormatVersion)
		}
		return nil, binErr("", fmt.Sprintf("format version %d", data[0]))
	}
	d := binDecoders.Get().(*binDecoder)
	defer d.release()
	se := new(spanEvent)
	ev := &se.ev
	err := d.event(data[1:], ev, &se.span)
	if err != nil {
		return ev, err // ev: its type names the signal of the error
	}
	d.setStrings()
	if d.repaired {
		ev.Repairs = []Repair{RepairLoneSurrogate}
	}
	if ev.Span == nil {
		ev = &Event{SchemaVersion: ev.SchemaVersion, Type: ev.Type, Log: ev.Log, Metric: ev.Metric, Score: ev.Score, Feedback: ev.Feedback, Repairs: ev.Repairs}
	}
	return ev, nil
}

// sniffBinaryType returns the event type of a binary record, read up to the first
// malformed field, or "" when there is none.
func sniffBinaryType(data []byte) EventType {
	if len(data) == 0 || data[0] != binFormatVersion {
		return ""
	}
	m := binMsg{name: "envelope", b: data[1:]}
	for {
		if ok, _ := m.next(); !ok {
			return ""
		}
		if m.num == binEvType && m.wt == wtBytes && utf8.Valid(m.val()) {
			return eventType(m.val())
		}
	}
}

func (d *binDecoder) release() {
	clear(d.refs)
	d.strs, d.refs, d.repaired = d.strs[:0], d.refs[:0], false
	if cap(d.strs) > 64<<10 {
		d.strs = nil
	}
	binDecoders.Put(d)
}

func (d *binDecoder) setStrings() {
	all := string(d.strs)
	for _, r := range d.refs {
		*r.dst = all[r.from:r.to]
	}
}

func binErr(msg, what string) error {
	if msg == "" {
		return fmt.Errorf("%w: %s", errBinary, what)
	}
	return fmt.Errorf("%w: %s: %s", errBinary, msg, what)
}

// binMsg reads the fields of one message.
type binMsg struct {
	d    *binDecoder
	name string // for errors: "exportedSpan", "log"...
	b    []byte
	// Positions in b, not subslices: next writes only integers, which needs no GC
	// write barrier (a pointer written through m would, on every field of every record).
	off  int    // the next field
	seen uint64 // field numbers read (below 64), to reject repeats as JSON rejects duplicate names
	// the field being read
	num, wt        int
	valFrom, valTo int    // its bytes (wtBytes and wtFixed)
	u              uint64 // its value (wtVarint)
}

// val returns the current field's bytes (wtBytes, wtFixed), their capacity ending
// with them.
func (m *binMsg) val() []byte { return m.b[m.valFrom:m.valTo:m.valTo] }

// next reads the next field; false at the end of the message or on error (err set).
func (m *binMsg) next() (bool, error) {
	rest := m.b[m.off:]
	if len(rest) == 0 {
		return false, nil
	}
	k, n := binary.Uvarint(rest)
	if n <= 0 {
		return false, binErr(m.name, "truncated field key")
	}
	m.off += n
	rest = rest[n:]
	if k>>2 > math.MaxInt32 {
		return false, binErr(m.name, fmt.Sprintf("field number %d", k>>2))
	}
	m.num, m.wt = int(k>>2), int(k&3)
	if m.num < 64 {
		if m.seen&(1<<m.num) != 0 {
			return false, binErr(m.name, fmt.Sprintf("field %d repeated", m.num))
		}
		m.seen |= 1 << m.num
	}
	switch m.wt {
	case wtVarint:
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			return false, binErr(m.name, fmt.Sprintf("field %d: truncated varint", m.num))
		}
		m.u = v
		m.off += n
	case wtBytes:
		l, n := binary.Uvarint(rest)
		if n <= 0 {
			return false, binErr(m.name, fmt.Sprintf("field %d: truncated length", m.num))
		}
		rest = rest[n:]
		if l > uint64(len(rest)) {
			return false, binErr(m.name, fmt.Sprintf("field %d: length %d exceeds the %d bytes left", m.num, l, len(rest)))
		}
		m.valFrom = m.off + n
		m.valTo = m.valFrom + int(l)
		m.off = m.valTo
	case wtFixed:
		if len(rest) < 8 {
			return false, binErr(m.name, fmt.Sprintf("field %d: truncated float", m.num))
		}
		m.valFrom, m.valTo = m.off, m.off+8
		m.off = m.valTo
	default:
		return false, binErr(m.name, fmt.Sprintf("field %d: unknown wire type %d", m.num, m.wt))
	}
	return true, nil
}

func (m *binMsg) want(wt int) error {
	if m.wt != wt {
		return binErr(m.name, fmt.Sprintf("field %d: wire type %d, want %d", m.num, m.wt, wt))
	}
	return nil
}

// str reads a string field into dst.
func (m *binMsg) str(dst *string) error {
	if err := m.want(wtBytes); err != nil {
		return err
	}
	return m.d.addString(m, dst, m.val())
}

func (d *binDecoder) addString(m *binMsg, dst *string, v []byte) error {
	if !utf8.Valid(v) {
		return binErr(m.name, fmt.Sprintf("field %d: string is not valid UTF-8", m.num))
	}
	if len(v) == 0 {
		*dst = ""
		return nil
	}
	from := len(d.strs)
	d.strs = append(d.strs, v...)
	d.refs = append(d.refs, strRef{dst, from, len(d.strs)})
	return nil
}

// raw reads a JSON payload into dst, a subslice of the record, validated as the JSON
// codec validates it (duplicate names and invalid UTF-8 rejected, lone surrogate
// escapes repaired into a copy).
func (m *binMsg) raw(dst *jsontext.Value) error {
	if err := m.want(wtBytes); err != nil {
		return err
	}
	v := jsontext.Value(trimJSONSpace(m.val()))
	if !m.d.check.valid(v) && !v.IsValid() {
		fixed, n := repairSurrogates(v)
		if n == 0 || !jsontext.Value(fixed).IsValid() {
			return binErr(m.name, fmt.Sprintf("field %d: payload is not a valid JSON value", m.num))
		}
		v, m.d.repaired = fixed, true
	}
	*dst = v[:len(v):len(v)] // an append to the payload must not overwrite the record
	return nil
}

func (m *binMsg) time(dst *time.Time) error {
	if err := m.want(wtBytes); err != nil {
		return err
	}
	s, n := binary.Uvarint(m.val())
	if n <= 0 {
		return binErr(m.name, fmt.Sprintf("field %d: truncated time", m.num))
	}
	ns, k := binary.Uvarint(m.val()[n:])
	if k <= 0 || n+k != len(m.val()) || ns >= 1e9 {
		return binErr(m.name, fmt.Sprintf("field %d: malformed time", m.num))
	}
	*dst = time.Unix(unzigzag(s), int64(ns)).UTC()
	return nil
}

func (m *binMsg) float(dst *float64) error {
	if err := m.want(wtFixed); err != nil {
		return err
	}
	*dst = math.Float64frombits(binary.LittleEndian.Uint64(m.val()))
	return nil
}

func (m *binMsg) uvarint(dst *uint64) error {
	if err := m.want(wtVarint); err != nil {
		return err
	}
	*dst = m.u
	return nil
}

// list reads a list of strings; a present list is non-nil even when empty. Its
// strings are allocated here, not with the event's other strings: the caller may
// need them at once (labels), and lists are rare.
func (m *binMsg) list() ([]string, error) {
	if err := m.want(wtBytes); err != nil {
		return nil, err
	}
	n := 0
	for b := m.val(); len(b) > 0; n++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, binErr(m.name, fmt.Sprintf("field %d: malformed list", m.num))
		}
		b = b[k+int(l):]
	}
	out := make([]string, n) // n ≤ len(m.val()): bounded by the record, not by a length in it
	b := m.val()
	for i := range out {
		l, k := binary.Uvarint(b)
		v := b[k : k+int(l)]
		if !utf8.Valid(v) {
			return nil, binErr(m.name, fmt.Sprintf("field %d: string is not valid UTF-8", m.num))
		}
		out[i], b = string(v), b[k+int(l):]
	}
	return out, nil
}

// sub returns a reader of the nested message in the current field.
func (m *binMsg) sub(name string) (binMsg, error) {
	if err := m.want(wtBytes); err != nil {
		return binMsg{}, err
	}
	return binMsg{d: m.d, name: name, b: m.val()}, nil
}

// skip accepts a field of a number this build does not know.
func (m *binMsg) skip() error { return nil }

func (d *binDecoder) event(b []byte, ev *Event, span *Span) error {
	m := binMsg{d: d, name: "envelope", b: b}
	for {
		ok, err := m.next()
		if !ok {
			return err
		}
		switch m.num {
		case binEvType:
			if err = m.want(wtBytes); err == nil {
				if !utf8.Valid(m.val()) {
					err = binErr(m.name, "type is not valid UTF-8")
				} else {
					ev.Type = eventType(m.val())
				}
			}
		case binEvSchemaVersion:
			if err = m.want(wtVarint); err == nil {
				v := unzigzag(m.u)
				if v > math.MaxInt32 || v < math.MinInt32 {
					err = binErr(m.name, fmt.Sprintf("schemaVersion %d", v))
				}
				ev.SchemaVersion = int(v)
			}
		case binEvSpan:
			ev.Span = span
			err = d.span(&m, span)
		case binEvLog:
			ev.Log = new(Log)
			err = d.log(&m, ev.Log)
		case binEvMetric:
			ev.Metric = new(Metric)
			err = d.metric(&m, ev.Metric)
		case binEvScore:
			ev.Score = new(Score)
			err = d.score(&m, ev.Score)
		case binEvFeedback:
			ev.Feedback = new(Feedback)
			err = d.feedback(&m, ev.Feedback)
		default:
			err = m.skip()
		}
		if err != nil {
			return err
		}
	}
}

func (d *binDecoder) span(parent *binMsg, s *Span) error {
	m, err := parent.sub("exportedSpan")
	if err != nil {
		return err
	}
	for {
		ok, err := m.next()
		if !ok {
			return err
		}
		switch m.num {
		case binSpanTraceID:
			err = m.str(&s.TraceID)
		case binSpanID:
			err = m.str(&s.SpanID)
		case binSpanParentID:
			err = m.str(&s.ParentSpanID)
		case binSpanExternalParentID:
			err = m.str(&s.ExternalParentSpanID)
		case binSpanName:
			err = m.str(&s.Name)
		case binSpanType:
			if err = m.want(wtBytes); err == nil {
				if !utf8.Valid(m.val()) {
					err = binErr(m.name, "type is not valid UTF-8")
				} else {
					s.Type = spanType(m.val())
				}
			}
		case binSpanCorrelation:
			err = d.correlationInto(&m, "exportedSpan", &s.Correlation)
		case binSpanStart:
			err = m.time(&s.StartTime)
		case binSpanEnd:
			err = m.time(&s.EndTime)
		case binSpanAttributes:
			err = m.raw(&s.Attributes)
		case binSpanMetadata:
			err = m.raw(&s.Metadata)
		case binSpanInput:
			err = m.raw(&s.Input)
		case binSpanOutput:
			err = m.raw(&s.Output)
		case binSpanErrorInfo:
			s.ErrorInfo = new(ErrorInfo)
			err = d.errorInfo(&m, s.ErrorInfo)
		case binSpanRequestContext:
			err = m.raw(&s.RequestContext)
		case binSpanFlags:
			var f uint64
			if err = m.uvarint(&f); err == nil {
				s.IsEvent, s.IsRootSpan, s.IsInternal = f&binFlagIsEvent != 0, f&binFlagIsRootSpan != 0, f&binFlagIsInternal != 0
			}
		case binSpanVersion:
			err = m.uvarint(&s.Version)
		default:
			err = m.skip()
		}
		if err != nil {
			return err
		}
	}
}

func (d *binDecoder) correlation(parent *binMsg) (*Correlation, error) {
	c := new(Correlation)
	return c, d.correlationInto(parent, "correlationContext", c)
}

func (d *binDecoder) correlationInto(parent *binMsg, name string, c *Correlation) error {
	m, err := parent.sub(name)
	if err != nil {
		return err
	}
	fields := correlationStrings(c)
	for {
		ok, err := m.next()
		if !ok {
			return err
		}
		switch {
		case m.num >= 1 && m.num <= len(fields):
			err = m.str(fields[m.num-1])
		case m.num == binCorrTags:
			c.Tags, err = m.list()
		default:
			err = m.skip()
		}
		if err != nil {
			return err
		}
	}
}

func (d *binDecoder) errorInfo(parent *binMsg, e *ErrorInfo) error {
	m, err := parent.sub("exportedSpan.errorInfo")
	if err != nil {
		return err
	}
	for {
		ok, err := m.next()
		if !ok {
			return err
		}
		switch m.num {
		case binErrMessage:
			err = m.str(&e.Message)
		case binErrID:
			err = m.str(&e.ID)
		case binErrName:
			err = m.str(&e.Name)
		case binErrStack:
			err = m.str(&e.Stack)
		case binErrDomain:
			err = m.str(&e.Domain)
		case binErrCategory:
			err = m.str(&e.Category)
		case binErrDetails:
			err = m.raw(&e.Details)
		default:
			err = m.skip()
		}
		if err != nil {
			return err
		}
	}
}

func (d *binDecoder) log(parent *binMsg, l *Log) error {
	m, err := parent.sub("log")
	if err != nil {
		return err
	}
	for {
		ok, err := m.next()
		if !ok {
			return err
		}
		switch m.num {
		case binLogID:
			err = m.str(&l.LogID)
		case binLogTimestamp:
			err = m.time(&l.Timestamp)
		case binLogTraceID:
			err = m.str(&l.TraceID)
		case binLogSpanID:
			err = m.str(&l.SpanID)
		case binLogLevel:
			err = m.str(&l.Level)
		case binLogMessage:
			err = m.str(&l.Message)
		case binLogData:
			err = m.raw(&l.Data)
		case binLogCorrelation:
			l.Correlation, err = d.correlation(&m)
		case binLogMetadata:
			err = m.raw(&l.Metadata)
		case binLogTags:
			l.Tags, err = m.list()
		default:
			err = m.skip()
		}
		if err != nil {
			return err
		}
	}
}

func (d *binDecoder) metric(parent *binMsg, x *Metric) error {
	m, err := parent.sub("metric")
	if err != nil {
		return err
	}
	for {
		ok, err := m.next()
		if !ok {
			return err
		}
		switch m.num {
		case binMetricID:
			err = m.str(&x.MetricID)
		case binMetricTimestamp:
			err = m.time(&x.Timestamp)
		case binMetricTraceID:
			err = m.str(&x.TraceID)
		case binMetricSpanID:
			err = m.str(&x.SpanID)
		case binMetricName:
			err = m.str(&x.Name)
		case binMetricValue:
			err = m.float(&x.Value)
		case binMetricLabels:
			var kv []string
			if kv, err = m.list(); err == nil {
				err = setLabels(&m, x, kv)
			}
		case binMetricCorrelation:
			x.Correlation, err = d.correlation(&m)
		case binMetricCost:
			x.CostContext = new(CostContext)
			err = d.cost(&m, x.CostContext)
		case binMetricMetadata:
			err = m.raw(&x.Metadata)
		default:
			err = m.skip()
		}
		if err != nil {
			return err
		}
	}
}

// setLabels fills x.Labels from key, value pairs, rejecting a repeated key as JSON
// rejects a duplicate name.
func setLabels(m *binMsg, x *Metric, kv []string) error {
	if len(kv)%2 != 0 {
		return binErr(m.name, "labels: a key without a value")
	}
	x.Labels = make(map[string]string, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		if _, dup := x.Labels[kv[i]]; dup {
			return binErr(m.name, fmt.Sprintf("labels: key %q repeated", kv[i]))
		}
		x.Labels[kv[i]] = kv[i+1]
	}
	return nil
}

func (d *binDecoder) cost(parent *binMsg, c *CostContext) error {
	m, err := parent.sub("metric.costContext")
	if err != nil {
		return err
	}
	for {
		ok, err := m.next()
		if !ok {
			return err
		}
		switch m.num {
		case binCostProvider:
			err = m.str(&c.Provider)
		case binCostModel:
			err = m.str(&c.Model)
		case binCostEstimated:
			var f float64
			if err = m.float(&f); err == nil {
				if math.IsNaN(f) || math.IsInf(f, 0) {
					err = binErr(m.name, "estimatedCost is not a finite number")
				}
				c.EstimatedCost = &f
			}
		case binCostUnit:
			err = m.str(&c.CostUnit)
		case binCostMetadata:
			err = m.raw(&c.CostMetadata)
		default:
			err = m.skip()
		}
		if err != nil {
			return err
		}
	}
}

func (d *binDecoder) score(parent *binMsg, s *Score) error {
	m, err := parent.sub("score")
	if err != nil {
		return err
	}
	for {
		ok, err := m.next()
		if !ok {
			return err
		}
		switch m.num {
		case binScoreID:
			err = m.str(&s.ScoreID)
		case binScoreTimestamp:
			err = m.time(&s.Timestamp)
		case binScoreTraceID:
			err = m.str(&s.TraceID)
		case binScoreSpanID:
			err = m.str(&s.SpanID)
		case binScoreScoreTraceID:
			err = m.str(&s.ScoreTraceID)
		case binScoreScorerID:
			err = m.str(&s.ScorerID)
		case binScoreScorerName:
			err = m.str(&s.ScorerName)
		case binScoreScorerVersion:
			err = m.str(&s.ScorerVersion)
		case binScoreScoreSource:
			err = m.str(&s.ScoreSource)
		case binScoreSource:
			err = m.str(&s.Source)
		case binScoreScore:
			err = m.float(&s.Score)
		case binScoreReason:
			err = m.str(&s.Reason)
		case binScoreTargetEntityType:
			err = m.str(&s.TargetEntityType)
		case binScoreCorrelation:
			s.Correlation, err = d.correlation(&m)
		case binScoreMetadata:
			err = m.raw(&s.Metadata)
		case binScoreExperimentID:
			err = m.str(&s.ExperimentID)
		default:
			err = m.skip()
		}
		if err != nil {
			return err
		}
	}
}

func (d *binDecoder) feedback(parent *binMsg, f *Feedback) error {
	m, err := parent.sub("feedback")
	if err != nil {
		return err
	}
	for {
		ok, err := m.next()
		if !ok {
			return err
		}
		switch m.num {
		case binFbID:
			err = m.str(&f.FeedbackID)
		case binFbTimestamp:
			err = m.time(&f.Timestamp)
		case binFbTraceID:
			err = m.str(&f.TraceID)
		case binFbSpanID:
			err = m.str(&f.SpanID)
		case binFbFeedbackSource:
			err = m.str(&f.FeedbackSource)
		case binFbType:
			err = m.str(&f.FeedbackType)
		case binFbValue:
			err = m.raw(&f.Value)
		case binFbComment:
			err = m.str(&f.Comment)
		case binFbSourceID:
			err = m.str(&f.SourceID)
		case binFbFeedbackUserID:
			err = m.str(&f.FeedbackUserID)
		case binFbCorrelation:
			f.Correlation, err = d.correlation(&m)
		case binFbMetadata:
			err = m.raw(&f.Metadata)
		case binFbSource:
			err = m.str(&f.Source)
		case binFbUserID:
			err = m.str(&f.UserID)
		case binFbExperimentID:
			err = m.str(&f.ExperimentID)
		default:
			err = m.skip()
		}
		if err != nil {
			return err
		}
	}
}
