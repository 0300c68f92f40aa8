package dropalerts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrNotDeadLetter is returned by [ParseDeadLetter] for a record whose spanpipe-kind
// header is not "dead-letter" (a drop event, or a record that is not ours).
var ErrNotDeadLetter = errors.New("dropalerts: not a dead letter")

// ErrTruncated is returned by [OriginalRecord] for a dead letter whose value was cut
// to fit the dead-letter topic: re-publishing it would store a corrupt record.
var ErrTruncated = errors.New("dropalerts: dead letter was truncated; the original value is lost beyond its first bytes")

// DeadLetterInfo is what the headers of a dead letter say: why and where from. The
// record's key, value and timestamp are the original record's.
type DeadLetterInfo struct {
	Reason          Reason
	Error           string
	SourceTopic     string
	SourcePartition int32
	SourceOffset    int64
	// Attempts is how often the sink was tried (0 when the header is absent).
	Attempts int
	// FirstFailure is when the record first failed; zero when the header is absent.
	FirstFailure time.Time
	Component    string
	// Truncated is set when the value was cut to fit the dead-letter topic;
	// OriginalSize is then the original value's length in bytes.
	Truncated    bool
	OriginalSize int
	// ReplayOf and ReplayCount are the record's lineage ([HeaderReplayOf],
	// [HeaderReplayCount]), read from the original headers: empty and 0 for a record
	// that was never replayed.
	ReplayOf    string
	ReplayCount int
	// Headers are the original record's headers, in order, without the dead-letter
	// headers [Publisher] added.
	Headers []kgo.RecordHeader
}

// IsDeadLetterHeader reports whether key is one of the headers [Publisher] adds to a
// dead letter (replay strips them): spanpipe-kind, spanpipe-component,
// spanpipe-attempts, spanpipe-first-failure, and every spanpipe-drop-* and
// spanpipe-source-* header. Other spanpipe-* headers, such as spanpipe-codec, belong
// to the original record.
func IsDeadLetterHeader(key string) bool {
	switch key {
	case HeaderKind, HeaderComponent, HeaderAttempts, HeaderFirstFailure:
		return true
	}
	return strings.HasPrefix(key, "spanpipe-drop-") || strings.HasPrefix(key, "spanpipe-source-")
}

// headerValue returns the last value of key: [Publisher] appends its headers after
// the original ones, so the last occurrence is the dead letter's own.
func headerValue(hs []kgo.RecordHeader, key string) (string, bool) {
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].Key == key {
			return string(hs[i].Value), true
		}
	}
	return "", false
}

// Kind returns a record's spanpipe-kind header: [KindDropEvent], [KindDeadLetter],
// or "" when absent.
func Kind(r *kgo.Record) string {
	v, _ := headerValue(r.Headers, HeaderKind)
	return v
}

// ParseDeadLetter reads the headers of a dead letter. It returns [ErrNotDeadLetter]
// for other records, and an error naming the header when one that replay needs
// (reason, source topic, partition, offset) is missing or malformed.
func ParseDeadLetter(hs []kgo.RecordHeader) (*DeadLetterInfo, error) {
	if v, _ := headerValue(hs, HeaderKind); v != KindDeadLetter {
		return nil, ErrNotDeadLetter
	}
	var (
		d    DeadLetterInfo
		errs []error
		ok   bool
		v    string
	)
	need := func(key string) string {
		v, ok := headerValue(hs, key)
		if !ok || v == "" {
			errs = append(errs, fmt.Errorf("header %s missing", key))
		}
		return v
	}
	d.Reason = Reason(need(HeaderReason))
	d.SourceTopic = need(HeaderSourceTopic)
	if v = need(HeaderSourcePartition); v != "" {
		p, err := strconv.ParseInt(v, 10, 32)
		if err != nil || p < 0 {
			errs = append(errs, fmt.Errorf("header %s: %q is not a partition", HeaderSourcePartition, v))
		}
		d.SourcePartition = int32(p)
	}
	if v = need(HeaderSourceOffset); v != "" {
		o, err := strconv.ParseInt(v, 10, 64)
		if err != nil || o < 0 {
			errs = append(errs, fmt.Errorf("header %s: %q is not an offset", HeaderSourceOffset, v))
		}
		d.SourceOffset = o
	}
	d.Error, _ = headerValue(hs, HeaderError)
	d.Component, _ = headerValue(hs, HeaderComponent)
	if v, ok = headerValue(hs, HeaderAttempts); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("header %s: %q is not a count", HeaderAttempts, v))
		}
		d.Attempts = n
	}
	if v, ok = headerValue(hs, HeaderFirstFailure); ok && v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("header %s: %w", HeaderFirstFailure, err))
		} else if y := t.UTC().Year(); y < 1 || y > 9999 {
			// Publisher writes UTC; such a time could not be written back (fuzzing).
			errs = append(errs, fmt.Errorf("header %s: %q is out of range", HeaderFirstFailure, v))
		}
		d.FirstFailure = t
	}
	if v, ok = headerValue(hs, HeaderOriginalSize); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("header %s: %q is not a size", HeaderOriginalSize, v))
		}
		d.OriginalSize = n
	}
	if v, ok = headerValue(hs, HeaderTruncated); ok {
		if v != "true" {
			errs = append(errs, fmt.Errorf("header %s: %q is not \"true\"", HeaderTruncated, v))
		}
		d.Truncated = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("dropalerts: malformed dead letter: %w", err)
	}
	for _, h := range hs {
		if !IsDeadLetterHeader(h.Key) {
			d.Headers = append(d.Headers, h)
		}
	}
	d.ReplayOf, _ = headerValue(d.Headers, HeaderReplayOf)
	if v, ok := headerValue(d.Headers, HeaderReplayCount); ok {
		d.ReplayCount, _ = strconv.Atoi(v) // a malformed count reads as 0: lineage is advice, not a contract
	}
	return &d, nil
}

