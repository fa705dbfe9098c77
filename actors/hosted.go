package actors

import (
	"context"
	"maps"
	"slices"
)

// RegisterHosted adds actor types to those this host serves, with their
// configuration (from ParseAppConfig): an app that registers its types over
// Dapr's actor callback stream (SubscribeActorEventsAlpha1) rather than at
// GET /dapr/config. It waits (up to ctx) for the app's configuration to have
// been read once, so the two do not overwrite each other.
func (r *Runtime) RegisterHosted(ctx context.Context, types map[string]TypeConfig) error {
	if r == nil {
		return ErrNoPlacement
	}
	select {
	case <-r.registered:
	case <-ctx.Done():
		return ctx.Err()
	}
	r.mu.Lock()
	maps.Copy(r.types, types)
	names := slices.Sorted(maps.Keys(r.types))
	r.mu.Unlock()
	r.announceTypes(names)
	return nil
}

// UnregisterHosted removes actor types (the app's callback stream ended):
// placement stops routing them here and their active actors are
// deactivated.
func (r *Runtime) UnregisterHosted(ctx context.Context, types ...string) {
	if r == nil || len(types) == 0 {
		return
	}
	r.mu.Lock()
	for _, t := range types {
		delete(r.types, t)
	}
	names := slices.Sorted(maps.Keys(r.types))
	r.mu.Unlock()
	r.announceTypes(names)
	r.deactivateAll(ctx, func(a *actor) bool { return slices.Contains(types, a.typ) })
}
