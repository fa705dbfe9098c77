package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSetRuntimeDefaults(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	gc := debug.SetGCPercent(100)
	defer debug.SetGCPercent(gc)
	runtime.GOMAXPROCS(2)
	setRuntimeDefaults(func(string) string { return "2" }) // both set: left alone
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Fatalf("with GOMAXPROCS set, procs = %d, want 2", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("with GOGC set, GC percent = %d, want 100", got)
	}
	setRuntimeDefaults(func(string) string { return "" })
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("default procs = %d, want 1", got)
	}
	if got := debug.SetGCPercent(100); got != 150 {
		t.Fatalf("default GC percent = %d, want 150", got)
	}
}

func TestStopHeapSampling(t *testing.T) {
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 4096
	stopHeapSampling(func(string) string { return "http2debug=1,memprofilerate=4096" })
	if runtime.MemProfileRate != 4096 {
		t.Fatalf("with memprofilerate in GODEBUG, rate = %d, want it left at 4096", runtime.MemProfileRate)
	}
	stopHeapSampling(func(string) string { return "http2debug=1" })
	if runtime.MemProfileRate != 0 {
		t.Fatalf("rate = %d, want 0", runtime.MemProfileRate)
	}
}

func TestFinish(t *testing.T) {
	exited := make(chan int, 1)
	exit := func(code int) { exited <- code }

	// A signal that run saw does not cut the wait for the log.
	late := make(chan os.Signal, 1)
	late <- os.Interrupt
	drained := false
	finish(1, late, func() { drained = true }, exit)
	if code := <-exited; code != 1 || !drained {
		t.Fatalf("exit(%d), drained %v; want exit(1) after the drain", code, drained)
	}

	// A signal during the wait ends it, with the sidecar's code.
	release := make(chan struct{})
	defer close(release)
	go finish(1, late, func() { <-release }, exit)
	select {
	case code := <-exited:
		t.Fatalf("exit(%d) before the drain ended or a signal came", code)
	case <-time.After(20 * time.Millisecond):
	}
	late <- syscall.SIGTERM
	select {
	case code := <-exited:
		if code != 1 {
			t.Fatalf("exit(%d) after a late signal, want exit(1)", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a late signal did not end the wait")
	}
}

func TestRuntimeVersion(t *testing.T) {
	for in, want := range map[string]string{"dev": "edge", "": "edge", "v1.4.0": "1.4.0", "1.4.0-rc.1": "1.4.0-rc.1"} {
		if got := runtimeVersion(in); got != want {
			t.Errorf("runtimeVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoggerAndSkippedInit(t *testing.T) {
	for _, disabled := range [][]string{nil, {"subscribe"}, {"config"}} {
		var out strings.Builder
		o := &Options{AppFlags: AppFlags{AppID: "a"}, APIFlags: APIFlags{DisableInitEndpoints: disabled}}
		warnSkippedInit(newLogger(o, &out), o)
		want := slices.Contains(disabled, "config")
		if got := strings.Contains(out.String(), "Skipping programmatic dapr configuration loading"); got != want {
			t.Errorf("disabled %v: logged %q", disabled, out.String())
		}
	}
}
