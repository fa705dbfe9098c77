package workflow

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/dapr/durabletask-go/api"
	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"

	"github.com/tandemrun/tandem/workflow/signing"
)

const (
	scopeOwn     = protos.HistoryPropagationScope_HISTORY_PROPAGATION_SCOPE_OWN_HISTORY
	scopeLineage = protos.HistoryPropagationScope_HISTORY_PROPAGATION_SCOPE_LINEAGE
)

func TestPropagate(t *testing.T) {
	history := []*protos.HistoryEvent{wfStarted(), started("parent"), scheduled(0, "")}
	upstream := &protos.PropagatedHistory{Scope: scopeLineage, Chunks: []*protos.PropagatedHistoryChunk{
		{AppId: "app0", InstanceId: "grandparent", WorkflowName: "gp", RawEvents: [][]byte{mustMarshal(started("gp"))}},
	}}
	tests := []struct {
		name     string
		scope    protos.HistoryPropagationScope
		incoming *protos.PropagatedHistory
		chunks   []string // instance IDs, in order
	}{
		{"none", scopeNone, upstream, nil},
		{"own history of a root", scopeOwn, nil, []string{"wf"}},
		{"own history drops what was received", scopeOwn, upstream, []string{"wf"}},
		{"lineage of a root", scopeLineage, nil, []string{"wf"}},
		{"lineage puts the ancestors first", scopeLineage, upstream, []string{"grandparent", "wf"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ph, err := propagate(tc.scope, history, tc.incoming, "app1", "wf")
			if err != nil {
				t.Fatal(err)
			}
			if tc.chunks == nil {
				if ph != nil {
					t.Fatalf("propagated %v with no scope", ph)
				}
				return
			}
			if ph.GetScope() != tc.scope {
				t.Errorf("scope %v, want %v", ph.GetScope(), tc.scope)
			}
			var ids []string
			for _, c := range ph.GetChunks() {
				ids = append(ids, c.GetInstanceId())
			}
			if len(ids) != len(tc.chunks) {
				t.Fatalf("chunks %v, want %v", ids, tc.chunks)
			}
			for i := range ids {
				if ids[i] != tc.chunks[i] {
					t.Fatalf("chunks %v, want %v", ids, tc.chunks)
				}
			}
			own := ph.GetChunks()[len(ids)-1]
			if own.GetAppId() != "app1" || own.GetWorkflowName() != "parent" || len(own.GetRawEvents()) != len(history) {
				t.Errorf("own chunk: app %q, workflow %q, %d events", own.GetAppId(), own.GetWorkflowName(), len(own.GetRawEvents()))
			}
			// What the SDK hands the receiver: every event, decoded.
			got, err := api.PropagatedHistoryFromProto(ph)
			if err != nil {
				t.Fatal(err)
			}
			evs := got.GetEventsByInstanceID("wf")
			for i, ev := range evs {
				if !proto.Equal(ev, history[i]) {
					t.Errorf("event %d: %v, want %v", i, ev, history[i])
				}
			}
			if len(evs) != len(history) {
				t.Errorf("%d own events, want %d", len(evs), len(history))
			}
		})
	}
}

func TestCreateRequest(t *testing.T) {
	start := started("child")
	ph := &protos.PropagatedHistory{Scope: scopeOwn, Chunks: []*protos.PropagatedHistoryChunk{
		{AppId: "app", InstanceId: "p", WorkflowName: "parent", RawEvents: [][]byte{mustMarshal(started("parent"))}},
	}}
	tests := []struct {
		name   string
		data   []byte
		ok     bool
		withPH bool
	}{
		{"bare start event", mustMarshal(start), true, false},
		{"daprd's request", mustMarshal(&protos.CreateWorkflowInstanceRequest{StartEvent: start}), true, false},
		{"request with history", createData(start, ph), true, true},
		{"bare event from createData", createData(start, nil), true, false},
		{"not a start event", mustMarshal(scheduled(1, "")), false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, got, ok := createRequest(tc.data)
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if ev.GetExecutionStarted().GetName() != "child" {
				t.Errorf("start event %v", ev)
			}
			if tc.withPH != (got != nil) || (got != nil && !proto.Equal(got, ph)) {
				t.Errorf("propagated history %v, want it: %v", got, tc.withPH)
			}
			if ok2 := func() bool { _, ok := startEvent(tc.data); return ok }(); ok2 != ok {
				t.Errorf("startEvent disagrees: %v", ok2)
			}
		})
	}
}

