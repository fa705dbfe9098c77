package actors

import (
	"context"
	"errors"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"

	"github.com/tandemrun/tandem/actors/placement"
)

// TestCallWaitsForUnknownType: a call of a type no host has registered
// yet waits for the table that brings it (daprd's built-in
// DaprBuiltInActorNotFoundRetries) and goes to the host it names; one
// that never comes fails with ErrNoAddress after notFoundWait.
func TestCallWaitsForUnknownType(t *testing.T) {
	r, _, st, ctx := runOnFakePlacement(t, nil, 0)
	if _, err := st.Recv(); err != nil { // the report
		t.Fatal(err)
	}
	empty := &placementv1.PlacementTables{ReplicationFactor: 100, Entries: map[string]*placementv1.PlacementTable{}}
	placementRound(t, st, "lock", 1, nil)
	placementRound(t, st, "update", 1, empty)
	placementRound(t, st, "unlock", 1, nil)

	sent := make(chan string, 2)
	remote := func(_ context.Context, addr string, _ *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
		sent <- addr
		return &internalsv1.InternalInvokeResponse{Status: &internalsv1.Status{Code: 200}}, nil
	}
	req := &internalsv1.InternalInvokeRequest{
		Ver:     internalsv1.APIVersion_V1,
		Actor:   &internalsv1.Actor{ActorType: "counter", ActorId: "1"},
		Message: &commonv1.InvokeRequest{Method: "m"},
	}
	call := func() <-chan error {
		done := make(chan error, 1)
		go func() {
			_, err := r.routeFound(ctx, req, remote)
			done <- err
		}()
		return done
	}

	start := time.Now()
	called := call()
	time.Sleep(300 * time.Millisecond)
	placementRound(t, st, "lock", 2, nil)
	placementRound(t, st, "update", 2, counterTable("127.0.0.1:5001"))
	placementRound(t, st, "unlock", 2, nil)
	select {
	case err := <-called:
		if err != nil {
			t.Fatalf("call of a type that arrived in the next table: %v", err)
		}
		if addr := <-sent; addr != "127.0.0.1:5001" {
			t.Errorf("call went to %q, want the new table's host", addr)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("call answered after %s; the new table should have released it", d)
		}
	case <-time.After(notFoundWait):
		t.Fatal("call not answered after the table brought its type")
	}

	placementRound(t, st, "lock", 3, nil)
	placementRound(t, st, "update", 3, empty)
	placementRound(t, st, "unlock", 3, nil)
	start = time.Now()
	err := <-call()
	if !errors.Is(err, placement.ErrNoAddress) {
		t.Fatalf("call of a type no host has: %v, want ErrNoAddress", err)
	}
	if d := time.Since(start); d < notFoundWait-100*time.Millisecond || d > notFoundWait+2*time.Second {
		t.Errorf("failed after %s, want about %s", d, notFoundWait)
	}
}
