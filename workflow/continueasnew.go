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
