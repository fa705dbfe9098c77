package actors

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestTurnLockOneAtATime(t *testing.T) {
	l := newTurnLock(false, 32)
	var running, peak, done atomic.Int32
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			release, err := l.acquire(t.Context(), "call-"+string(rune('a'+i)))
			if err != nil {
				t.Error(err)
				return
			}
			if n := running.Add(1); n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(100 * time.Microsecond)
			running.Add(-1)
			done.Add(1)
			release()
		})
	}
	wg.Wait()
	if peak.Load() != 1 || done.Load() != 50 {
		t.Fatalf("peak %d done %d", peak.Load(), done.Load())
	}
	if l.busy() {
		t.Fatal("busy after all released")
	}
}

func TestTurnLockReentrancy(t *testing.T) {
	l := newTurnLock(true, 3)
	r1, err := l.acquire(t.Context(), "chain")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := l.acquire(t.Context(), "chain") // nested call joins the turn
	if err != nil {
		t.Fatal(err)
	}
	r3, err := l.acquire(t.Context(), "chain")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.acquire(t.Context(), "chain"); !errors.Is(err, ErrMaxStackDepth) {
		t.Fatalf("fourth nested call: %v", err)
	}
	// Another chain waits for the whole turn.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.acquire(ctx, "other"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("other chain got in: %v", err)
	}
	got := make(chan func(), 1)
	go func() {
		rel, err := l.acquire(t.Context(), "other")
		if err != nil {
			t.Error(err)
		}
		got <- rel
	}()
	r3()
	r2()
	r2() // a release is idempotent
	select {
	case <-got:
		t.Fatal("other chain got in before the turn ended")
	case <-time.After(10 * time.Millisecond):
	}
	r1()
	(<-got)()
}

func TestTurnLockNoReentrancyWithoutConfig(t *testing.T) {
	l := newTurnLock(false, 32)
	r1, _ := l.acquire(t.Context(), "same")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := l.acquire(ctx, "same"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("same id joined a non-reentrant turn: %v", err)
	}
	r1()
}

func TestTurnLockClose(t *testing.T) {
	l := newTurnLock(false, 32)
	r1, _ := l.acquire(t.Context(), "a")
	errc := make(chan error, 1)
	go func() {
		_, err := l.acquire(t.Context(), "b")
		errc <- err
	}()
	for !func() bool { l.mu.Lock(); defer l.mu.Unlock(); return len(l.waiters) == 1 }() {
		time.Sleep(time.Millisecond)
	}
	l.close()
	if err := <-errc; !errors.Is(err, ErrActorClosed) {
		t.Fatalf("waiter: %v", err)
	}
	if _, err := l.acquire(t.Context(), "c"); !errors.Is(err, ErrActorClosed) {
		t.Fatalf("after close: %v", err)
	}
	r1()
}

func TestParseAppConfig(t *testing.T) {
	types, warnings, err := ParseAppConfig([]byte(`{"entities":["a","b"],"actorIdleTimeout":"","drainOngoingCallTimeout":"x",
		"reentrancy":{"enabled":true,"maxStackDepth":5},
		"entitiesConfig":[{"entities":["b"],"actorIdleTimeout":"5s","reentrancy":{"enabled":false}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 {
		t.Fatalf("warnings %v", warnings)
	}
	a, b := types["a"], types["b"]
	if a.IdleTimeout != DefaultIdleTimeout || !a.Reentrant || a.MaxStackDepth != 5 || a.DrainCallTimeout != DefaultDrainCallTimeout {
		t.Fatalf("a = %+v", a)
	}
	if b.IdleTimeout != 5*time.Second || b.Reentrant {
		t.Fatalf("b = %+v", b)
	}
	if types, _, err := ParseAppConfig([]byte(`{"entities":null}`)); err != nil || len(types) != 0 {
		t.Fatalf("null entities: %v %v", types, err)
	}
	if _, _, err := ParseAppConfig([]byte(`{`)); err == nil {
		t.Fatal("broken JSON accepted")
	}
}
