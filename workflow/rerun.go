package workflow

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Methods of the workflow actor for a rerun (daprd's names): the source
// instance forks its history, the new instance starts from the fork.
const (
	methodFork  = "ForkWorkflowHistory"
	methodRerun = "RerunWorkflowInstance"
)

// Rerun starts a new instance from an ended one's history up to the event
// req.EventID (an activity, a timer or a child workflow), which runs again
// (with req.Input when req.OverwriteInput), as daprd's
// RerunWorkflowFromEvent does. It returns the new instance's ID (random
// unless req.NewInstanceID is given). Bad requests are gRPC status errors
// with daprd's codes and messages.
func (e *Engine) Rerun(ctx context.Context, req *protos.RerunWorkflowFromEventRequest) (string, error) {
	if req.GetSourceInstanceID() == "" {
		return "", status.Error(codes.InvalidArgument, "rerun workflow source instance ID is required")
	}
	req = proto.Clone(req).(*protos.RerunWorkflowFromEventRequest)
	if req.NewInstanceID == nil {
		id := newID()
		req.NewInstanceID = &id
	}
	if req.GetSourceInstanceID() == req.GetNewInstanceID() {
		return "", status.Error(codes.InvalidArgument, "rerun workflow instance ID must be different from the original instance ID")
	}
	fork, err := e.call(ctx, e.workflowType, req.GetSourceInstanceID(), methodFork, mustMarshal(req))
	if err != nil {
		return "", actorStatusErr(err)
	}
	if _, err := e.call(ctx, e.workflowType, req.GetNewInstanceID(), methodRerun, fork); err != nil {
		return "", actorStatusErr(err)
	}
	return req.GetNewInstanceID(), nil
}

// actorStatusErr restores the gRPC status an actor method failed with:
// a local call wraps the status error, a remote host's arrives as text
// ("... rpc error: code = X desc = message"). Other errors go through
// unwrapActorErr.
func actorStatusErr(err error) error {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return status.ErrorProto(se.GRPCStatus().Proto())
	}
	const marker = "rpc error: code = "
	msg := err.Error()
	if i := strings.Index(msg, marker); i >= 0 {
		name, desc, ok := strings.Cut(msg[i+len(marker):], " desc = ")
		for c := codes.OK; ok && c <= codes.Unauthenticated; c++ {
			if c.String() == name {
				return status.Error(c, desc)
			}
		}
	}
	return unwrapActorErr(err)
}

// fork builds, in the source instance's turn, the state the rerun
// instance starts from (a BackendWorkflowState): the history before the
// target event, with the tasks that had no answer by then and the target
// itself in the inbox, to run again.
func (e *Engine) fork(inst *instance, data []byte) ([]byte, error) {
	req := new(protos.RerunWorkflowFromEventRequest)
	if err := unmarshal(data, req); err != nil {
		return nil, fmt.Errorf("rerun request for workflow %s: %w", inst.id, err)
	}
	if !inst.exists || inst.started() == nil {
		return nil, status.Errorf(codes.NotFound, "workflow instance does not exist with ID '%s'", inst.id)
	}
	if inst.completed() == nil {
		return nil, status.Errorf(codes.InvalidArgument, "'%s' is not in a terminal state", inst.id)
	}
	if inst.started().GetParentInstance() != nil {
		return nil, status.Errorf(codes.InvalidArgument, "'%s': cannot rerun from child-workflows", inst.id)
	}
	st, err := forkHistory(inst.id, inst.history, req)
	if err != nil {
		return nil, err
	}
	return mustMarshal(st), nil
}

