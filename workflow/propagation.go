package workflow

import (
	"cmp"
	"context"
	"fmt"
	"strconv"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"

	"github.com/tandemrun/tandem/workflow/signing"
)

// History propagation (Dapr 1.18): a workflow that schedules an activity or
// a child with a propagation scope hands it its history so far, as one
// chunk per producing instance. With OWN_HISTORY the receiver sees only
// the caller's chunk (a trust boundary: what the caller received stays
// behind); with LINEAGE the chunks the caller received come first. A child
// keeps what it received under daprd's state key (propagated-history), to
// see it on every run and forward it; an activity gets it in its
// invocation. Chunks carry each event as the deterministic protobuf bytes
// its producer made, so that a signer and its verifiers digest the same
// bytes.

// keyPropagatedHistory is daprd's state key of the history an instance
// received from its parent.
const keyPropagatedHistory = "propagated-history"

// scopeNone is the scope of a call that propagates nothing.
const scopeNone = protos.HistoryPropagationScope_HISTORY_PROPAGATION_SCOPE_NONE

// propagate builds what a call with scope receives from the instance
// instanceID of this app (appID) whose history is history and which
// received incoming from its own parent: nil for no scope. The history is
// the caller's whole history at the call, the call's own event included.
func propagate(scope protos.HistoryPropagationScope, history []*protos.HistoryEvent, incoming *protos.PropagatedHistory, appID, instanceID string) (*protos.PropagatedHistory, error) {
	if scope == scopeNone {
		return nil, nil
	}
	ph := &protos.PropagatedHistory{Scope: scope}
	if scope == protos.HistoryPropagationScope_HISTORY_PROPAGATION_SCOPE_LINEAGE {
		// Received chunks pass on as they came (their bytes and any
		// signatures are their producers').
		ph.Chunks = append(ph.Chunks, incoming.GetChunks()...)
	}
	if len(history) == 0 {
		return ph, nil
	}
	chunk := &protos.PropagatedHistoryChunk{AppId: appID, InstanceId: instanceID, RawEvents: make([][]byte, len(history))}
	for i, ev := range history {
		if s := ev.GetExecutionStarted(); s != nil && chunk.WorkflowName == "" {
			chunk.WorkflowName = s.GetName()
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("propagated history of %s: event %d: %w", instanceID, i, err)
		}
		chunk.RawEvents[i] = b
	}
	ph.Chunks = append(ph.Chunks, chunk)
	return ph, nil
}

// propagateFrom is propagate for a call of inst with scope; an event that
// cannot be encoded (it was decoded from the store, so it can) leaves the
// call without history, logged.
func (e *Engine) propagateFrom(inst *instance, scope protos.HistoryPropagationScope) *protos.PropagatedHistory {
	return e.propagateAt(inst, len(inst.history)-1, scope)
}

// propagateAt is propagateFrom for the call whose event is inst.history[i]
// (the watchdog calls it again): the history up to that event. With
// signing on, the chunk of this instance's events is signed; chunks it
// received pass on as their producers signed them.
func (e *Engine) propagateAt(inst *instance, i int, scope protos.HistoryPropagationScope) *protos.PropagatedHistory {
	ph, err := propagate(scope, inst.history[:i+1], inst.incoming, e.cfg.AppID, inst.id)
	if err != nil {
		e.log.Warn("history not propagated", "instance", inst.id, "error", err)
		return nil
	}
	if ph == nil || i < 0 {
		return ph
	}
	if e.cfg.Signer == nil {
		// daprd's warning (its operators, and Dapr's suite, look for it).
		e.log.Warn("propagating unsigned workflow history (signing is not configured; chunks cannot be cryptographically verified by the receiver)",
			"instance", inst.id, "to", callTarget(inst.history[i]))
		return ph
	}
	// propagate built the last chunk from this instance's history.
	if err := e.cfg.Signer.SignChunk(ph.Chunks[len(ph.Chunks)-1]); err != nil {
		e.log.Warn("history not propagated", "instance", inst.id, "to", callTarget(inst.history[i]), "error", err)
		return nil
	}
	return ph
}

// verifyIncoming verifies the history an instance or an activity received
// and returns the signing chains to keep. A receiver without signing
// takes it unverified, and says so when it is signed (a deployment that
// signs on some sidecars only).
func (e *Engine) verifyIncoming(ph *protos.PropagatedHistory) ([][]byte, error) {
	if ph == nil {
		return nil, nil
	}
	if e.cfg.Signer == nil {
		if signing.Signed(ph) {
			e.log.Warn("signing is disabled on this sidecar but the propagated history it received is signed; accepted unverified")
		}
		return nil, nil
	}
	return e.cfg.Signer.VerifyPropagated(ph, cmp.Or(e.cfg.Namespace, "default"))
}