func TestIncomingIsStoredAndDeleted(t *testing.T) {
	host := newMemHost()
	e := New(Config{AppID: "app", Actors: host})
	ctx := context.Background()
	key := "child||" + keyPropagatedHistory
	ph := &protos.PropagatedHistory{Scope: scopeLineage, Chunks: []*protos.PropagatedHistoryChunk{{AppId: "app", InstanceId: "p"}}}

	inst := &instance{id: "child", history: []*protos.HistoryEvent{started("c")}, historyRewritten: true}
	inst.setIncoming(ph)
	if _, err := e.save(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if _, ok := host.state[key]; !ok {
		t.Fatalf("no %s key after save: %v", keyPropagatedHistory, host.keys())
	}
	loaded, err := e.load(ctx, "child")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(loaded.incoming, ph) || !loaded.savedIncoming {
		t.Fatalf("loaded %v (stored %v)", loaded.incoming, loaded.savedIncoming)
	}
	// A save that changes nothing of it leaves the key alone.
	host.ops = 0
	if _, err := e.save(ctx, loaded); err != nil {
		t.Fatal(err)
	}
	if host.touched[key] {
		t.Error("an unchanged propagated history was written again")
	}
	// Recreated without propagation: the old history must not stay.
	loaded.setIncoming(nil)
	if _, err := e.save(ctx, loaded); err != nil {
		t.Fatal(err)
	}
	if _, ok := host.state[key]; ok {
		t.Fatal("propagated history of the previous run still stored")
	}
	// And a purge deletes only what is there.
	loaded.setIncoming(ph)
	if _, err := e.save(ctx, loaded); err != nil {
		t.Fatal(err)
	}
	if err := e.purge(ctx, loaded, false); err != nil {
		t.Fatal(err)
	}
	if len(host.state) != 0 {
		t.Errorf("purge left %v", host.keys())
	}
	host.state = map[string][]byte{}
	fresh := &instance{id: "root", history: []*protos.HistoryEvent{started("r")}, historyRewritten: true}
	fresh.setIncoming(nil)
	if _, err := e.save(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if host.deletedMissing {
		t.Error("save deleted a key that was never stored")
	}
}

func TestContinueAsNewCarriesOnlyWhatWasReceived(t *testing.T) {
	e := New(Config{AppID: "app"})
	root := &instance{id: "r", history: []*protos.HistoryEvent{wfStarted(), started("w")}}
	if ph := e.continuedIncoming(root); ph != nil {
		t.Fatalf("a root's next generation got %v", ph)
	}
	upstream := &protos.PropagatedHistory{Scope: scopeLineage, Chunks: []*protos.PropagatedHistoryChunk{{AppId: "up", InstanceId: "p"}}}
	child := &instance{id: "c", history: []*protos.HistoryEvent{wfStarted(), started("w")}, incoming: upstream}
	ph := e.continuedIncoming(child)
	if ph.GetScope() != scopeLineage || len(ph.GetChunks()) != 2 || ph.GetChunks()[1].GetInstanceId() != "c" {
		t.Fatalf("next generation got %v", ph)
	}
}

// TestOversizeCountsPropagatedHistory: what a child received travels in
// every work item of it, so it counts toward the stall threshold.
func TestOversizeCountsPropagatedHistory(t *testing.T) {
	e := &Engine{cfg: Config{MaxMessageSize: 2000}}
	inst := &instance{history: []*protos.HistoryEvent{wfStarted(), started("child")}}
	if why := e.oversize(inst); why != "" {
		t.Fatalf("small child stalls: %s", why)
	}
	inst.incoming = &protos.PropagatedHistory{Scope: scopeLineage, Chunks: []*protos.PropagatedHistoryChunk{
		{AppId: "parent-app", InstanceId: "p", RawEvents: [][]byte{make([]byte, 3000)}},
	}}
	if why := e.oversize(inst); why == "" {
		t.Error("a child whose propagated history passes the limit does not stall")
	}
}

// signedApp is an engine of app whose identity ca issued, with nothing
// running in the background.
func signedApp(t *testing.T, ca *testAuthority, app string, h *memHost) *Engine {
	t.Helper()
	var s *signing.Signer
	if ca != nil {
		s = signing.New(ca.identity(t, app))
	}
	e := New(Config{AppID: app, Namespace: "default", Actors: h, Signer: s})
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	e.ctx = stopped
	return e
}

// TestSignedPropagation: a parent's sidecar signs the chunk of its own
// events; the child's sidecar verifies what it receives on creation and on
// every load, keeps the signers' chains, and ends the child as tampered
// with when the stored history stops verifying.
func TestSignedPropagation(t *testing.T) {
	ctx := context.Background()
	ca := newTestAuthority(t)
	e0 := signedApp(t, ca, "app0", newMemHost())
	h1 := newMemHost()
	e1 := signedApp(t, ca, "app1", h1)

	childCreated := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ChildWorkflowInstanceCreated{
		ChildWorkflowInstanceCreated: &protos.ChildWorkflowInstanceCreatedEvent{InstanceId: "c", Name: "child"}}}, 0)
	parent := &instance{id: "p", history: []*protos.HistoryEvent{wfStarted(), started("parent"), childCreated}}
	ph := e0.propagateFrom(parent, scopeLineage)
	if len(ph.GetChunks()) != 1 || len(ph.GetChunks()[0].GetRawSignatures()) != 1 || len(ph.GetChunks()[0].GetSigningCertChains()) != 1 {
		t.Fatalf("propagated %v, want one signed chunk", ph)
	}

	create := func(e *Engine, id string, ph *protos.PropagatedHistory) error {
		inst, err := e.instance(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return e.create(ctx, inst, createData(started("child"), ph))
	}
	if err := create(e1, "c", ph); err != nil {
		t.Fatalf("create with a signed history: %v", err)
	}
	ext := new(protos.ExternalSigningCertificate)
	if err := unmarshal(h1.state["c||ext-sigcert-000000"], ext); err != nil || !bytes.Equal(ext.GetCertificate(), ph.GetChunks()[0].GetSigningCertChains()[0]) {
		t.Fatalf("the parent's chain is not kept (%v): %v", err, h1.keys())
	}
	reload := func() *instance {
		t.Helper()
		e1.mu.Lock()
		delete(e1.instances, "c")
		e1.mu.Unlock()
		inst, err := e1.instance(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		return inst
	}
	if inst := reload(); inst.completed() != nil || len(inst.sig.extCerts) != 1 {
		t.Fatalf("untouched child on load: ended %v, %d external chains", inst.completed(), len(inst.sig.extCerts))
	}

	// A child re-created once it ended verifies and keeps the new history.
	inst := reload()
	inst.history = append(inst.history, ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionCompleted{ExecutionCompleted: &protos.ExecutionCompletedEvent{
		WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}}, -1))
	if _, err := e1.save(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if err := create(e1, "c", ph); err != nil {
		t.Fatalf("re-create: %v", err)
	}
	if _, ok := h1.state["c||ext-sigcert-000000"]; !ok {
		t.Fatal("the re-created child lost the parent's chain")
	}

	// The store is outside the trust boundary: a changed event fails the
	// running child.
	stored := new(protos.PropagatedHistory)
	if err := unmarshal(h1.state["c||"+keyPropagatedHistory], stored); err != nil {
		t.Fatal(err)
	}
	stored.Chunks[0].RawEvents[0][0] ^= 0xFF
	h1.state["c||"+keyPropagatedHistory] = mustMarshal(stored)
	fd := reload().state().GetFailureDetails()
	if fd.GetErrorType() != ErrorTypeHistoryTampered || !strings.Contains(fd.GetErrorMessage(), "persisted propagated history failed verification") {
		t.Fatalf("child with a tampered propagated history: %v", fd)
	}

	// A payload that does not verify is refused, and nothing is stored.
	bad := proto.Clone(ph).(*protos.PropagatedHistory)
	bad.Chunks[0].AppId = "spoofed-app-name"
	if err := create(e1, "c2", bad); err == nil || !strings.Contains(err.Error(), "propagated history verification failed") {
		t.Fatalf("create with a spoofed chunk: %v", err)
	}
	for _, k := range h1.keys() {
		if strings.HasPrefix(k, "c2||") {
			t.Fatalf("a refused child stored %s", k)
		}
	}

	// A sidecar without signing takes a signed history as it is.
	h2 := newMemHost()
	e2 := signedApp(t, nil, "app1", h2)
	if err := create(e2, "c", ph); err != nil {
		t.Fatalf("create on a sidecar without signing: %v", err)
	}
	kept := new(protos.PropagatedHistory)
	if err := unmarshal(h2.state["c||"+keyPropagatedHistory], kept); err != nil || !proto.Equal(kept, ph) {
		t.Fatalf("stored %v (%v), want the signed history as sent", kept, err)
	}

	// An activity does not run on a history that does not verify.
	req := &protos.ActivityRequest{Name: "a", TaskId: 1, WorkflowInstance: &protos.WorkflowInstance{InstanceId: "p"}, PropagatedHistory: bad}
	data := encodeActivity(req, &protos.TaskRouter{SourceAppID: "app0"})
	if _, err := (activityActor{e1}).Invoke(ctx, activityActorID("p", 1, 1), methodExecute, data); err == nil || !strings.Contains(err.Error(), "rejecting invocation") {
		t.Fatalf("activity on a spoofed history: %v", err)
	}
}
