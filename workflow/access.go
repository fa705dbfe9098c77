package workflow

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dapr/durabletask-go/api/protos"

	"github.com/tandemrun/tandem/actors"
	"github.com/tandemrun/tandem/workflow/wfacl"
)

// Workflow access policies (Dapr 1.18's WorkflowAccessPolicy, package
// wfacl) are enforced here, on the sidecar of the app whose workflow or
// activity actor another app's sidecar calls: the caller's app ID (its
// certificate's with mTLS) must be allowed the operation on the workflow
// or activity named. Calls of this sidecar to its own actors are not
// checked, nor any call while no policy is loaded. The caller that is
// denied fails the activity or child it asked for.

// ErrAccessDenied is a call a workflow access policy does not allow.
var ErrAccessDenied = errors.New("access denied by workflow access policy")

// Dapr's failure of a task that was denied.
const errorTypeAccessDenied = "WorkflowAccessPolicyDenied"

// policies is the access policy in force; nil allows all.
func (e *Engine) policies() *wfacl.Policies {
	if e.cfg.AccessPolicy == nil {
		return nil
	}
	return e.cfg.AccessPolicy()
}

// checkWorkflowCall allows or denies another app's call of method of
// workflow actor inst.
func (e *Engine) checkWorkflowCall(ctx context.Context, inst *instance, method string, data []byte) error {
	caller, remote := actors.CallerApp(ctx)
	p := e.policies()
	if !remote || p == nil || caller == e.cfg.AppID {
		return nil
	}
	var op wfacl.Operation
	name := ""
	if s := inst.started(); s != nil {
		name = s.GetName()
	}
	switch method {
	case methodCreate:
		op = wfacl.Schedule
		ev, ok := startEvent(data)
		if !ok {
			return fmt.Errorf("%w: malformed request for method '%s'", ErrAccessDenied, method)
		}
		name = ev.GetExecutionStarted().GetName()
	case methodAddEvent:
		ev := new(protos.HistoryEvent)
		if err := unmarshal(data, ev); err != nil {
			return fmt.Errorf("%w: malformed request for method '%s'", ErrAccessDenied, method)
		}
		switch {
		case ev.GetExecutionTerminated() != nil:
			op = wfacl.Terminate
		case ev.GetEventRaised() != nil:
			op = wfacl.Raise
		case ev.GetExecutionSuspended() != nil:
			op = wfacl.Pause
		case ev.GetExecutionResumed() != nil:
			op = wfacl.Resume
		default:
			return fmt.Errorf("%w: app '%s' cannot add this kind of event to workflow '%s'", ErrAccessDenied, caller, inst.id)
		}
	case methodPurge:
		op = wfacl.Purge
	case methodGet, methodSubtree:
		op = wfacl.Get
	case methodFork, methodRerun:
		op = wfacl.Rerun
	default:
		return fmt.Errorf("%w: app '%s' cannot invoke method '%s'", ErrAccessDenied, caller, method)
	}
	if caller == "" {
		return fmt.Errorf("%w: caller identity missing on workflow '%s' operation", ErrAccessDenied, op)
	}
	allowed := p.Allows(caller, wfacl.Workflow, op, name)
	e.aclDecided(allowed, string(op), caller, "workflow")
	if !allowed {
		e.log.Warn("workflow access policy denied a call", "caller", caller, "operation", op, "workflow", name, "instance", inst.id)
		return fmt.Errorf("%w: app '%s' operation '%s' on workflow '%s' (instance '%s')", ErrAccessDenied, caller, op, name, inst.id)
	}
	return nil
}

// checkActivityCall allows or denies another app's call of method of
// activity actor id.
func (e *Engine) checkActivityCall(ctx context.Context, id, method string, data []byte) error {
	caller, remote := actors.CallerApp(ctx)
	p := e.policies()
	if !remote || p == nil || caller == e.cfg.AppID {
		return nil
	}
	if method != methodExecute {
		return fmt.Errorf("%w: app '%s' cannot invoke method '%s'", ErrAccessDenied, caller, method)
	}
	req, _, err := decodeActivity(id, data)
	if err != nil {
		return fmt.Errorf("%w: malformed request for method '%s'", ErrAccessDenied, method)
	}
	allowed := caller != "" && p.Allows(caller, wfacl.Activity, wfacl.Schedule, req.GetName())
	e.aclDecided(allowed, string(wfacl.Schedule), caller, "activity")
	if !allowed {
		e.log.Warn("workflow access policy denied an activity", "caller", caller, "activity", req.GetName())
		return fmt.Errorf("%w: app '%s' cannot schedule activity '%s'", ErrAccessDenied, caller, req.GetName())
	}
	return nil
}

// denied reports whether a call's error is a workflow access policy's
// refusal (a remote host's arrives as text).
func denied(err error) bool {
	return err != nil && (errors.Is(err, ErrAccessDenied) || strings.Contains(err.Error(), ErrAccessDenied.Error()))
}

// deniedFailure is the failure a task that was denied ends with.
func deniedFailure() *protos.TaskFailureDetails {
	return &protos.TaskFailureDetails{ErrorType: errorTypeAccessDenied, ErrorMessage: ErrAccessDenied.Error()}
}

// failDeniedActivity ends the instance's wait for an activity another
// app's policy refused: a TaskFailed event, and its run-activity reminder
// is dropped.
func (e *Engine) failDeniedActivity(ctx context.Context, gen uint64, req *protos.ActivityRequest, router *protos.TaskRouter) {
	instanceID := req.GetWorkflowInstance().GetInstanceId()
	ev := stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskFailed{TaskFailed: &protos.TaskFailedEvent{
		TaskScheduledId: req.GetTaskId(), FailureDetails: deniedFailure(), TaskExecutionId: req.GetTaskExecutionId()}}})
	ev.Router = cloneRouter(router)
	if err := e.attest(ev, instanceID, req.GetName(), req.GetInput()); err != nil {
		e.log.Warn("denied activity's failure not attested", "instance", instanceID, "task", req.GetTaskId(), "error", err)
		return
	}
	if err := e.addEvent(ctx, instanceID, ev); err != nil {
		e.log.Warn("denied activity's failure not recorded", "instance", instanceID, "task", req.GetTaskId(), "error", err)
		return
	}
	if e.cfg.SchedulerReminders {
		e.deleteRuns(ctx, []actorRef{{typ: e.activityTypeOf(router.GetTargetAppID()), id: activityActorID(instanceID, gen, req.GetTaskId())}})
	}
}

// AccessPolicyNames are the workflow access policies in force (the
// metadata API lists them).
func (e *Engine) AccessPolicyNames() []string { return e.policies().Names() }

// startEvent reads a CreateWorkflowInstance call's data: the
// ExecutionStarted event, bare (this engine's callers) or in daprd's
// CreateWorkflowInstanceRequest (its sidecars', or a raw actor call).
func startEvent(data []byte) (*protos.HistoryEvent, bool) {
	ev, _, ok := createRequest(data)
	return ev, ok
}

// aclDecided reports a decision to Config.ACLDecided.
func (e *Engine) aclDecided(allowed bool, op, caller, kind string) {
	if e.cfg.ACLDecided != nil {
		e.cfg.ACLDecided(allowed, op, caller, kind)
	}
}
