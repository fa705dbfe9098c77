//go:build !linux

package runner

import "syscall"

func setPdeathsig(*syscall.SysProcAttr) {}
