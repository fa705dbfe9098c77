package actors

import (
	"context"
	"sync"
	"testing"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
)

// idleActor is an internal type whose method "done" asks to be
// deactivated after its turn; it records its deactivations.
type idleActor struct {
	mu          sync.Mutex
	deactivated []string
}

func (a *idleActor) Invoke(ctx context.Context, id, method string, _ []byte) ([]byte, error) {
	if method == "done" {
		DeactivateAfterTurn(ctx)
	}
	return nil, nil
}

func (a *idleActor) Deactivate(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.deactivated = append(a.deactivated, id)
}

// TestDeactivateAfterTurn: an internal actor that asks in its turn is
// deactivated once the turn ends (and told so); one that does not ask
// stays active, and a call outside any turn is harmless.
func TestDeactivateAfterTurn(t *testing.T) {
	h := &idleActor{}
	r := &Runtime{cfg: Config{AppID: "app"}, active: map[string]*actor{}, draining: map[string]int{},
		types: map[string]TypeConfig{}, internal: map[string]Internal{"w": h}}
	call := func(id, method string) {
		t.Helper()
		if _, err := r.callLocal(t.Context(), &internalsv1.InternalInvokeRequest{
			Actor:   &internalsv1.Actor{ActorType: "w", ActorId: id},
			Message: &commonv1.InvokeRequest{Method: method},
		}); err != nil {
			t.Fatalf("call %s %s: %v", id, method, err)
		}
	}
	active := func(id string) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		_, ok := r.active[key("w", id)]
		return ok
	}
	call("1", "work")
	call("2", "done")
	if !active("1") {
		t.Error("an actor that did not ask was deactivated")
	}
	if active("2") {
		t.Error("an actor that asked is still active")
	}
	h.mu.Lock()
	got := h.deactivated
	h.mu.Unlock()
	if len(got) != 1 || got[0] != "2" {
		t.Errorf("deactivated %v, want [2]", got)
	}
	call("2", "work") // activated again on its next call
	if !active("2") {
		t.Error("a deactivated actor is not activated again by its next call")
	}
	DeactivateAfterTurn(t.Context()) // outside a turn: nothing
}

// TestUnhostInternalDeactivates: an internal actor active when its type
// stops being hosted is told it leaves, though the type is gone from the
// host before its actors are deactivated (the workflow engine drops its
// copy of the instance, and settles it).
func TestUnhostInternalDeactivates(t *testing.T) {
	h := &idleActor{}
	r := &Runtime{cfg: Config{AppID: "app"}, active: map[string]*actor{}, draining: map[string]int{},
		types: map[string]TypeConfig{}, internal: map[string]Internal{"w": h}}
	if _, err := r.callLocal(t.Context(), &internalsv1.InternalInvokeRequest{
		Actor:   &internalsv1.Actor{ActorType: "w", ActorId: "1"},
		Message: &commonv1.InvokeRequest{Method: "work"},
	}); err != nil {
		t.Fatal(err)
	}
	r.UnhostInternal(t.Context(), "w")
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.deactivated) != 1 || h.deactivated[0] != "1" {
		t.Fatalf("told %v they left, want [1]", h.deactivated)
	}
}
