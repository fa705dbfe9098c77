package actors

import (
	"context"
	"sync/atomic"
)

// An internal actor that finds, in a turn, that it has nothing left to do
// (the workflow engine, on a wake-up reminder for an instance with nothing
// to run) asks to be deactivated once the turn ends, as daprd deactivates
// its workflow actors then: the host keeps no copy of an idle actor, and
// the next call loads what the store holds.

type deactivateKey struct{}

// DeactivateAfterTurn asks the runtime to deactivate the internal actor
// whose turn ctx is (the ctx its Invoke was given) once the turn ends,
// unless another call waits for the actor by then. Outside such a turn it
// does nothing.
func DeactivateAfterTurn(ctx context.Context) {
	if f, ok := ctx.Value(deactivateKey{}).(*atomic.Bool); ok {
		f.Store(true)
	}
}

// withDeactivateFlag is ctx with the flag DeactivateAfterTurn sets.
func withDeactivateFlag(ctx context.Context) (context.Context, *atomic.Bool) {
	f := new(atomic.Bool)
	return context.WithValue(ctx, deactivateKey{}, f), f
}

// deactivateIdle deactivates a if it is still the active actor of its key
// and no call holds or waits for its turn.
func (r *Runtime) deactivateIdle(ctx context.Context, a *actor) {
	r.deactivateAll(ctx, func(x *actor) bool { return x == a && !a.turn.busy() })
}
