//go:build !linux || !cgo

package duckdb

// setJemallocDecay does nothing: DuckDB bundles jemalloc on Linux only.
func setJemallocDecay(int) {}

// jemallocDecay reports no jemalloc.
func jemallocDecay() (newArenas, arena0 int) { return -2, -2 }
