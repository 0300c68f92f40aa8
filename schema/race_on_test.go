//go:build race

package schema_test

// raceEnabled: the race detector allocates on its own and makes sync.Pool drop
// items at random, so allocation counts mean nothing under it.
const raceEnabled = true
