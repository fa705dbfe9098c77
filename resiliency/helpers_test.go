package resiliency

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// buildSet builds a Set for app "me" from a Resiliency spec body.
func buildSet(t testing.TB, spec string, opts ...BuildOption) *Set {
	t.Helper()
	d := mustParse(t, "t.yaml", "kind: Resiliency\nspec:\n"+indent(spec))
	s, err := Build("me", []*Resiliency{d}, opts...)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return s
}

// flaky is a test operation: it fails with errs[i] on call i (the last
// entry repeats), and records how many times it ran.
type flaky struct {
	mu    sync.Mutex
	calls int
	errs  []error
}

var errBoom = errors.New("boom")

func failing(errs ...error) *flaky { return &flaky{errs: errs} }

func (f *flaky) op(context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	i := min(f.calls, len(f.errs)) - 1
	if i < 0 {
		return f.calls, nil
	}
	return f.calls, f.errs[i]
}

func (f *flaky) n() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// recorder collects hook calls.
type recorder struct {
	mu          sync.Mutex
	retries     int
	timeouts    int
	exhausted   int
	transitions []string
}

func (r *recorder) hooks() Hooks {
	return Hooks{
		Retry:   func(string, int, error) { r.mu.Lock(); r.retries++; r.mu.Unlock() },
		Timeout: func(string) { r.mu.Lock(); r.timeouts++; r.mu.Unlock() },
		BudgetExhausted: func(string) {
			r.mu.Lock()
			r.exhausted++
			r.mu.Unlock()
		},
		BreakerStateChange: func(_, _ string, from, to BreakerState) {
			r.mu.Lock()
			r.transitions = append(r.transitions, string(from)+"->"+string(to))
			r.mu.Unlock()
		},
	}
}
