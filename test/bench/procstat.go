package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ProcCPU reads a process's CPU time (user + system, all threads) from
// /proc/<pid>/stat.
type ProcCPU struct {
	// Tick is the length of one clock tick (1/CLK_TCK), the unit of the
	// utime and stime fields.
	Tick time.Duration
}

// NewProcCPU asks getconf for CLK_TCK; it falls back to 100 Hz, the value
// on every Linux architecture Go supports.
func NewProcCPU() ProcCPU {
	hz := int64(100)
	if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && v > 0 {
			hz = v
		}
	}
	return ProcCPU{Tick: time.Second / time.Duration(hz)}
}

// CPUOrUnknown is CPU of pid, or -1 when pid is 0 (a process not found)
// or its CPU time cannot be read.
func (p ProcCPU) CPUOrUnknown(pid int) time.Duration {
	if pid == 0 {
		return -1
	}
	d, err := p.CPU(pid)
	if err != nil {
		return -1
	}
	return d
}

// CPU returns utime+stime of pid.
func (p ProcCPU) CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu time of pid %d (is it still running?): %w", pid, err)
	}
	ticks, err := parseStatTicks(b)
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return time.Duration(ticks) * p.Tick, nil
}

// parseStatTicks returns utime+stime (fields 14 and 15 of proc(5)) from the
// content of /proc/<pid>/stat. The command name (field 2) is in parentheses
// and may itself hold spaces and parentheses, so fields are counted from the
// last ')'.
func parseStatTicks(b []byte) (int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc stat: no ')' after the command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc stat: %d fields after the command name, want at least 13", len(f))
	}
	utime, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc stat utime %q: %w", f[11], err)
	}
	stime, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc stat stime %q: %w", f[12], err)
	}
	return utime + stime, nil
}

// Mem is a process's resident memory from /proc/<pid>/status, in bytes.
type Mem struct {
	RSS  uint64 // VmRSS: resident now
	HWM  uint64 // VmHWM: peak resident since start
	File uint64 // RssFile: the part of RSS that is mapped file pages (the binary's own)
	// Anon is RssAnon: the process's private memory (heap, stacks), what
	// each further sidecar on a host costs; File pages are shared.
	Anon uint64
}

// ReadMem reads VmRSS, VmHWM, RssFile and RssAnon of pid.
func ReadMem(pid int) (Mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, fmt.Errorf("read memory of pid %d (is it still running?): %w", pid, err)
	}
	m, err := parseStatus(b)
	if err != nil {
		return Mem{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return m, nil
}

// parseStatus extracts VmRSS, VmHWM, RssFile and RssAnon ("VmRSS:    12345
// kB") from the content of /proc/<pid>/status.
func parseStatus(b []byte) (Mem, error) {
	var m Mem
	var seen int
	for _, line := range strings.Split(string(b), "\n") {
		key, rest, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM" && key != "RssFile" && key != "RssAnon") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return Mem{}, fmt.Errorf("parse /proc status %s: unexpected %q", key, strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return Mem{}, fmt.Errorf("parse /proc status %s: %w", key, err)
		}
		switch key {
		case "VmRSS":
			m.RSS = kb * 1024
			seen++
		case "VmHWM":
			m.HWM = kb * 1024
			seen++
		case "RssAnon":
			m.Anon = kb * 1024
		default:
			m.File = kb * 1024
		}
	}
	if seen != 2 {
		return Mem{}, fmt.Errorf("parse /proc status: VmRSS or VmHWM missing (kernel threads and zombies have none)")
	}
	return m, nil
}

// RSSSampler polls VmRSS and RssAnon of some processes and keeps the
// highest value of each seen per process, to catch the resident size under
// load (VmHWM only says the peak since start, and has no private part).
type RSSSampler struct {
	pids    []int
	max     []uint64
	maxAnon []uint64
	stop    chan struct{}
	done    chan struct{}
}

// StartRSSSampler polls pids every interval until Stop.
func StartRSSSampler(interval time.Duration, pids ...int) *RSSSampler {
	s := &RSSSampler{
		pids: pids, max: make([]uint64, len(pids)), maxAnon: make([]uint64, len(pids)),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				s.sample()
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *RSSSampler) sample() {
	for i, pid := range s.pids {
		if m, err := ReadMem(pid); err == nil {
			s.max[i] = max(s.max[i], m.RSS)
			s.maxAnon[i] = max(s.maxAnon[i], m.Anon)
		}
	}
}

// Stop ends the sampling and returns the highest VmRSS seen per pid, in the
// order given to StartRSSSampler.
func (s *RSSSampler) Stop() []uint64 {
	close(s.stop)
	<-s.done
	return s.max
}

// AnonPeaks is the highest RssAnon seen per pid, in the order given to
// StartRSSSampler; call it after Stop.
func (s *RSSSampler) AnonPeaks() []uint64 {
	<-s.done
	return s.maxAnon
}

// PSS is a process's proportional set size from /proc/<pid>/smaps_rollup,
// in bytes: each shared page counted once across the processes that map it,
// so the sum over many sidecars is what they cost the host together.
type PSS struct {
	Total uint64 // Pss
	Anon  uint64 // Pss_Anon: private heap and stacks
	File  uint64 // Pss_File: the binary's pages, shared by every sidecar
}

// ReadPSS reads Pss, Pss_Anon and Pss_File of pid.
func ReadPSS(pid int) (PSS, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return PSS{}, fmt.Errorf("read smaps_rollup of pid %d (is it still running?): %w", pid, err)
	}
	p, err := parseSmapsRollup(b)
	if err != nil {
		return PSS{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return p, nil
}

// parseSmapsRollup extracts Pss, Pss_Anon and Pss_File ("Pss:   213 kB")
// from the content of /proc/<pid>/smaps_rollup.
func parseSmapsRollup(b []byte) (PSS, error) {
	var p PSS
	seen := false
	for _, line := range strings.Split(string(b), "\n") {
		key, rest, ok := strings.Cut(line, ":")
		if !ok || (key != "Pss" && key != "Pss_Anon" && key != "Pss_File") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return PSS{}, fmt.Errorf("parse smaps_rollup %s: unexpected %q", key, strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return PSS{}, fmt.Errorf("parse smaps_rollup %s: %w", key, err)
		}
		switch key {
		case "Pss":
			p.Total, seen = kb*1024, true
		case "Pss_Anon":
			p.Anon = kb * 1024
		default:
			p.File = kb * 1024
		}
	}
	if !seen {
		return PSS{}, fmt.Errorf("parse smaps_rollup: no Pss line (kernel threads have none)")
	}
	return p, nil
}
