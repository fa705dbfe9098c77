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
