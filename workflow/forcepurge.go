package workflow

import (
	"context"
	"errors"
)

// ForcePurge deletes an instance's state and reminders whatever its
// status, as daprd's force purge does: directly in the actor state store,
// not in the instance's actor turn, so it works on an instance whose
// workers are gone or that is busy. A run in flight may then find its
// state gone (daprd warns the same). It reports whether there was an
// instance; recursive purges its children the same way.
func (e *Engine) ForcePurge(ctx context.Context, id string, recursive bool) (bool, error) {
	inst, err := e.loadDirect(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	e.log.Warn("Force purging workflow state; this can corrupt a workflow that is being processed", "instance", id)
	if recursive {
		for _, h := range inst.history {
			if c := h.GetChildWorkflowInstanceCreated(); c != nil {
				purge := e.ForcePurge
				if app := targetOf(h); e.remote(app) {
					// Another app's child is force-purged in its actor's
					// turn there.
					purge = func(ctx context.Context, id string, recursive bool) (bool, error) {
						return e.purgeOn(ctx, app, id, recursive, true)
					}
				}
				if _, err := purge(ctx, c.GetInstanceId(), true); err != nil {
					e.log.Warn("force purge child workflow", "instance", id, "child", c.GetInstanceId(), "error", err)
				}
			}
		}
	}
	if err := e.purgeAll(ctx, inst, true, false); err != nil {
		return false, err
	}
	return true, nil
}
