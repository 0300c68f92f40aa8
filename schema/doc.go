// Package schema is spanpipe's event model and its wire form.
//
// Every signal travels in one versioned envelope, [Event]: span lifecycle events
// (span_started, span_updated, span_ended, each a full snapshot of the span), logs,
// metrics, scores and feedback. Field names follow Mastra's exported types so that a
// producer written in another language can publish the same JSON.
//
// Span snapshots carry a per-span monotonic [Span.Version]; stores keep the highest
// version of a span, and on a tie the highest [Span.Rank] (ended > updated > started),
// which makes redelivery and out-of-order arrival harmless.
//
// The codec of a Kafka record is named by its [HeaderCodec] header (JSON when absent),
// so codecs can be added without breaking existing topics; a record of an unknown one
// is not decoded, and the consumer dead-letters it. [Decode] validates what it decodes (times must lie in [MinTime, MaxTime], what every sink stores) and
// normalises it (hex ids lower case, Mastra's deprecated names copied to the current
// ones). Lone UTF-16 surrogate escapes, which JavaScript producers emit, are replaced
// with U+FFFD and reported in [Event.Repairs]. Every error is a *[DecodeError]
// carrying the record's signal when its type was read ([SignalOfError]) and wrapping
// a *[SyntaxError], a *[ValidationError] (which matches [ErrInvalidEvent]) naming the
// field at fault, [ErrUnsupportedVersion] for an envelope newer than this build, or
// [ErrUnknownCodec].
//
// Two codecs exist. [CodecJSON] ("json", the default and what a record without the
// header is) is Mastra's JSON, which any producer can write. [CodecBinary]
// ("spanpipe-bin/v1") is the same [Event] in a compact binary form for Go producers
// (producer.Config.Codec): a version byte, then fields as varint keys with
// length-prefixed values, payloads (attributes, metadata, input, output...) carried as
// their JSON text; its wire form is documented on [CodecBinary]. A consumer decodes it
// several times faster, since it reads lengths instead of scanning for quotes and
// member names. Both go through the same validation and normalisation and give the
// same event (times in UTC), with the same errors: the binary decoder checks every
// length against the bytes left, allocates nothing in proportion to a length it read,
// rejects a repeated field (as JSON rejects a duplicate name), and validates payloads
// as JSON does. [Encode] and [EncodeBinary] (or [EncodeAs] with a codec name) write
// them; both refuse what the other could not carry (invalid UTF-8, a payload that is
// not JSON, a float that is not finite).
//
// JSON span events are decoded by a hand-written scanner over the record's bytes
// (payloads checked by the binary codec's JSON check), then, for what it does not
// take (\u escapes, escaped member names, nulls, other signals, every bad record), by a
// walk over jsontext tokens; anything else is decoded by json.Unmarshal's reflection,
// which is the reference for errors and edge cases (the fuzz tests hold the three to
// the same result, and Decode to the reflection decoder alone).
//
// All functions are safe for concurrent use. The package starts no goroutines and emits
// no metrics.
package schema
