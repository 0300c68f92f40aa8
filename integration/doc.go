// Package integration holds spanpipe's real-broker tier: end-to-end and fault tests
// that run the spanpipe binary as real processes against a real Kafka broker and check
// the DuckDB files they write.
//
// Everything is in the _test.go files; this package has no API. The broker is, in
// order: the one named by KAFKA_BROKERS; a testcontainers-go Kafka container when a
// Docker engine answers; or a broker started from the project's local launcher
// (deploy/local/kafka.sh, real Apache Kafka jars from Maven Central). The tests skip
// only when none of these works, and say what was tried. Scenarios that kill or
// restart brokers, or need three of them, start launcher instances of their own.
//
// The TestClickHouse* scenarios write to a real ClickHouse instead of DuckDB files: the
// server named by CLICKHOUSE_DSN, else one started by deploy/local/clickhouse.sh (the
// engine of PyPI's chdb-core); the scenario that kills ClickHouse starts its own.
//
// The suite builds spanpipe with the spanpipe_fault build tag: only such a binary has
// the sink fault hook (SPANPIPE_FAULT_FILE, internal/app/fault_hook.go) that the fault
// scenarios use to make a consumer's sink fail, hang or reject from outside; a
// release build ignores the variable.
//
// TestChaosSoak combines the faults the other scenarios take one at a time (consumer
// kill -9, broker restart, sink hangs and errors, membership changes, records deleted
// under paused consumers, poison) on a seeded random schedule, and checks a ledger of
// every acknowledged record at the end. It prints its seed; SPANPIPE_IT_CHAOS_SEED
// (with the same SPANPIPE_IT_CHAOS_MINUTES) replays a failing schedule.
//
// Run it with its own timeout, apart from the unit tests:
//
//	go test -v -timeout 30m ./integration/
//
// README.md lists the scenarios, what each proves, and the environment variables that
// size them (SPANPIPE_IT_*).
package integration
