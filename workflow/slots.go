package workflow

import "context"

// slots bounds how many runs are under way at once, as daprd's backend
// workers bound their parallelism (maxConcurrentWorkflowInvocations,
// maxConcurrentActivityInvocations). A run waits for a slot in its
// actor's turn; nil slots bound nothing.
type slots chan struct{}

// newSlots holds n runs at once; n <= 0: no bound (nil).
func newSlots(n int) slots {
	if n <= 0 {
		return nil
	}
	return make(slots, n)
}

// acquire waits for a slot, or ctx's end; release frees it.
func (s slots) acquire(ctx context.Context) (release func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	select {
	case s <- struct{}{}:
		return func() { <-s }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
