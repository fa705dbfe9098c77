package actors

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"

	"github.com/tandemrun/tandem/invoke"
)

// actor is an activated actor on this host.
type actor struct {
	typ, id string
	cfg     TypeConfig
	turn    *turnLock
	lastUse atomic.Int64 // unix nanoseconds of the last call's end
	timers  timerSet
	// internal is the handler of an internal type, kept from activation:
	// the actor is told it leaves even when its type stopped being hosted
	// first (UnhostInternal).
	internal Internal
}

func key(actorType, actorID string) string { return actorType + "||" + actorID }

// errMoved: the table in effect gives the actor to another host; the call
// reached no app and is routed again.
var errMoved = errors.New("actor moved to another host")

// activate returns the active actor, creating it on first use.
func (r *Runtime) activate(actorType, actorID string) (*actor, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.activateLocked(actorType, actorID)
}

// activateOwned is activate for a call routed here: it creates the actor
// only while the table gives it to this host (errMoved otherwise). The
// check and the creation are one step under r.mu, and a table update
// installs the new rings before it deactivates (under r.mu) the actors
// that moved: either the update finds the new actor and drains its turn
// before placement lets the new owner serve, or the check sees the new
// owner. Without it a call that looked the owner up just before the
// update, or that waited in the turn lock of an actor the update
// deactivated, would activate the actor here again, while the new owner
// serves it too.
func (r *Runtime) activateOwned(actorType, actorID string) (*actor, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.active[key(actorType, actorID)]; ok {
		return a, nil
	}
	if r.placement != nil {
		if h, ok := r.placement.Table().Owner(actorType, actorID); !ok || !isLocal(h.Name, r.hostName) {
			return nil, errMoved
		}
	}
	return r.activateLocked(actorType, actorID)
}

func (r *Runtime) activateLocked(actorType, actorID string) (*actor, error) {
	k := key(actorType, actorID)
	if a, ok := r.active[k]; ok {
		return a, nil
	}
	tc, ok := r.types[actorType]
	h, internal := r.internal[actorType]
	if !ok && internal {
		tc, ok = internalTypeConfig, true // hosted before the app's types are known
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotHosted, actorType)
	}
	a := &actor{typ: actorType, id: actorID, cfg: tc, turn: newTurnLock(tc.Reentrant, tc.MaxStackDepth), internal: h}
	a.lastUse.Store(time.Now().UnixNano())
	r.active[k] = a
	return a, nil
}

// deactivateAll deactivates, in parallel, the active actors pick selects.
func (r *Runtime) deactivateAll(ctx context.Context, pick func(*actor) bool) {
	r.mu.Lock()
	var gone []*actor
	for k, a := range r.active {
		if pick(a) {
			delete(r.active, k)
			// Its turn in progress still saves state until it ends.
			r.draining[k]++
			gone = append(gone, a)
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range gone {
		wg.Go(func() {
			r.deactivate(ctx, a)
			k := key(a.typ, a.id)
			r.mu.Lock()
			if r.draining[k]--; r.draining[k] <= 0 {
				delete(r.draining, k)
			}
			r.mu.Unlock()
		})
	}
	wg.Wait()
}

// deactivate waits (up to the type's drain timeout) for the turn in
// progress, stops the actor's timers and tells the app.
func (r *Runtime) deactivate(ctx context.Context, a *actor) {
	dctx, cancel := context.WithTimeout(ctx, a.cfg.DrainCallTimeout)
	release, err := a.turn.acquire(dctx, "deactivate")
	cancel()
	a.turn.close()
	a.timers.stopAll()
	if err == nil {
		defer release()
	}
	if a.internal != nil {
		a.internal.Deactivate(a.id)
		return
	}
	if r.cfg.App == nil {
		return
	}
	req := &invoke.Request{Message: &internalsv1.InternalInvokeRequest{
		Ver: internalsv1.APIVersion_V1,
		Message: &commonv1.InvokeRequest{
			Method: "actors/" + a.typ + "/" + a.id, HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_DELETE},
		},
		Metadata: map[string]*internalsv1.ListStringValue{},
	}}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	resp, err := r.cfg.App.Invoke(cctx, req)
	if err != nil {
		r.log.Warn("deactivate actor", "actor_type", a.typ, "actor_id", a.id, "error", err)
		return
	}
	_ = resp.Body.Close()
	if c := resp.Message.GetStatus().GetCode(); c != http.StatusOK {
		r.log.Warn("deactivate actor: app answered", "actor_type", a.typ, "actor_id", a.id, "status", c)
		return
	}
	r.log.Debug("actor deactivated", "actor_type", a.typ, "actor_id", a.id)
}

// reapIdle deactivates actors idle longer than their type's idle timeout
// until ctx ends.
func (r *Runtime) reapIdle(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r.deactivateAll(ctx, func(a *actor) bool {
				return !a.turn.busy() && now.UnixNano()-a.lastUse.Load() > int64(a.cfg.IdleTimeout)
			})
		}
	}
}
