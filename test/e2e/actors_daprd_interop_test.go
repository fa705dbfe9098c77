package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestActorsInteropWithDaprd: a real daprd 1.18.2 and tandemd host the same
// actor type of one app ID side by side, with Dapr's placement and with
// Tandem's. Both agree on every actor's owner: calls through either sidecar,
// and through a daprd and a tandemd that host nothing, reach the one host
// that owns the actor over the internal CallActor RPC between the two
// runtimes; turns never overlap, counts are exact, both hosts serve, and
// actor state written through the owner is read back through it.
func TestActorsInteropWithDaprd(t *testing.T) {
	daprd := daprdBinary(t)
	for _, p := range []struct {
		name  string
		start func(*testing.T) string
	}{
		{"Dapr's placement", startPlacement},
		{"Tandem's placement", func(t *testing.T) string { return placementAddrs(startTandemPlacement(t, 1)) }},
	} {
		t.Run(p.name, func(t *testing.T) { testActorsInterop(t, daprd, p.start(t)) })
	}
}

func testActorsInterop(t *testing.T, daprd, place string) {
	res := memoryActorStore(t)
	// daprd 1.18 keeps reminders in the scheduler only; none runs here, and
	// none is needed for calls and state.
	daprdArgs := []string{"--placement-host-address", place, "--scheduler-host-address", ""}
	appT, portT := startCounterApp(t, "tandemd", "1h", false)
	appD, portD := startCounterApp(t, "daprd", "1h", false)
	hostT := actorSidecar(t, "counters", portT, place, res)
	hostD := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "counters", AppPort: portD, ResourcesDir: res,
		Binary: daprd, Args: daprdArgs})
	callerT := actorSidecar(t, "caller-t", 0, place, "")
	callerD := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "caller-d", Binary: daprd, Args: daprdArgs})
	for _, s := range []*framework.Sidecar{hostT, hostD, callerT, callerD} {
		waitActorsReady(t, s)
	}
	turns := &turnTracker{in: map[string]bool{}}
	appT.turns, appD.turns = turns, turns

	const callers, calls, ids = 8, 40, 16
	failures := addConcurrently(t, []*framework.Sidecar{hostT, hostD, callerT, callerD}, callers, calls, ids)
	total := 0
	for _, app := range []*counterApp{appT, appD} {
		app.mu.Lock()
		if app.overlaps != 0 {
			t.Errorf("host %s saw %d overlapping turns", app.name, app.overlaps)
		}
		for _, n := range app.counts {
			total += n
		}
		app.mu.Unlock()
	}
	if n := turns.overlaps.Load(); n != 0 {
		t.Errorf("%d turns of one actor overlapped across the two runtimes", n)
	}
	if total != callers*calls {
		t.Errorf("counted %d calls, want %d", total, callers*calls)
	}
	t.Logf("calls served: tandemd host %d, daprd host %d; %d failed", appT.served.Load(), appD.served.Load(), failures)
	if appT.served.Load() == 0 || appD.served.Load() == 0 {
		t.Errorf("one runtime hosted nothing: tandemd %d, daprd %d", appT.served.Load(), appD.served.Load())
	}
	owners := map[string]*framework.Sidecar{}
	for i := range ids {
		id := fmt.Sprintf("id-%d", i)
		appT.mu.Lock()
		_, onT := appT.counts[id]
		appT.mu.Unlock()
		appD.mu.Lock()
		_, onD := appD.counts[id]
		appD.mu.Unlock()
		if onT == onD {
			t.Errorf("%s active on tandemd=%v daprd=%v; want exactly one", id, onT, onD)
		}
		if onT {
			owners[id] = hostT
		} else {
			owners[id] = hostD
		}
	}

	// State through the owner, whichever runtime it is.
	for _, id := range []string{"id-0", "id-1", "id-2", "id-3"} {
		owner := owners[id]
		if code, body := httpDo(t, http.MethodPost, owner.HTTPURL()+"/v1.0/actors/counter/"+id+"/state",
			`[{"operation":"upsert","request":{"key":"k","value":{"n":1}}}]`); code != 204 {
			t.Fatalf("transaction on %s through %s: %d %s", id, owner.Process.Name, code, body)
		}
		if code, body := httpDo(t, http.MethodGet, owner.HTTPURL()+"/v1.0/actors/counter/"+id+"/state/k", ""); code != 200 || strings.ReplaceAll(body, " ", "") != `{"n":1}` {
			t.Errorf("state of %s through %s: %d %s", id, owner.Process.Name, code, body)
		}
	}
}
