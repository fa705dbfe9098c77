package workflow

import (
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"
)

// RuntimeMetrics is told of the engine's work, as daprd's
// dapr_runtime_workflow_* metrics count it (*observe.Metrics is one).
// Statuses are daprd's: success, failed, terminated, recoverable.
type RuntimeMetrics interface {
	// WorkflowOperation: an API operation on an instance (create_workflow,
	// add_event, purge_workflow).
	WorkflowOperation(operation string, ok bool, took time.Duration)
	// WorkflowExecution: an instance ended, took after its first run.
	WorkflowExecution(workflow, status string, took time.Duration)
	// WorkflowScheduling: the first run of an instance began, took after
	// it was due.
	WorkflowScheduling(workflow string, took time.Duration)
	// ActivityOperation: an activity was handed to a worker.
	ActivityOperation(activity, status string, took time.Duration)
	// ActivityExecution: an activity's worker answered, took after it was
	// handed over.
	ActivityExecution(activity, status string, took time.Duration)
	// WorkflowPayloadRatio and ActivityPayloadRatio: the size of a work
	// item as a share of the gRPC API's max message size.
	WorkflowPayloadRatio(workflow string, ratio float64)
	ActivityPayloadRatio(workflow, activity string, ratio float64)
}

// daprd's workflow operations and statuses.
const (
	opCreate = "create_workflow"
	opEvent  = "add_event"
	opPurge  = "purge_workflow"

	statusSuccess     = "success"
	statusFailed      = "failed"
	statusTerminated  = "terminated"
	statusRecoverable = "recoverable"
)

// operation records an API operation that began at start.
func (e *Engine) operation(op string, start time.Time, err error) {
	if m := e.cfg.Metrics; m != nil {
		m.WorkflowOperation(op, err == nil, time.Since(start))
	}
}

// executionStatus is daprd's status label of an ended instance.
func executionStatus(s protos.OrchestrationStatus) string {
	switch s {
	case protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED:
		return statusSuccess
	case protos.OrchestrationStatus_ORCHESTRATION_STATUS_TERMINATED:
		return statusTerminated
	default:
		return statusFailed
	}
}

// ended records an instance that a run ended: its status, and the time
// since its first run began (its first WorkflowStarted event).
func (e *Engine) ended(inst *instance, c *protos.ExecutionCompletedEvent) {
	m := e.cfg.Metrics
	if m == nil {
		return
	}
	var took time.Duration
	for _, ev := range inst.history {
		if ev.GetWorkflowStarted() != nil {
			took = time.Since(ev.GetTimestamp().AsTime())
			break
		}
	}
	m.WorkflowExecution(inst.started().GetName(), executionStatus(c.GetWorkflowStatus()), took)
}

// firstRun records how long an instance waited for its first run: since
// its scheduled start time, or since it was created.
func (e *Engine) firstRun(inst *instance) {
	m := e.cfg.Metrics
	if m == nil || len(inst.history) > 0 {
		return
	}
	for _, ev := range inst.inbox {
		s := ev.GetExecutionStarted()
		if s == nil {
			continue
		}
		due := ev.GetTimestamp().AsTime()
		if ts := s.GetScheduledStartTimestamp(); ts != nil {
			due = ts.AsTime()
		}
		m.WorkflowScheduling(s.GetName(), time.Since(due))
		return
	}
}

// ratio is size as a share of the max message size; false without one
// (daprd records no ratio then).
func (e *Engine) ratio(size int) (float64, bool) {
	if e.cfg.MaxMessageSize <= 0 {
		return 0, false
	}
	return float64(size) / float64(e.cfg.MaxMessageSize), true
}

// activitiesOversize checks the activities a run schedules, as daprd
// does before it dispatches them: each one's ActivityRequest size is
// recorded, and the first one over the stall threshold is why the
// instance stalls ("" if none is).
func (e *Engine) activitiesOversize(inst *instance, actions []*protos.WorkflowAction) string {
	limit := e.cfg.MaxMessageSize
	if limit <= 0 {
		return ""
	}
	workflow := inst.started().GetName()
	why := ""
	for _, a := range actions {
		t := a.GetScheduleTask()
		if t == nil {
			continue
		}
		req := &protos.ActivityRequest{Name: t.GetName(), Version: t.GetVersion(), Input: t.GetInput(), TaskId: a.GetId(),
			TaskExecutionId: t.GetTaskExecutionId(), WorkflowInstance: inst.ref(),
			PropagatedHistory: e.propagateFrom(inst, t.GetHistoryPropagationScope())}
		size := proto.Size(req)
		if r, ok := e.ratio(size); ok && e.cfg.Metrics != nil {
			e.cfg.Metrics.ActivityPayloadRatio(workflow, t.GetName(), r)
		}
		if why == "" && size > limit*stallNumerator/stallDenominator {
			why = oversizeActivity(t.GetName(), a.GetId(), size, limit)
		}
	}
	return why
}
