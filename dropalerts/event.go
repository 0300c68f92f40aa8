package dropalerts

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/spanpipe/spanpipe/schema"
)

// EventVersion is the schema version of [Event].
const EventVersion = 1

// Reason says why data was lost. Alert on it.
type Reason string

// Drop reasons. Each names one loss path; README lists them all.
const (
	// ReasonUnsupportedStorage: the sink a signal is routed to does not store it.
	ReasonUnsupportedStorage Reason = "unsupported-storage"
	// ReasonRetryExhausted: the sink kept failing through the whole retry schedule.
	ReasonRetryExhausted Reason = "retry-exhausted"
	// ReasonSinkRejected: the sink refused the batch with an error retrying cannot fix.
	ReasonSinkRejected Reason = "sink-rejected"
	// ReasonDecodeError: the record is not a valid event (poison record).
	ReasonDecodeError Reason = "decode-error"
	// ReasonTooLarge: the record is larger than the configured maximum.
	ReasonTooLarge Reason = "too-large"
	// ReasonProducerBufferFull: the application emitted faster than Kafka accepted.
	ReasonProducerBufferFull Reason = "producer-buffer-full"
	// ReasonProducerSendFailed: Kafka did not accept a record the producer sent.
	ReasonProducerSendFailed Reason = "producer-send-failed"
	// ReasonProducerEncodeError: the application emitted an event that could not be encoded.
	ReasonProducerEncodeError Reason = "producer-encode-error"
	// ReasonRetentionExpired: Kafka deleted records (retention.ms or retention.bytes,
	// or DeleteRecords) before the consumer group read them; the group resumes at the
	// log start. No payload is left, so there are no dead letters.
	ReasonRetentionExpired Reason = "retention-expired"
	// ReasonSkippedByOperator: an operator moved a consumer group past an offset
	// range (`spanpipe offsets skip`); the event carries the range and the reason
	// given. The records stay in Kafka until retention deletes them.
	ReasonSkippedByOperator Reason = "skipped-by-operator"
)

// AllReasons lists every [Reason] in the order README documents them: the allow-list
// for anything that turns a reason read from the drop topic into a label, a
// threshold key or a suggested command.
var AllReasons = []Reason{
	ReasonDecodeError, ReasonTooLarge, ReasonUnsupportedStorage, ReasonRetryExhausted,
	ReasonSinkRejected, ReasonRetentionExpired, ReasonSkippedByOperator, ReasonProducerBufferFull, ReasonProducerSendFailed,
	ReasonProducerEncodeError,
}

// Known reports whether r is one of [AllReasons].
func (r Reason) Known() bool { return slices.Contains(AllReasons, r) }

// ValidTopicName reports whether s is a legal Kafka topic name: 1 to 249 characters
// of [a-zA-Z0-9._-], and not "." or "..". Topic names read from the drop topic are
// checked with it before they go into a suggested command.
func ValidTopicName(s string) bool {
	if s == "" || len(s) > 249 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Values of [Event.Component] and of the component label of
// spanpipe_dropped_records_total.
const (
	ComponentConsumer = "consumer"
	ComponentProducer = "producer"
	// ComponentAlert is `spanpipe alert`, which counts drop events it cannot read.
	ComponentAlert = "alert"
	// ComponentOperator is a person acting through the command line (`spanpipe
	// offsets skip`).
	ComponentOperator = "operator"
)

// Headers written on dead letters and drop events.
const (
	HeaderKind            = "spanpipe-kind" // "drop-event" or "dead-letter"
	HeaderReason          = "spanpipe-drop-reason"
	HeaderError           = "spanpipe-drop-error"
	HeaderSourceTopic     = "spanpipe-source-topic"
	HeaderSourcePartition = "spanpipe-source-partition"
	HeaderSourceOffset    = "spanpipe-source-offset"
	HeaderAttempts        = "spanpipe-attempts"
	HeaderFirstFailure    = "spanpipe-first-failure"
	HeaderComponent       = "spanpipe-component"
	// HeaderTruncated ("true") and HeaderOriginalSize (bytes) mark a dead letter whose
	// value was cut to fit the dead-letter topic's max.message.bytes: it is kept, and
	// says so, instead of blocking its partition. Replay refuses it.
	HeaderTruncated    = "spanpipe-drop-truncated"
	HeaderOriginalSize = "spanpipe-drop-original-size"
	// HeaderReplayOf and HeaderReplayCount are a replayed record's lineage: the
	// coordinates (topic/partition/offset) of the first dead letter it descends from,
	// and how often it was replayed. Replay sets them on what it re-publishes; they
	// are ordinary headers of that record, so a copy that fails again carries them
	// into its own dead letter, and the next replay knows it is the same failure.
	HeaderReplayOf    = "spanpipe-replay-of"
	HeaderReplayCount = "spanpipe-replay-count"

	KindDropEvent  = "drop-event"
	KindDeadLetter = "dead-letter"
)

// Event is one drop event: a count of records of one signal lost for one reason.
type Event struct {
	Type          string        `json:"type"` // always "drop"
	SchemaVersion int           `json:"schemaVersion"`
	Signal        schema.Signal `json:"signal,omitempty"`
	Reason        Reason        `json:"reason"`
	Count         int           `json:"count"`
	FirstTime     time.Time     `json:"firstTime"`
	LastTime      time.Time     `json:"lastTime"`
	// Component is "consumer" or "producer"; Instance names which one (consumer group
	// and member, or the producer's service name and client id).
	Component string `json:"component"`
	Instance  string `json:"instance,omitempty"`
	Sink      string `json:"sink,omitempty"`
	// Error is the sanitized error text: one line, bounded length, no stack.
	Error  string  `json:"error,omitempty"`
	Source *Source `json:"source,omitempty"`
	// SampleTraceIDs are up to five trace ids among the dropped records.
	SampleTraceIDs []string `json:"sampleTraceIds,omitempty"`
	// DeadLetterTopic is where the original records are, when there are any.
	DeadLetterTopic string `json:"deadLetterTopic,omitempty"`
	DeadLetters     int    `json:"deadLetters,omitempty"`
}

// Source is the offset range the dropped records came from.
type Source struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	FirstOffset int64  `json:"firstOffset"`
	LastOffset  int64  `json:"lastOffset"`
}

// MaxSampleTraceIDs bounds [Event.SampleTraceIDs].
const MaxSampleTraceIDs = 5

// Marshal encodes the event as JSON.
func (e *Event) Marshal() ([]byte, error) {
	c := *e
	c.Type = "drop"
	c.SchemaVersion = EventVersion
	return json.Marshal(&c, json.Deterministic(true))
}

// ParseEvent decodes a drop event.
func ParseEvent(b []byte) (*Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// SanitizeError makes an error fit for a drop event and a Kafka header: first line
// only (stacks stay out), at most 512 bytes, credentials in URLs masked.
func SanitizeError(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	s = maskURLCredentials(s)
	const max = 512
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// maskURLCredentials hides "user:password@" in DSNs that errors sometimes echo.
func maskURLCredentials(s string) string {
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			return s
		}
		rest := s[i+3:]
		at := strings.IndexByte(rest, '@')
		end := strings.IndexAny(rest, " /\"'")
		if at < 0 || (end >= 0 && end < at) {
			return s[:i+3] + maskURLCredentials(rest)
		}
		return s[:i+3] + "***@" + maskURLCredentials(rest[at+1:])
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
