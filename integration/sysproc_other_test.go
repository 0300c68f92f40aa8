//go:build !linux

package integration

import "syscall"

// sysProcAttr: only Linux can tie a child's life to ours (Pdeathsig).
func sysProcAttr() *syscall.SysProcAttr { return nil }
