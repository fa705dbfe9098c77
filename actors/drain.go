package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// errTableUpdated is the cause a call's context is cancelled with when a
// table update drains its type: the call reached the app but was cut
// short, and is routed again against the new table.
var errTableUpdated = errors.New("placement table updated")

// errPlacementLost is the cause a call's context is cancelled with when
// the stream to placement dropped and the call outlived its drain: this
// host may no longer own the actor, and the call is routed again once a
// table comes.
var errPlacementLost = errors.New("placement stream lost")

// defaultLostDrain is how the calls in flight are drained when the
// placement stream drops and the app's configuration says nothing (or has
// not been read): daprd's 2s.
var defaultLostDrain = drainPolicy{wait: DefaultDrainCallTimeout, drain: true}

// drainBudgetRatio is the share of the dissemination timeout a drain may
// take when the configured drain timeout would not fit in it (daprd's).
const drainBudgetRatio = 0.8

// ClampDrainTimeout bounds a drainOngoingCallTimeout by the sidecar's
// dissemination timeout, as daprd does: a drain runs inside a placement
// round (the update is acknowledged after it), so a drain as long as the
// round's bound would reset the stream. A drain shorter than the bound is
// kept; a longer one becomes 80% of the bound, but not under 2s, and a
// warning naming source says so. disseminate <= 0 disables the clamp.
func ClampDrainTimeout(drain, disseminate time.Duration, source string, log *slog.Logger) time.Duration {
	if disseminate <= 0 || drain < disseminate {
		return drain
	}
	clamped := max(time.Duration(float64(disseminate)*drainBudgetRatio), DefaultDrainCallTimeout)
	log.Warn(fmt.Sprintf("drainOngoingCallTimeout (%s) for %s meets or exceeds the dissemination timeout (%s); clamping to %s to avoid blocking placement dissemination",
		drain, source, disseminate, clamped))
	return clamped
}

// inflight tracks the calls this host runs in its actors (from the wait
// for the turn to the app's answer), by actor type, so that a table
// update which changes a type's ring can let them finish, for a while,
// and then cancel them.
type inflight struct {
	mu    sync.Mutex
	next  uint64
	calls map[uint64]*claim
}

// claim is one call in flight.
type claim struct {
	typ    string
	done   chan struct{} // closed when the call ends
	cancel context.CancelCauseFunc
}

// acquire registers a call of actorType; the call runs in the returned
// context and ends with release.
func (f *inflight) acquire(ctx context.Context, actorType string) (context.Context, func()) {
	cctx, cancel := context.WithCancelCause(ctx)
	c := &claim{typ: actorType, done: make(chan struct{}), cancel: cancel}
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[uint64]*claim{}
	}
	id := f.next
	f.next++
	f.calls[id] = c
	f.mu.Unlock()
	var once sync.Once
	return cctx, func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.calls, id)
			f.mu.Unlock()
			close(c.done)
			cancel(nil)
		})
	}
}

// drainPolicy is how the calls of one type are drained.
type drainPolicy struct {
	// wait is how long the calls may run on; with drain false they are
	// cancelled at once.
	wait  time.Duration
	drain bool
}

// drain lets the calls of the types in policies run on up to their
// type's wait, then cancels those still running (with errTableUpdated);
// it returns when every type is done. Calls that start meanwhile are not
// waited for: the table holds new lookups of a changing type back.
func (f *inflight) drain(policies map[string]drainPolicy, log *slog.Logger) {
	byType := map[string][]*claim{}
	f.mu.Lock()
	for _, c := range f.calls {
		if _, ok := policies[c.typ]; ok {
			byType[c.typ] = append(byType[c.typ], c)
		}
	}
	f.mu.Unlock()
	var wg sync.WaitGroup
	for typ, calls := range byType {
		p := policies[typ]
		if !p.drain {
			for _, c := range calls {
				c.cancel(errTableUpdated)
			}
			continue
		}
		wg.Go(func() {
			deadline := time.NewTimer(p.wait)
			defer deadline.Stop()
			for _, c := range calls {
				select {
				case <-c.done:
				case <-deadline.C:
					log.Error(fmt.Sprintf("Timed out waiting for actor type '%s' in-flight lock claims to be released for rebalanced types, force cancelling remaining claims", typ))
					for _, c := range calls {
						c.cancel(errTableUpdated)
					}
					return
				}
			}
		})
	}
	wg.Wait()
}

// drainAll is daprd's drain when its placement stream drops: every call
// in flight, of any type, may run on up to p.wait (one deadline for all),
// then those still running are cancelled with cause; with p.drain false
// they are cancelled at once. It returns when all are done or cancelled.
// Calls that start meanwhile are not waited for: without a table they
// wait in the lookup, or find the actor moved.
func (f *inflight) drainAll(p drainPolicy, cause error, log *slog.Logger) {
	f.mu.Lock()
	calls := make([]*claim, 0, len(f.calls))
	for _, c := range f.calls {
		calls = append(calls, c)
	}
	f.mu.Unlock()
	if !p.drain {
		for _, c := range calls {
			c.cancel(cause)
		}
		return
	}
	deadline := time.NewTimer(p.wait)
	defer deadline.Stop()
	for _, c := range calls {
		select {
		case <-c.done:
		case <-deadline.C:
			log.Error("Timed out waiting for actor in-flight lock claims to be released, force cancelling remaining claims")
			for _, c := range calls {
				c.cancel(cause)
			}
			return
		}
	}
}

// drainPolicies returns how to drain each of types this host serves.
func (r *Runtime) drainPolicies(types []string) map[string]drainPolicy {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]drainPolicy, len(types))
	for _, t := range types {
		if _, internal := r.internal[t]; internal {
			// The sidecar's own actors (workflows) drain as daprd's do by
			// default.
			out[t] = drainPolicy{wait: DefaultDrainCallTimeout, drain: true}
			continue
		}
		if tc, ok := r.types[t]; ok {
			out[t] = drainPolicy{wait: tc.DrainCallTimeout, drain: tc.DrainRebalanced}
		}
	}
	return out
}
