//go:build linux && cgo

package duckdb

/*
#include <stddef.h>
#include <sys/types.h>
#include <stdio.h>

// DuckDB's Linux builds bundle jemalloc under this prefix. The reference is weak, so
// that a DuckDB built without it still links; the function is then null.
extern int duckdb_je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) __attribute__((weak));

// spanpipe_je_decay sets the dirty and muzzy decay of every arena jemalloc has and of
// those it creates later, where it can.
static void spanpipe_je_decay(ssize_t ms) {
	if (!duckdb_je_mallctl) return;
	unsigned n = 0;
	size_t len = sizeof(n);
	if (duckdb_je_mallctl("arenas.narenas", &n, &len, NULL, 0) != 0) return;
	char name[64];
	for (unsigned i = 0; i < n; i++) {
		// Arenas not initialised yet fail here and take the default set below.
		snprintf(name, sizeof(name), "arena.%u.dirty_decay_ms", i);
		duckdb_je_mallctl(name, NULL, NULL, &ms, sizeof(ms));
		snprintf(name, sizeof(name), "arena.%u.muzzy_decay_ms", i);
		duckdb_je_mallctl(name, NULL, NULL, &ms, sizeof(ms));
	}
	duckdb_je_mallctl("arenas.dirty_decay_ms", NULL, NULL, &ms, sizeof(ms));
	duckdb_je_mallctl("arenas.muzzy_decay_ms", NULL, NULL, &ms, sizeof(ms));
}

static ssize_t spanpipe_je_get(const char *name) {
	if (!duckdb_je_mallctl) return -2;
	ssize_t v = -2;
	size_t len = sizeof(v);
	if (duckdb_je_mallctl(name, &v, &len, NULL, 0) != 0) return -2;
	return v;
}

static ssize_t spanpipe_je_decay_new(void) { return spanpipe_je_get("arenas.dirty_decay_ms"); }
static ssize_t spanpipe_je_decay_arena0(void) { return spanpipe_je_get("arena.0.dirty_decay_ms"); }
*/
import "C"

// setJemallocDecay sets how long, in milliseconds, DuckDB's jemalloc keeps freed
// pages before it returns them to the operating system. Nothing happens with a
// DuckDB built without jemalloc; TestAllocatorReturnsFreedPages tells whether a
// DuckDB upgrade still takes it.
func setJemallocDecay(ms int) {
	C.spanpipe_je_decay(C.ssize_t(ms))
}

// jemallocDecay returns the dirty decay, in milliseconds, of DuckDB's jemalloc for
// new arenas and of its first arena; -2 where there is none to read.
func jemallocDecay() (newArenas, arena0 int) {
	return int(C.spanpipe_je_decay_new()), int(C.spanpipe_je_decay_arena0())
}
