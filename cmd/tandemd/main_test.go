package main

import (
	"runtime"
	"testing"
)

func TestSetProcs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	runtime.GOMAXPROCS(2)
	setProcs(func(string) string { return "2" }) // GOMAXPROCS set: left alone
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Fatalf("with GOMAXPROCS set, procs = %d, want 2", got)
	}
	setProcs(func(string) string { return "" })
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("default procs = %d, want 1", got)
	}
}
