// Package consumer is a Kafka consumer-group member. It owns everything Kafka: the
// assignment, offsets, pause and resume, lag, retention gaps. It feeds records to a
// [Batcher], hands the units the batcher seals to a [Writer], and commits what the
// writer reports durable. Both interfaces are declared here; package pipeline
// implements them.
//
// Goroutines: the poll loop (the goroutine that calls [Consumer.Run]) fetches and
// adds records, in order, while decoding goroutines it starts per poll decode the
// records ahead of it on every core (it waits for them before the next poll); Run
// also owns a writer goroutine, which
// writes queued units in order (merging those that queued up behind a slow write)
// and commits their offsets, and a lag goroutine. Run returns after all of them
// stopped. The group uses the cooperative-sticky balancer and
// kgo.BlockRebalanceOnPoll, so a rebalance never interleaves with adding a poll.
//
// Nothing blocks on a slow sink except the poll loop, and only when the batcher is
// full (fetching pauses: a slow sink means lag, never unbounded memory). When
// partitions are revoked the consumer seals its buffer and waits, at most
// RebalanceTimeout, until everything queued is written and committed; past that it
// lets them go without giving anything up: what is queued is written later, and
// commits are only ever sent for partitions this member owns. On shutdown it seals,
// drains within Config.ShutdownTimeout, commits, and leaves the group; what is not
// written by then is never committed and is redelivered.
//
// Retention: on assignment it reads the group's committed offsets, and for every
// poll it checks that each partition continues where it left off. A jump past the
// expected offset is checked against the log start offset: the part Kafka deleted
// (retention, DeleteRecords) is published as a retention-expired drop event with its
// exact range, through the [DropPublisher], before any later record is committed.
// Compaction and transaction markers also skip offsets and are not losses.
//
// Errors: Run returns nil after a clean shutdown, and the client error when the
// member cannot go on (group or topic authorization, SASL authentication), so that
// the process exits non-zero.
//
// Metrics:
//   - spanpipe_consumer_lag_records{topic,partition}: end offset minus the group's
//     committed offset, refreshed every 5s (a member that fetches but cannot store
//     shows lag).
//   - spanpipe_consumer_paused_partitions: partitions paused for backpressure.
//   - spanpipe_consumer_rebalances_total{event}: assigned, revoked, lost.
//   - spanpipe_consumer_commits_total{outcome}: ok or error.
//   - spanpipe_consumer_fetch_errors_total
//   - spanpipe_dropped_records_total{signal="unknown",reason="retention-expired",component="consumer"}
package consumer
