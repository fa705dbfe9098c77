package workflow

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSlots: at most n holders at once; the next waits for a release or
// its context's end; no bound holds any number.
func TestSlots(t *testing.T) {
	s := newSlots(2)
	ctx := context.Background()
	r1, _ := s.acquire(ctx)
	r2, _ := s.acquire(ctx)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third holder of two slots: %v, want it to wait", err)
	}
	got := make(chan struct{})
	go func() {
		r3, err := s.acquire(ctx)
		if err == nil {
			r3()
		}
		close(got)
	}()
	r1()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("a released slot was not taken")
	}
	r2()
	var none slots = newSlots(0)
	for range 100 {
		if _, err := none.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
