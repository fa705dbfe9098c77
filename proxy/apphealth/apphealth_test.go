package apphealth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestCheckerHTTP: unhealthy until the first good probe, unhealthy again
// after threshold failed probes in a row, healthy after one good probe.
func TestCheckerHTTP(t *testing.T) {
	var up atomic.Bool
	var probes atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probes.Add(1)
		if r.URL.Path != "/healthz" || !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer app.Close()
	c := New(Config{Probe: HTTPProbe(app.Client(), app.URL+"/healthz"), Interval: 20 * time.Millisecond, Threshold: 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = c.Run(ctx) }()

	wait := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for c.Healthy() != want {
			if time.Now().After(deadline) {
				t.Fatalf("healthy did not become %v", want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	select {
	case <-c.Unhealthy():
	default:
		t.Fatal("healthy before any probe")
	}
	up.Store(true)
	wait(true)
	unhealthy := c.Unhealthy()
	select {
	case <-unhealthy:
		t.Fatal("Unhealthy closed while healthy")
	default:
	}
	up.Store(false)
	start := probes.Load()
	wait(false)
	if n := probes.Load() - start; n < 3 {
		t.Fatalf("unhealthy after %d failed probes, want 3", n)
	}
	select {
	case <-unhealthy:
	default:
		t.Fatal("Unhealthy not closed after the app became unhealthy")
	}
	up.Store(true)
	wait(true)
}
