package placement

import (
	"context"
	"errors"
	"fmt"
	"sync"

	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"

	"github.com/tandemrun/tandem/actors/hashing"
)

// ErrNoAddress is returned for an actor type no host has registered.
var ErrNoAddress = errors.New("did not find address for actor")

// Table is the placement table a host last received: one ring per actor
// type. Lookups wait while there is no table yet (not connected, or the
// first dissemination not finished) and while a type's ring is being
// changed (between UPDATE and UNLOCK), so that no call reaches a host that
// is about to lose the actor.
type Table struct {
	mu      sync.Mutex
	rings   map[string]*hashing.Ring
	version uint64
	ready   bool
	blocked map[string]bool
	changed chan struct{} // closed and replaced on every change
}

// NewTable returns an empty table that is not ready.
func NewTable() *Table {
	return &Table{rings: map[string]*hashing.Ring{}, blocked: map[string]bool{}, changed: make(chan struct{})}
}

func (t *Table) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// Lookup returns the host owning actorType/actorID, waiting (until ctx
// ends) while the table is not ready or the type is being rebalanced.
func (t *Table) Lookup(ctx context.Context, actorType, actorID string) (hashing.Host, error) {
	for {
		h, settled, ch, err := t.lookupNow(actorType, actorID)
		if settled {
			return h, err
		}
		select {
		case <-ctx.Done():
			return hashing.Host{}, ctx.Err()
		case <-ch:
		}
	}
}

// TryLookup is Lookup without the wait: settled is false (and the error
// nil) when Lookup would wait. A caller with a table in effect, the
// usual case, finds the owner without making a context to bound a wait.
func (t *Table) TryLookup(actorType, actorID string) (h hashing.Host, settled bool, err error) {
	h, settled, _, err = t.lookupNow(actorType, actorID)
	return h, settled, err
}

// lookupNow is one round of Lookup; when it is not settled, ch is closed
// at the table's next change.
func (t *Table) lookupNow(actorType, actorID string) (h hashing.Host, settled bool, ch <-chan struct{}, err error) {
	t.mu.Lock()
	if !t.ready || t.blocked[actorType] {
		ch = t.changed
		t.mu.Unlock()
		return hashing.Host{}, false, ch, nil
	}
	r, ok := t.rings[actorType]
	t.mu.Unlock()
	if ok {
		h, ok = r.Owner(actorID)
	}
	if !ok {
		return hashing.Host{}, true, nil, fmt.Errorf("%w '%s||%s'", ErrNoAddress, actorType, actorID)
	}
	return h, true, nil, nil
}

// Changed is closed at the table's next change.
func (t *Table) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}

// Owner returns the owner without waiting; false when unknown now.
func (t *Table) Owner(actorType, actorID string) (hashing.Host, bool) {
	t.mu.Lock()
	r := t.rings[actorType]
	t.mu.Unlock()
	return r.Owner(actorID)
}

// Ready reports whether a table has been received since connecting.
func (t *Table) Ready() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ready
}

// Version is the version of the table in effect.
func (t *Table) Version() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.version
}

// update installs tables and blocks the types whose rings changed until
// unlock; it returns those types.
func (t *Table) update(in *placementv1.PlacementTables, version uint64) []string {
	rings := make(map[string]*hashing.Ring, len(in.GetEntries()))
	for typ, e := range in.GetEntries() {
		hosts := make([]hashing.Host, 0, len(e.GetLoadMap()))
		for name, h := range e.GetLoadMap() {
			if h.GetName() != "" {
				name = h.GetName()
			}
			hosts = append(hosts, hashing.Host{Name: name, AppID: h.GetId(), Port: h.GetPort()})
		}
		rings[typ] = hashing.New(hosts, in.GetReplicationFactor())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var changed []string
	for typ, r := range rings {
		if old, ok := t.rings[typ]; !ok || !old.Equal(r) {
			changed = append(changed, typ)
		}
	}
	for typ := range t.rings {
		if _, ok := rings[typ]; !ok {
			changed = append(changed, typ)
		}
	}
	for _, typ := range changed {
		if t.ready {
			t.blocked[typ] = true
		}
	}
	t.rings, t.version = rings, version
	t.notifyLocked()
	return changed
}

// unlock ends a dissemination round: every type is served again.
func (t *Table) unlock(version uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.version = version
	t.ready = true
	clear(t.blocked)
	t.notifyLocked()
}

// reset forgets the table (the stream to placement was lost): lookups
// wait for the next one.
func (t *Table) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ready = false
	t.rings = map[string]*hashing.Ring{}
	clear(t.blocked)
	t.notifyLocked()
}
