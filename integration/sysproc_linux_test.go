package integration

import "syscall"

// sysProcAttr makes the kernel kill a consumer process when the test binary dies
// (go test's -timeout panic, a crash), so that none outlives the run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
