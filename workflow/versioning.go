package workflow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Workflow versioning and patching (Dapr 1.18). The worker resolves which
// named version of a workflow runs and which patches its code takes
// (ctx.IsPatched); it reports both in its answer (WorkflowResponse.version),
// and the engine records them on the run's WorkflowStarted event, which
// later runs read back. A worker that does not have the version an
// instance started with answers WorkflowVersionNotAvailable; a worker whose
// code takes other patches than the history says were taken (a replica
// running older code) answers with patches that do not extend the
// history's. Either way the instance stalls, as in daprd: an
// ExecutionStalled event (once per distinct description), its new events
// kept in the inbox, status STALLED, and until a worker connects again (one
// may have the version or the patches) or the sidecar restarts it is
// parked: external events, suspend, resume, terminate and purge fail with
// ErrStalled. Only a force purge removes it.

// ErrStalled: the instance is stalled; daprd's words.
var ErrStalled = errors.New("workflow is stalled")

// parkedKey is an instance's entry in Engine.running while it is parked.
// It names the instance's execution, so that an instance created again
// under the ID (after a force purge) is not.
func parkedKey(inst *instance) string {
	return parkedPrefix + inst.id + "|" + inst.started().GetWorkflowInstance().GetExecutionId().GetValue()
}

const parkedPrefix = "parked|"

// parked reports whether the instance stalled on this sidecar and waits
// for a worker that can run it.
func (e *Engine) parked(inst *instance) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.running[parkedKey(inst)]
}

func (e *Engine) park(inst *instance) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.running[parkedKey(inst)] = true
}

// unparkAll releases the parked instances (a worker connected: it may
// have what they need) and runs them again.
func (e *Engine) unparkAll() {
	e.mu.Lock()
	var ids []string
	for k := range e.running {
		if rest, ok := strings.CutPrefix(k, parkedPrefix); ok {
			if i := strings.LastIndexByte(rest, '|'); i >= 0 {
				ids = append(ids, rest[:i])
			}
			delete(e.running, k)
		}
	}
	e.mu.Unlock()
	for _, id := range ids {
		e.kick(id)
	}
}

// stallWith records that the instance cannot run for reason (an
// ExecutionStalled event unless the history ends with one of the same
// description), keeps its inbox, and parks it.
func (e *Engine) stallWith(ctx context.Context, inst *instance, reason protos.StalledReason, description string) error {
	e.park(inst)
	if n := len(inst.history); n > 0 && inst.history[n-1].GetExecutionStalled().GetDescription() == description {
		return nil
	}
	e.log.Warn("workflow stalled", "instance", inst.id, "reason", reason.String(), "description", description)
	d := description
	inst.history = append(inst.history, stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionStalled{
		ExecutionStalled: &protos.ExecutionStalledEvent{Reason: reason, Description: &d}}}))
	return e.saveOrDrop(ctx, inst)
}

// stalled reports whether the instance's last event is an ExecutionStalled
// one: any event after it means it ran again.
func (inst *instance) stalled() bool {
	n := len(inst.history)
	return n > 0 && inst.history[n-1].GetExecutionStalled() != nil
}

// refuseStalled is the error of a call a stalled instance refuses, nil if
// it takes it. As in daprd, a parked instance refuses the calls of users
// (external events, suspend, resume, terminate, purge); a stalled one
// (say, after a restart) refuses external events and purges. Answers to
// its own work (activities, timers, children) are always queued, and a
// force purge always works.
func (e *Engine) refuseStalled(inst *instance, method string, data []byte) error {
	if !inst.exists || inst.completed() != nil {
		return nil
	}
	parked := e.parked(inst)
	if !parked && !inst.stalled() {
		return nil
	}
	switch method {
	case methodPurge:
		if len(data) > 0 && data[0]&purgeForce != 0 {
			return nil
		}
		return fmt.Errorf("%w: %s", ErrStalled, inst.id)
	case methodAddEvent:
		ev := new(protos.HistoryEvent)
		if unmarshal(data, ev) != nil {
			return nil // addToInbox reports it
		}
		user := ev.GetExecutionTerminated() != nil || ev.GetExecutionSuspended() != nil || ev.GetExecutionResumed() != nil
		if ev.GetEventRaised() != nil || (parked && user) {
			return fmt.Errorf("%w: %s", ErrStalled, inst.id)
		}
	}
	return nil
}

