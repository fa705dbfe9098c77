package resiliency

import (
	"testing"
	"testing/synctest"
	"time"
)

const budgetSpec = "policies: {retries: {r: {duration: 0s, maxRetries: 3}}}\ntargets: {apps: {x: {retry: r}}}"

func TestRetryBudgetCapsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := buildSet(t, budgetSpec, WithHooks(rec.hooks()),
			WithRetryBudget(BudgetConfig{Ratio: 0.2, MinPerSecond: -1, Window: 10 * time.Second}))
		p := s.ForApp("x")
		f := failing(errBoom)
		for range 10 {
			Do(t.Context(), p, f.op)
		}
		// 10 requests allow 2 retries (20%), not 30: calls 5 and 10 get one.
		if f.n() != 12 {
			t.Errorf("attempts = %d, want 12", f.n())
		}
		if rec.exhausted != 10 {
			t.Errorf("budget-exhausted hook = %d, want 10", rec.exhausted)
		}
		// The window slides: after it passes, old requests no longer count.
		time.Sleep(10 * time.Second)
		before := f.n()
		Do(t.Context(), p, f.op)
		if got := f.n() - before; got != 1 {
			t.Errorf("after the window: %d attempts, want 1 (1 request earns 0.2 retries)", got)
		}
	})
}

func TestRetryBudgetFloorAndUnlimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Default floor: 10 retries/s over 10s = 100 retries with no traffic.
		p := buildSet(t, budgetSpec).ForApp("x")
		f := failing(errBoom)
		for range 40 {
			Do(t.Context(), p, f.op)
		}
		// 40 requests: 100 + 8 = 108 retries allowed; 40*3 = 120 wanted.
		if f.n() != 40+108 {
			t.Errorf("attempts = %d, want %d", f.n(), 40+108)
		}
		u := buildSet(t, budgetSpec, WithRetryBudget(BudgetConfig{Unlimited: true})).ForApp("x")
		g := failing(errBoom)
		for range 40 {
			Do(t.Context(), u, g.op)
		}
		if g.n() != 160 {
			t.Errorf("unlimited: attempts = %d, want 160", g.n())
		}
	})
}

func TestRetryBudgetSharedPerTarget(t *testing.T) {
	s := buildSet(t, budgetSpec, WithRetryBudget(BudgetConfig{Ratio: 0.5, MinPerSecond: -1}))
	f := failing(errBoom)
	// Two lookups of the same target share one budget.
	Do(t.Context(), s.ForApp("x"), f.op)
	Do(t.Context(), s.ForApp("x"), f.op)
	if f.n() != 3 {
		t.Errorf("attempts = %d, want 3 (2 requests earn 1 retry)", f.n())
	}
}
