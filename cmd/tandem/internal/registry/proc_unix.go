//go:build unix

package registry

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if err == nil || errors.Is(err, syscall.EPERM) {
		// A zombie still answers kill(0); treat it as gone.
		return !zombie(pid)
	}
	return false
}

// procStat returns the fields of /proc/<pid>/stat after the command name.
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// startTime is field 22 of /proc/<pid>/stat; 0 where /proc is missing.
func startTime(pid int) uint64 {
	f := procStat(pid)
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

func zombie(pid int) bool {
	f := procStat(pid)
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

// Signal sends sig to the process group led by p (our children are group
// leaders) and to p itself, if p is still the same process.
func (p Proc) Signal(sig syscall.Signal) {
	if !p.Alive() {
		return
	}
	_ = syscall.Kill(-p.PID, sig)
	_ = syscall.Kill(p.PID, sig)
}