// forkHistory is fork's work on a copy of the history. Events before the
// target go into the new history, except a task (activity, timer, child)
// whose answer comes later: it moves to where its answer is, or, with no
// answer before the target, to the inbox. The target is last in the
// inbox, marked with the source instance (RerunParentInstanceInfo); a
// child's instance ID becomes {new ID}:{event ID, 4 hex digits} (or the
// one asked for), as the SDKs name children.
func forkHistory(sourceID string, history []*protos.HistoryEvent, req *protos.RerunWorkflowFromEventRequest) (*protos.BackendWorkflowState, error) {
	target := int32(req.GetEventID()) //nolint:gosec // daprd's conversion: an event ID past int32 matches none
	st := &protos.BackendWorkflowState{}
	pending := map[int32]*protos.HistoryEvent{}
	var order []int32 // of pending, to keep the inbox in history order
	answered := func(id int32) {
		if ev, ok := pending[id]; ok {
			st.History = append(st.History, ev)
			delete(pending, id)
		}
	}
	var found *protos.HistoryEvent
	for _, h := range history {
		ev := proto.Clone(h).(*protos.HistoryEvent)
		if ev.GetEventId() == target {
			found = ev
			break
		}
		switch {
		case ev.GetTaskScheduled() != nil, ev.GetTimerCreated() != nil, ev.GetChildWorkflowInstanceCreated() != nil:
			pending[ev.GetEventId()] = ev
			order = append(order, ev.GetEventId())
			continue
		case ev.GetTaskCompleted() != nil:
			answered(ev.GetTaskCompleted().GetTaskScheduledId())
		case ev.GetTaskFailed() != nil:
			answered(ev.GetTaskFailed().GetTaskScheduledId())
		case ev.GetChildWorkflowInstanceCompleted() != nil:
			answered(ev.GetChildWorkflowInstanceCompleted().GetTaskScheduledId())
		case ev.GetChildWorkflowInstanceFailed() != nil:
			answered(ev.GetChildWorkflowInstanceFailed().GetTaskScheduledId())
		}
		// As in daprd's fork, a timer stays pending even when it fired
		// before the target (its TimerFired event stays where it was): it
		// is set again, and its second firing is dropped as answered.
		st.History = append(st.History, ev)
	}
	if found == nil {
		return nil, status.Errorf(codes.NotFound, "does not have history event with ID '%d'", target)
	}
	rerunOf := &protos.RerunParentInstanceInfo{InstanceID: sourceID}
	switch {
	case found.GetTaskScheduled() != nil:
		t := found.GetTaskScheduled()
		t.RerunParentInstanceInfo = rerunOf
		if req.GetOverwriteInput() {
			t.Input = req.GetInput()
		}
		if req.NewChildWorkflowInstanceID != nil {
			return nil, status.Errorf(codes.InvalidArgument, "cannot set new child workflow instance ID on activity event '%d'", target)
		}
	case found.GetTimerCreated() != nil:
		found.GetTimerCreated().RerunParentInstanceInfo = rerunOf
		if req.GetOverwriteInput() {
			return nil, status.Errorf(codes.InvalidArgument, "cannot write input to timer event '%d'", target)
		}
		if req.NewChildWorkflowInstanceID != nil {
			return nil, status.Errorf(codes.InvalidArgument, "cannot set new child workflow instance ID on timer event '%d'", target)
		}
	case found.GetChildWorkflowInstanceCreated() != nil:
		c := found.GetChildWorkflowInstanceCreated()
		c.RerunParentInstanceInfo = rerunOf
		c.InstanceId = childInstanceID(req.GetNewInstanceID(), target)
		if req.NewChildWorkflowInstanceID != nil {
			c.InstanceId = req.GetNewChildWorkflowInstanceID()
		}
		if req.GetOverwriteInput() {
			c.Input = req.GetInput()
		}
	default:
		return nil, status.Errorf(codes.NotFound, "target event '%T' with ID '%d' is not an event that can be rerun", found.GetEventType(), target)
	}
	for _, id := range order {
		ev, ok := pending[id]
		if !ok {
			continue
		}
		if c := ev.GetChildWorkflowInstanceCreated(); c != nil {
			c.InstanceId = childInstanceID(req.GetNewInstanceID(), id)
		}
		st.Inbox = append(st.Inbox, ev)
	}
	st.Inbox = append(st.Inbox, found)
	return st, nil
}

// childInstanceID is the ID the SDKs give a child workflow created by
// event id of the instance parent.
func childInstanceID(parent string, id int32) string { return fmt.Sprintf("%s:%04x", parent, id) }

// rerunInstance creates the rerun instance from a fork: the inbox's tasks
// join the history and run again (activities and children are called, a
// timer fires at its old time, at once if that has passed).
func (e *Engine) rerunInstance(ctx context.Context, inst *instance, data []byte) error {
	if inst.exists {
		return status.Errorf(codes.AlreadyExists, "workflow '%s' has already been created", inst.id)
	}
	st := new(protos.BackendWorkflowState)
	if err := unmarshal(data, st); err != nil {
		return fmt.Errorf("rerun state of workflow %s: %w", inst.id, err)
	}
	if len(st.GetInbox()) == 0 {
		return fmt.Errorf("rerun of workflow %s: the forked state has no event to run again", inst.id)
	}
	history := st.GetHistory()
	var tasks []*protos.HistoryEvent
	for _, ev := range st.GetInbox() {
		switch {
		case ev.GetTaskScheduled() != nil, ev.GetTimerCreated() != nil, ev.GetChildWorkflowInstanceCreated() != nil:
		default:
			return status.Errorf(codes.InvalidArgument, "unexpected event type '%T' in inbox", ev.GetEventType())
		}
		ev.Timestamp = timestamppb.Now()
		history = append(history, ev)
		tasks = append(tasks, ev)
	}
	inst.history, inst.historyRewritten = history, true
	inst.sig.extCerts = nil
	inst.inbox, inst.customStatus = nil, nil
	inst.generation = nextGeneration(inst)
	start := inst.started()
	if start == nil {
		return fmt.Errorf("rerun of workflow %s: the forked history has no ExecutionStarted event", inst.id)
	}
	if err := e.saveOrDrop(ctx, inst); err != nil {
		return err
	}
	inst.armed = false
	e.arm(ctx, inst)
	gen, ref := inst.generation, inst.ref()
	for _, ev := range tasks {
		id := ev.GetEventId()
		switch {
		case ev.GetTaskScheduled() != nil:
			t := ev.GetTaskScheduled()
			e.startActivity(ctx, gen, &protos.ActivityRequest{Name: t.GetName(), Version: t.GetVersion(), Input: t.GetInput(),
				TaskId: id, TaskExecutionId: t.GetTaskExecutionId(), WorkflowInstance: ref,
				PropagatedHistory: e.propagateFrom(inst, t.GetHistoryPropagationScope())}, ev.GetRouter())
		case ev.GetTimerCreated() != nil:
			name := timerPrefix + fmt.Sprint(id)
			at := ev.GetTimerCreated().GetFireAt().AsTime()
			if err := e.createTimerReminder(ctx, inst.id, name, timerData{Generation: gen, ID: id, FireAt: at}); err != nil {
				e.log.Warn("durable timer of a rerun not stored; the watchdog fires it late", "instance", inst.id, "error", err)
			}
		case ev.GetChildWorkflowInstanceCreated() != nil:
			c := ev.GetChildWorkflowInstanceCreated()
			e.createChild(inst.id, start, ref, id, c.GetInstanceId(), c.GetName(), &protos.CreateChildWorkflowAction{Version: c.GetVersion(), Input: c.GetInput()}, ev.GetRouter(),
				e.propagateFrom(inst, c.GetHistoryPropagationScope()))
		}
	}
	return nil
}
