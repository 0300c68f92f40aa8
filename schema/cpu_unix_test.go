//go:build unix

package schema_test

import (
	"syscall"
	"time"
)

// processCPU is the process's user + system CPU time so far: on a shared machine,
// where a benchmark's wall time depends on how many others run, CPU per op is the
// comparable figure.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
