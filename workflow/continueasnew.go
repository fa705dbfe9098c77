package workflow

import "github.com/dapr/durabletask-go/api/protos"

// continuedAsNew reports whether a is a continue-as-new completion. As in
// daprd (durabletask's applier), it ends the run's action list, and what
// the run scheduled before it (activities, timers, children, events to
// send) is dropped with the old generation: the new one starts from its
// input and the events carried over.
func continuedAsNew(a *protos.WorkflowAction) bool {
	return a.GetCompleteWorkflow().GetWorkflowStatus() == protos.OrchestrationStatus_ORCHESTRATION_STATUS_CONTINUED_AS_NEW
}

// pendingBeforeRun are the pending activities (pendingActivities) that
// earlier runs scheduled. An instance that ends cancels those; the ones its
// last run scheduled still run, as daprd dispatches a run's activities
// before it records the end.
func (inst *instance) pendingBeforeRun() []string {
	last := -1
	for i, h := range inst.history {
		if h.GetWorkflowStarted() != nil {
			last = i
		}
	}
	before := map[string]bool{}
	for i := 0; i < last; i++ {
		if h := inst.history[i]; h.GetTaskScheduled() != nil {
			before[activityActorID(inst.id, inst.generation, h.GetEventId())] = true
		}
	}
	var out []string
	for _, a := range inst.pendingActivities() {
		if before[a] {
			out = append(out, a)
		}
	}
	return out
}

// endLast orders a run's actions so that its end (completion, failure,
// termination) comes after the others. The SDKs send actions in no set
// order (the Go SDK's come from a map), and daprd applies every action
// of the run that ends an instance: a child created or an activity
// scheduled next to the end is still created or run. A continue-as-new
// keeps its place: what comes after it is dropped, as daprd drops it.
func endLast(actions []*protos.WorkflowAction) []*protos.WorkflowAction {
	out := make([]*protos.WorkflowAction, 0, len(actions))
	var ends []*protos.WorkflowAction
	for _, a := range actions {
		if a.GetCompleteWorkflow() != nil && !continuedAsNew(a) {
			ends = append(ends, a)
			continue
		}
		out = append(out, a)
	}
	return append(out, ends...)
}
