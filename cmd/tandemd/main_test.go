package main

import (
	"runtime"
	"runtime/debug"
	"testing"
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
