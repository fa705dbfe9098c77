package resiliency

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

const cbSpec = "policies: {circuitBreakers: {cb: {maxRequests: 1, timeout: 10s, trip: consecutiveFailures > 2}}}\ntargets: {apps: {orders: {circuitBreaker: cb}}}"

func TestBreakerTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := buildSet(t, cbSpec, WithHooks(rec.hooks()))
		p := s.ForApp("orders")
		state := func() BreakerState { st, _ := p.BreakerState(); return st }
		ctx := t.Context()
		f := failing(errBoom)
		for range 3 {
			if _, err := Do(ctx, p, f.op); !errors.Is(err, errBoom) {
				t.Fatalf("closed breaker should pass the op's error, got %v", err)
			}
		}
		if state() != StateOpen || f.n() != 3 {
			t.Fatalf("after 3 failures: state %s, calls %d; want open after 3", state(), f.n())
		}
		// Open: fail fast, op not called, message says when it tries again.
		time.Sleep(4 * time.Second)
		_, err := Do(ctx, s.ForApp("orders"), f.op) // state persists across lookups
		var boe *BreakerOpenError
		if !errors.Is(err, ErrBreakerOpen) || !errors.As(err, &boe) || f.n() != 3 {
			t.Fatalf("open breaker: err %v, calls %d", err, f.n())
		}
		want := `circuit breaker "cb" for app "orders" is open; failing fast until `
		if msg := err.Error(); !strings.HasPrefix(msg, want) || !strings.Contains(msg, "(in 6s)") {
			t.Errorf("message = %q", msg)
		}
		// After the timeout: half-open, one trial call at a time.
		time.Sleep(6*time.Second + time.Millisecond)
		if state() != StateHalfOpen {
			t.Fatalf("state %s, want half-open", state())
		}
		release := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			_, err := Do(ctx, p, func(context.Context) (int, error) { <-release; return 0, errBoom })
			if !errors.Is(err, errBoom) {
				t.Errorf("trial call: %v", err)
			}
		})
		synctest.Wait()
		_, err = Do(ctx, p, f.op)
		if !errors.As(err, &boe) || !boe.HalfOpen || !strings.Contains(err.Error(), "half-open") {
			t.Errorf("second call while half-open: %v", err)
		}
		close(release)
		wg.Wait()
		// The trial failed: open again, for another full timeout.
		if state() != StateOpen {
			t.Fatalf("failed trial: state %s, want open", state())
		}
		time.Sleep(10*time.Second + time.Millisecond)
		if _, err := Do(ctx, p, failing(nil).op); err != nil {
			t.Fatalf("successful trial: %v", err)
		}
		if state() != StateClosed {
			t.Fatalf("after a successful trial: %s, want closed", state())
		}
		wantT := []string{"closed->open", "open->half-open", "half-open->open", "open->half-open", "half-open->closed"}
		if strings.Join(rec.transitions, ",") != strings.Join(wantT, ",") {
			t.Errorf("transitions = %v, want %v", rec.transitions, wantT)
		}
	})
}

func TestBreakerIgnoresClientErrorsAndCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := buildSet(t, cbSpec).ForApp("orders")
		for range 10 {
			Do(t.Context(), p, failing(&StatusError{HTTP: 404}).op)
			Do(t.Context(), p, failing(context.Canceled).op)
		}
		if st, _ := p.BreakerState(); st != StateClosed {
			t.Errorf("client errors tripped the breaker: %s", st)
		}
		for range 3 {
			Do(t.Context(), p, failing(&StatusError{HTTP: 503}).op)
		}
		if st, _ := p.BreakerState(); st != StateOpen {
			t.Errorf("503s did not trip the breaker: %s", st)
		}
	})
}

func TestBreakerStopsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spec := "policies: {retries: {r: {duration: 1s, maxRetries: 10}}, circuitBreakers: {cb: {trip: consecutiveFailures >= 3}}}\ntargets: {apps: {x: {retry: r, circuitBreaker: cb}}}"
		p := buildSet(t, spec).ForApp("x")
		f := failing(errBoom)
		start := time.Now()
		_, err := Do(t.Context(), p, f.op)
		// 3 failures trip it; the 4th attempt is rejected and not retried.
		if f.n() != 3 || time.Since(start) != 3*time.Second || !errors.Is(err, ErrBreakerOpen) {
			t.Errorf("calls %d, elapsed %v, err %v", f.n(), time.Since(start), err)
		}
	})
}

func TestBreakerPerTarget(t *testing.T) {
	spec := "policies: {circuitBreakers: {cb: {trip: consecutiveFailures > 0}}}\ntargets: {apps: {a: {circuitBreaker: cb}, b: {circuitBreaker: cb}}}"
	s := buildSet(t, spec)
	Do(t.Context(), s.ForApp("a"), failing(errBoom).op)
	if st, _ := s.ForApp("a").BreakerState(); st != StateOpen {
		t.Errorf("a: %s", st)
	}
	if st, _ := s.ForApp("b").BreakerState(); st != StateClosed {
		t.Errorf("b shares a's breaker: %s", st)
	}
}

func TestHotReloadKeepsBreakers(t *testing.T) {
	spec := "policies: {circuitBreakers: {cb: {trip: consecutiveFailures > 0}}}\ntargets: {apps: {a: {circuitBreaker: cb}}}"
	old := buildSet(t, spec)
	Do(t.Context(), old.ForApp("a"), failing(errBoom).op)
	same := buildSet(t, spec, WithPrevious(old))
	if st, _ := same.ForApp("a").BreakerState(); st != StateOpen {
		t.Errorf("unchanged policy lost its state: %s", st)
	}
	changed := buildSet(t, strings.Replace(spec, "> 0", "> 1", 1), WithPrevious(old))
	if st, _ := changed.ForApp("a").BreakerState(); st != StateClosed {
		t.Errorf("changed policy kept old state: %s", st)
	}
}
