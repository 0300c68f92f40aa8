package consumer

import "time"

// SetLagRefreshInterval shortens the paused-lag refresh for a test; it returns the
// function that restores it.
func SetLagRefreshInterval(d time.Duration) func() {
	old := lagRefreshInterval
	lagRefreshInterval = d
	return func() { lagRefreshInterval = old }
}