// Root returns the coordinates of the first dead letter of d's lineage: its
// [DeadLetterInfo.ReplayOf], or at for a record that was never replayed. Dead letters
// with one root are one failure, however often it was replayed.
func (d *DeadLetterInfo) Root(at *kgo.Record) string {
	if d.ReplayOf != "" {
		return d.ReplayOf
	}
	return Coordinates(at)
}

// Coordinates names a record's place: topic/partition/offset.
func Coordinates(r *kgo.Record) string {
	return r.Topic + "/" + itoa(int64(r.Partition)) + "/" + itoa(r.Offset)
}

// AppendHeaders appends the original headers followed by the dead-letter headers, in
// the layout [Publisher] writes, and returns the extended slice.
func (d *DeadLetterInfo) AppendHeaders(dst []kgo.RecordHeader) []kgo.RecordHeader {
	dst = append(dst, d.Headers...)
	dst = append(dst,
		kgo.RecordHeader{Key: HeaderKind, Value: []byte(KindDeadLetter)},
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(d.Reason)},
		kgo.RecordHeader{Key: HeaderError, Value: []byte(d.Error)},
		kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(d.SourceTopic)},
		kgo.RecordHeader{Key: HeaderSourcePartition, Value: []byte(itoa(int64(d.SourcePartition)))},
		kgo.RecordHeader{Key: HeaderSourceOffset, Value: []byte(itoa(d.SourceOffset))},
		kgo.RecordHeader{Key: HeaderAttempts, Value: []byte(itoa(int64(d.Attempts)))},
		kgo.RecordHeader{Key: HeaderComponent, Value: []byte(d.Component)},
	)
	if !d.FirstFailure.IsZero() {
		dst = append(dst, kgo.RecordHeader{Key: HeaderFirstFailure, Value: []byte(d.FirstFailure.UTC().Format(time.RFC3339Nano))})
	}
	if d.Truncated {
		dst = append(dst, kgo.RecordHeader{Key: HeaderTruncated, Value: []byte("true")})
	}
	if d.Truncated || d.OriginalSize > 0 {
		dst = append(dst, kgo.RecordHeader{Key: HeaderOriginalSize, Value: []byte(itoa(int64(d.OriginalSize)))})
	}
	return dst
}

// EventRecord is the one way a drop event becomes a Kafka record (the consumer's
// publisher and the producer's reporter both use it): keyed by reason, with the kind,
// reason and component headers that let readers skip the body.
func EventRecord(topic string, ev Event) (*kgo.Record, error) {
	body, err := ev.Marshal()
	if err != nil {
		return nil, fmt.Errorf("dropalerts: encode drop event: %w", err)
	}
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(ev.Reason),
		Value: body,
		Headers: []kgo.RecordHeader{
			{Key: HeaderKind, Value: []byte(KindDropEvent)},
			{Key: HeaderReason, Value: []byte(ev.Reason)},
			{Key: HeaderComponent, Value: []byte(ev.Component)},
		},
	}, nil
}

// OriginalRecord rebuilds the record a dead letter was made from, ready to produce:
// source topic and partition, original key, value, headers and timestamp. It returns
// [ErrNotDeadLetter] for other records and [ErrTruncated] (with the parsed info) for
// a dead letter whose value was cut.
func OriginalRecord(dl *kgo.Record) (*kgo.Record, *DeadLetterInfo, error) {
	d, err := ParseDeadLetter(dl.Headers)
	if err != nil {
		return nil, nil, err
	}
	if d.Truncated {
		return nil, d, fmt.Errorf("%w (%d of %d bytes kept)", ErrTruncated, len(dl.Value), d.OriginalSize)
	}
	return &kgo.Record{
		Topic:     d.SourceTopic,
		Partition: d.SourcePartition,
		Key:       dl.Key,
		Value:     dl.Value,
		Headers:   d.Headers,
		Timestamp: dl.Timestamp,
	}, d, nil
}
