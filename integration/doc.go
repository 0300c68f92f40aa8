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
// Run it with its own timeout, apart from the unit tests:
//
//	go test -v -timeout 30m ./integration/
//
// README.md lists the scenarios, what each proves, and the environment variables that
// size them (SPANPIPE_IT_*).
package integration