// versionStall records the worker's version and patches on the run's
// WorkflowStarted event and reports why the run cannot be applied: the
// worker has not the instance's version, or its patches do not extend the
// history's. The patches already in the history are then dropped from the
// run's event, so the history lists each taken patch once.
func versionStall(history, newEvents []*protos.HistoryEvent, resp *protos.WorkflowResponse) (protos.StalledReason, string, bool) {
	if v := resp.GetVersion(); v != nil && (v.GetPatches() != nil || v.Name != nil) {
		for _, ev := range newEvents {
			if ws := ev.GetWorkflowStarted(); ws != nil {
				ws.Version = &protos.WorkflowVersion{Name: v.Name, Patches: slices.Clone(v.GetPatches())}
				break
			}
		}
	}
	for _, a := range resp.GetActions() {
		if a.GetWorkflowVersionNotAvailable() != nil {
			return protos.StalledReason_VERSION_NOT_AVAILABLE, "Version not available: " + firstVersionName(history), true
		}
		if c := a.GetCompleteWorkflow(); c != nil && c.GetWorkflowStatus() == protos.OrchestrationStatus_ORCHESTRATION_STATUS_CONTINUED_AS_NEW {
			// The next generation starts with no history, and runs
			// (and is checked) on its own.
			return 0, "", false
		}
	}
	if why := patchMismatch(history, newEvents); why != "" {
		return protos.StalledReason_PATCH_MISMATCH, why, true
	}
	compactPatches(history, newEvents)
	return 0, "", false
}

// firstVersionName is the version name on the history's first
// WorkflowStarted event ("" if it has none): every run of an instance
// runs one version.
func firstVersionName(history []*protos.HistoryEvent) string {
	for _, ev := range history {
		if ws := ev.GetWorkflowStarted(); ws != nil {
			return ws.GetVersion().GetName()
		}
	}
	return ""
}

// versionOf is the instance's version as GetInstance reports it: the
// name on its first run, nil if it has none.
func versionOf(history []*protos.HistoryEvent) *wrapperspb.StringValue {
	if name := firstVersionName(history); name != "" {
		return wrap(name)
	}
	return nil
}

// historyPatches are the patches the history's runs took, in order.
func historyPatches(history []*protos.HistoryEvent) []string {
	var out []string
	for _, ev := range history {
		out = append(out, ev.GetWorkflowStarted().GetVersion().GetPatches()...)
	}
	return out
}

// runPatches are the patches the worker's replay took (the run's
// WorkflowStarted event, before compactPatches).
func runPatches(newEvents []*protos.HistoryEvent) []string {
	for i := len(newEvents) - 1; i >= 0; i-- {
		if v := newEvents[i].GetWorkflowStarted().GetVersion(); v != nil {
			return v.GetPatches()
		}
	}
	return nil
}

// patchMismatch is daprd's description of a replay whose patches do not
// start with the history's, "" if they do.
func patchMismatch(history, newEvents []*protos.HistoryEvent) string {
	had, now := historyPatches(history), runPatches(newEvents)
	if len(had) == 0 || (len(now) >= len(had) && slices.Equal(had, now[:len(had)])) {
		return ""
	}
	return fmt.Sprintf("Patch mismatch. History patches: [%s], current patches: [%s]. ", strings.Join(had, ", "), strings.Join(now, ", "))
}

// compactPatches leaves on the run's WorkflowStarted event only the
// patches the history has not recorded yet (each occurrence counted), as
// daprd, and no version at all if neither a patch nor a name is left
// (daprd drops the name too; it is kept here, as later runs resolve the
// version from it).
func compactPatches(history, newEvents []*protos.HistoryEvent) {
	for _, ev := range newEvents {
		ws := ev.GetWorkflowStarted()
		if ws == nil {
			continue
		}
		if len(ws.GetVersion().GetPatches()) == 0 {
			return
		}
		seen := map[string]int{}
		for _, p := range historyPatches(history) {
			seen[p]++
		}
		var fresh []string
		for _, p := range ws.GetVersion().GetPatches() {
			if seen[p] > 0 {
				seen[p]--
				continue
			}
			fresh = append(fresh, p)
		}
		if len(fresh) > 0 || ws.GetVersion().Name != nil {
			ws.Version = &protos.WorkflowVersion{Name: ws.GetVersion().Name, Patches: fresh}
		} else {
			ws.Version = nil
		}
		return
	}
}
