package resiliency

import (
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func TestEjector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []string
		e := NewEjector(EjectorConfig{
			BaseEjection: 30 * time.Second, MaxEjection: 100 * time.Second,
			OnEject:  func(a string, d time.Duration) { events = append(events, fmt.Sprintf("eject %s %s", a, d)) },
			OnReturn: func(a string) { events = append(events, "return "+a) },
		})
		pool := []string{"a", "b", "c"}
		if got := e.Filter(pool); !slices.Equal(got, pool) {
			t.Fatalf("Filter = %v", got)
		}
		fail := func(addr string, n int) {
			for range n {
				e.Report(addr, errBoom)
			}
		}
		fail("a", 4)
		e.Report("a", nil) // a success resets the streak
		fail("a", 4)
		if !e.Allowed("a") {
			t.Fatal("ejected before 5 consecutive failures")
		}
		fail("a", 1)
		if e.Allowed("a") || !slices.Equal(e.Filter(pool), []string{"b", "c"}) {
			t.Fatal("a not ejected after 5 consecutive failures")
		}
		// At most 50% of 3 instances = 1 may be out at once.
		fail("b", 10)
		if !e.Allowed("b") {
			t.Error("b ejected beyond the max ejected fraction")
		}
		// Client errors do not count.
		for range 10 {
			e.Report("c", &StatusError{HTTP: 404})
		}
		if !e.Allowed("c") {
			t.Error("404s ejected c")
		}
		time.Sleep(30*time.Second + time.Millisecond)
		if !e.Allowed("a") {
			t.Fatal("a not back after 30s")
		}
		fail("a", 5) // ejected again at once: 60s
		time.Sleep(59 * time.Second)
		if e.Allowed("a") {
			t.Fatal("second ejection shorter than 60s")
		}
		time.Sleep(time.Second + time.Millisecond)
		fail("a", 5) // third: 120s, capped at 100s
		time.Sleep(100*time.Second + time.Millisecond)
		if !e.Allowed("a") {
			t.Fatal("ejection not capped at MaxEjection")
		}
		// Healthy for 2 base periods: the multiplier decays from 3 to 1.
		time.Sleep(60 * time.Second)
		fail("a", 5)
		want := []string{"eject a 30s", "return a", "eject a 1m0s", "return a", "eject a 1m40s", "return a", "eject a 1m0s"}
		if !slices.Equal(events, want) {
			t.Errorf("events = %q\nwant     %q", events, want)
		}
	})
}

func TestEjectorSmallPools(t *testing.T) {
	one := NewEjector(EjectorConfig{})
	for range 20 {
		one.Report("only", errBoom)
	}
	if !one.Allowed("only") {
		t.Error("the only instance was ejected")
	}
	all := NewEjector(EjectorConfig{MaxEjectedFraction: 1})
	pool := []string{"a", "b"}
	all.Filter(pool)
	for range 5 {
		all.Report("a", errBoom)
		all.Report("b", errBoom)
	}
	if all.Allowed("a") || all.Allowed("b") {
		t.Fatal("both should be ejected with fraction 1")
	}
	if got := all.Filter(pool); !slices.Equal(got, pool) {
		t.Errorf("Filter with all ejected = %v, want the whole pool", got)
	}
	all.Forget("a")
	if !all.Allowed("a") || len(all.Ejected()) != 1 {
		t.Errorf("Forget: allowed %v, ejected %v", all.Allowed("a"), all.Ejected())
	}
	var nilE *Ejector
	if !nilE.Allowed("x") {
		t.Error("nil Ejector must allow")
	}
	nilE.Report("x", errBoom)
}
