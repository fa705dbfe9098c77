package workflow

import (
	"context"

	"github.com/tandemrun/tandem/actors"
)

// wake handles a wake-up reminder (daprd's new-event-*, and the engine's
// watchdog, named alike). The copy of an instance that waits with an empty
// inbox may be stale: a peer host that served the instance while placement
// moved it, or a tool, may have queued events in the store since. As
// daprd, such a wake-up reads the store again before it decides there is
// nothing to run, and an instance left with nothing in flight is
// deactivated after the turn: the host keeps no copy of an idle instance.
func (e *Engine) wake(ctx context.Context, inst *instance) error {
	if inst.exists && inst.completed() == nil && len(inst.inbox) == 0 {
		fresh, err := e.reload(ctx, inst.id)
		if err != nil {
			return err
		}
		inst = fresh
	}
	if err := e.recover(ctx, inst); err != nil {
		return err
	}
	if e.idle(inst) {
		actors.DeactivateAfterTurn(ctx)
	}
	return nil
}

// reload drops the cached copy of an instance and loads it from the store.
func (e *Engine) reload(ctx context.Context, id string) (*instance, error) {
	e.mu.Lock()
	delete(e.instances, id)
	e.mu.Unlock()
	return e.instance(ctx, id)
}

// idle reports whether an instance has nothing in flight that its copy
// here drives: no inbox to run, no watchdog (settle keeps it while work
// only it would re-drive is under way), no run or delivery of this host.
// An ended instance is idle: what is left of it (telling its parent)
// needs no copy.
func (e *Engine) idle(inst *instance) bool {
	if !inst.exists || inst.completed() != nil {
		return true
	}
	if len(inst.inbox) > 0 || inst.armed {
		return false
	}
	return !e.busy(inst.id)
}