// absorbIncoming verifies the history inst received and keeps its signers'
// chains among the instance's external certificates.
func (e *Engine) absorbIncoming(inst *instance, ph *protos.PropagatedHistory) error {
	chains, err := e.verifyIncoming(ph)
	if err != nil {
		return err
	}
	inst.sig.keepExternals(chains)
	return nil
}

// keepExternals keeps the verified signing chains of a received history.
func (s *signedHistory) keepExternals(chains [][]byte) {
	for _, c := range chains {
		s.keepExternal(signing.Digest(c), c)
	}
}

// checkIncoming verifies, on load, the propagated history a running
// instance stored: the store is outside the trust boundary, and the
// history's signatures do not cover that key.
func (e *Engine) checkIncoming(inst *instance) error {
	if inst.incoming == nil || inst.completed() != nil {
		return nil
	}
	if err := e.absorbIncoming(inst, inst.incoming); err != nil {
		return &TamperedError{fmt.Errorf("workflow actor '%s': persisted propagated history failed verification (state store tampering): %w", inst.id, err)}
	}
	return nil
}

// callTarget names the activity run ({name}::{task ID}) or the child
// instance that a call's event starts, for logs.
func callTarget(ev *protos.HistoryEvent) string {
	if c := ev.GetChildWorkflowInstanceCreated(); c != nil {
		return c.GetInstanceId()
	}
	return ev.GetTaskScheduled().GetName() + "::" + strconv.Itoa(int(ev.GetEventId()))
}

// continuedIncoming is what the next generation of a workflow that
// continues as new receives: the same scope as it received, over its
// history so far. A workflow that received nothing (a root) hands nothing
// on: its next generation starts clean.
func (e *Engine) continuedIncoming(inst *instance) *protos.PropagatedHistory {
	if inst.incoming == nil {
		return nil
	}
	return e.propagateFrom(inst, inst.incoming.GetScope())
}

// setIncoming records what the instance received from its parent, to be
// stored (or its key deleted) at the next save.
func (inst *instance) setIncoming(ph *protos.PropagatedHistory) {
	inst.incoming, inst.incomingChanged = ph, true
}

// createRequest reads the data of a CreateWorkflowInstance call: daprd's
// CreateWorkflowInstanceRequest (the start event and what the parent
// propagates) or a bare ExecutionStarted event.
func createRequest(data []byte) (*protos.HistoryEvent, *protos.PropagatedHistory, bool) {
	// The request is tried first: a request read as a HistoryEvent may
	// look like one (its field 3, the history, is the event's
	// ExecutionStarted), while an event read as a request has no start
	// event.
	req := new(protos.CreateWorkflowInstanceRequest)
	if unmarshal(data, req) == nil && req.GetStartEvent().GetExecutionStarted() != nil {
		return req.GetStartEvent(), req.PropagatedHistory, true
	}
	ev := new(protos.HistoryEvent)
	if unmarshal(data, ev) == nil && ev.GetExecutionStarted() != nil {
		return ev, nil, true
	}
	return nil, nil, false
}

// loadIncoming reads the history instance id received, and whether its
// key is stored (a purge deletes only keys that are there).
func (e *Engine) loadIncoming(ctx context.Context, id string) (*protos.PropagatedHistory, bool, error) {
	b, found, err := e.cfg.Actors.LookupState(ctx, e.workflowType, id, keyPropagatedHistory)
	if err != nil {
		return nil, false, fmt.Errorf("load workflow %s propagated history: %w", id, err)
	}
	if len(b) == 0 {
		return nil, found, nil
	}
	ph := new(protos.PropagatedHistory)
	if err := unmarshal(b, ph); err != nil {
		return nil, found, fmt.Errorf("workflow %s propagated history: %w", id, err)
	}
	return ph, found, nil
}

// createData is the data of a CreateWorkflowInstance call for the start
// event ev: daprd's CreateWorkflowInstanceRequest, with the history to
// hand on if any (daprd 1.18's workflow actor takes nothing else).
func createData(ev *protos.HistoryEvent, ph *protos.PropagatedHistory) []byte {
	return mustMarshal(&protos.CreateWorkflowInstanceRequest{StartEvent: ev, PropagatedHistory: ph})
}
