package workflow

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"

	"github.com/tandemrun/tandem/actors"
	"github.com/tandemrun/tandem/actors/placement"
)

// Cross-app workflows (Dapr 1.16+): an instance's action may name another
// app in its router (TaskRouter.TargetAppID): the activity then runs on an
// activity actor of that app's type (dapr.internal.{ns}.{target}.activity),
// the child on a workflow actor of its type, both found through placement
// like any actor. The history event of the action keeps the router
// (source: this app, target: the other), so that every later step (the
// result's way back, recovery, recursive terminate and purge) knows where
// the work is. The activity's result carries the router back and goes to
// the workflow type of the router's source app; a child's end goes to its
// parent's app (ParentInstanceInfo.AppID). When that app cannot be reached
// (its sidecar is down), the result is left in a reminder on the parent's
// workflow actor (activity-result-{random}, daprd's name), which the
// scheduler fires once the app hosts its workflow actors again.

// activityResultPrefix names the reminders that carry an activity's (or a
// child's) result to an instance that could not be reached.
const activityResultPrefix = "activity-result-"

// workflowTypeOf is the workflow actor type of an app ("" or this app:
// this engine's).
func (e *Engine) workflowTypeOf(appID string) string {
	if appID == "" || appID == e.cfg.AppID {
		return e.workflowType
	}
	return e.typePrefix(appID) + ".workflow"
}

// activityTypeOf is the activity actor type of an app.
func (e *Engine) activityTypeOf(appID string) string {
	if appID == "" || appID == e.cfg.AppID {
		return e.activityType
	}
	return e.typePrefix(appID) + ".activity"
}

func (e *Engine) typePrefix(appID string) string {
	ns := e.cfg.Namespace
	if ns == "" {
		ns = "default"
	}
	return "dapr.internal." + ns + "." + appID
}

// remote reports whether appID names another app than this one.
func (e *Engine) remote(appID string) bool { return appID != "" && appID != e.cfg.AppID }

// actionRouter is the router daprd records on an action's history
// events: the action's own (its target app, if any) with this app as
// the source.
func (e *Engine) actionRouter(a *protos.WorkflowAction) *protos.TaskRouter {
	r := &protos.TaskRouter{SourceAppID: e.cfg.AppID}
	if t := a.GetRouter(); t != nil {
		r.TargetAppID, r.TargetAppNamespace = t.TargetAppID, t.TargetAppNamespace
	}
	return r
}

// targetOf is the app a history event's work runs on ("" for this app).
func targetOf(ev *protos.HistoryEvent) string { return ev.GetRouter().GetTargetAppID() }

// encodeActivity is an activity actor's call and run-activity reminder
// data: daprd's ActivityInvocation, the TaskScheduled event (its ID the
// task's) with its router, so that the activity's host knows which app's
// instance waits for the result.
func encodeActivity(req *protos.ActivityRequest, router *protos.TaskRouter) []byte {
	return mustMarshal(activityInvocation(req, router))
}

// activityInvocation is encodeActivity's message.
func activityInvocation(req *protos.ActivityRequest, router *protos.TaskRouter) *protos.ActivityInvocation {
	return &protos.ActivityInvocation{
		HistoryEvent: &protos.HistoryEvent{
			EventId: req.GetTaskId(), Router: router,
			EventType: &protos.HistoryEvent_TaskScheduled{TaskScheduled: &protos.TaskScheduledEvent{
				Name: req.GetName(), Version: req.GetVersion(), Input: req.GetInput(),
				TaskExecutionId: req.GetTaskExecutionId(), ParentTraceContext: req.GetParentTraceContext(),
			}},
		},
		PropagatedHistory: req.GetPropagatedHistory(),
	}
}

// decodeActivity reads encodeActivity's data back into the work item for
// the app's worker and the router of the run (its source is the app of the
// waiting instance); actorID is the activity actor's
// ({instance}::{task}::{generation}).
func decodeActivity(actorID string, data []byte) (*protos.ActivityRequest, *protos.TaskRouter, error) {
	instanceID, _, ok := strings.Cut(actorID, "::")
	if !ok || instanceID == "" {
		return nil, nil, fmt.Errorf("activity actor ID %q is not {instance}::{task}::{generation}", actorID)
	}
	inv := new(protos.ActivityInvocation)
	if err := unmarshal(data, inv); err != nil {
		return nil, nil, fmt.Errorf("activity %s invocation: %w", actorID, err)
	}
	ts := inv.GetHistoryEvent().GetTaskScheduled()
	if ts == nil {
		return nil, nil, fmt.Errorf("activity %s invocation has no TaskScheduled event", actorID)
	}
	req := &protos.ActivityRequest{
		Name: ts.GetName(), Version: ts.GetVersion(), Input: ts.GetInput(),
		WorkflowInstance: &protos.WorkflowInstance{InstanceId: instanceID},
		TaskId:           inv.GetHistoryEvent().GetEventId(), TaskExecutionId: ts.GetTaskExecutionId(),
		ParentTraceContext: ts.GetParentTraceContext(), PropagatedHistory: inv.GetPropagatedHistory(),
	}
	return req, inv.GetHistoryEvent().GetRouter(), nil
}

// sendResult adds a result event to instance id of app appID. Another
// app's instance that cannot be reached gets it through an
// activity-result reminder on its workflow actor instead.
func (e *Engine) sendResult(ctx context.Context, appID, id string, ev *protos.HistoryEvent) error {
	actorType := e.workflowTypeOf(appID)
	if !e.remote(appID) {
		// One try, as daprd looks the instance up once: with no host the
		// result goes to a reminder at once (a sidecar stopping with
		// activities in flight must not wait for a host).
		_, err := e.cfg.Actors.CallInternal(ctx, actorType, id, methodAddEvent, mustMarshal(ev))
		if err != nil && ctx.Err() == nil && errors.Is(err, placement.ErrNoAddress) {
			// No sidecar of this app hosts its workflows now (their
			// workers are gone, or the sidecars are stopping): as daprd,
			// the result waits in a reminder on the instance, which
			// fires once a host is back.
			if ir, ok := e.cfg.Actors.(internalReminders); ok {
				e.log.Info("workflow not hosted anywhere; its result waits in a reminder", "instance", id, "error", lookupErr(err))
				return e.resultReminderWith(ctx, ir.CreateInternalReminder, actorType, id, ev)
			}
		}
		return unwrapActorErr(err)
	}
	_, err := e.cfg.Actors.CallInternal(ctx, actorType, id, methodAddEvent, mustMarshal(ev))
	if err == nil || ctx.Err() != nil || containsText(err, ErrNotFound) {
		return unwrapActorErr(err)
	}
	e.log.Info("workflow of another app not reachable; its result waits in a reminder", "app", appID, "instance", id, "error", err)
	return e.resultReminder(ctx, actorType, id, ev)
}

// resultReminder stores ev in a one-shot reminder on workflow actor id of
// actorType, due now.
func (e *Engine) resultReminder(ctx context.Context, actorType, id string, ev *protos.HistoryEvent) error {
	return e.resultReminderWith(ctx, e.remind, actorType, id, ev)
}

// resultReminderWith is resultReminder through create (an own type that
// is not hosted here is reminded as another app's: CreateInternalReminder).
func (e *Engine) resultReminderWith(ctx context.Context, create func(context.Context, actors.ReminderRequest) error, actorType, id string, ev *protos.HistoryEvent) error {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return create(ctx, actors.ReminderRequest{
		ActorType: actorType, ActorID: id, Name: activityResultPrefix + base64.RawURLEncoding.EncodeToString(b),
		DueTime: "0s", Any: mustAny(ev), FailurePolicy: retryEverySecond(),
	})
}

// resultFired adds the event an activity-result reminder carries to the
// instance; one that is gone drops it.
func (e *Engine) resultFired(ctx context.Context, inst *instance, data []byte) error {
	a, err := reminderAny(data)
	var ev []byte
	if err == nil {
		ev, err = readEvent(a)
	}
	if err != nil {
		return fmt.Errorf("activity-result reminder of %s: %w", inst.id, err)
	}
	err = e.addToInbox(ctx, inst, ev)
	if errors.Is(err, ErrNotFound) {
		e.log.Warn("result for a workflow that does not exist dropped", "instance", inst.id)
		return nil
	}
	return err
}

// childRef is a child instance and the app it runs on ("" for this one).
type childRef struct{ id, app string }

// runningChildRefs are the children created and not answered yet, with
// their apps.
func (inst *instance) runningChildRefs() []childRef {
	apps := map[string]string{}
	for _, h := range inst.history {
		if c := h.GetChildWorkflowInstanceCreated(); c != nil {
			apps[c.GetInstanceId()] = targetOf(h)
		}
	}
	var out []childRef
	for _, id := range inst.runningChildren() {
		out = append(out, childRef{id: id, app: apps[id]})
	}
	return out
}

// purgeOn purges instance id of app appID (recursive: its children too).
func (e *Engine) purgeOn(ctx context.Context, appID, id string, recursive, force bool) (bool, error) {
	data := []byte{0}
	if recursive {
		data[0] |= purgeRecursive
	}
	if force {
		data[0] |= purgeForce
	}
	out, err := e.call(ctx, e.workflowTypeOf(appID), id, methodPurge, data)
	if err != nil {
		return false, unwrapActorErr(err)
	}
	return len(out) > 0 && out[0] == 1, nil
}

// childCreateFails reports whether a child's creation failed for good
// (then the parent is told), rather than for a while (its app is not up:
// the watchdog tries again).
func (e *Engine) childCreateFails(appID string, err error) bool {
	if childTaken(err) {
		return true
	}
	if errors.Is(err, ErrRecreate) || containsText(err, ErrRecreate) {
		return false // the child's tree could not be asked: as daprd, try again
	}
	return !e.remote(appID)
}

// cloneRouter copies a router (nil stays nil).
func cloneRouter(r *protos.TaskRouter) *protos.TaskRouter {
	if r == nil {
		return nil
	}
	return proto.Clone(r).(*protos.TaskRouter)
}

// detach is ctx without its cancellation (the caller's), ended instead
// when the engine stops or cancel is called.
func (e *Engine) detach(ctx context.Context) (context.Context, context.CancelFunc) {
	e.mu.Lock()
	run := e.ctx
	e.mu.Unlock()
	out, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if run == nil {
		return out, cancel
	}
	stop := context.AfterFunc(run, cancel)
	return out, func() { stop(); cancel() }
}

// actorRef names one actor.
type actorRef struct{ typ, id string }

// remoteRuns are the activity actors of the instance's pending activities
// that run on other apps (their run-activity reminders are kept there).
func (e *Engine) remoteRuns(inst *instance) []actorRef {
	if !e.cfg.SchedulerReminders {
		return nil
	}
	probe := &protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{}}}
	var out []actorRef
	for _, h := range inst.history {
		if h.GetTaskScheduled() != nil && e.remote(targetOf(h)) && inst.waitsFor(probe, h.GetEventId()) {
			out = append(out, actorRef{typ: e.activityTypeOf(targetOf(h)), id: activityActorID(inst.id, inst.generation, h.GetEventId())})
		}
	}
	return out
}

// deleteRuns deletes the run-activity reminders of activity actors.
func (e *Engine) deleteRuns(ctx context.Context, runs []actorRef) {
	for _, r := range runs {
		if err := e.unremind(ctx, r.typ, r.id, runActivityReminder); err != nil && !errors.Is(err, actors.ErrReminderNotFound) && ctx.Err() == nil {
			e.log.Debug("delete run-activity reminder on another app", "activity", r.id, "type", r.typ, "error", err)
		}
	}
}

// hostLookup is the part of the actor runtime that names an actor's host
// now (actors.Runtime.LookupHost).
type hostLookup interface {
	LookupHost(ctx context.Context, actorType, actorID string) (string, error)
}

// unplaced returns why one of the actions that sends work (an activity, a
// child) to another app cannot go now: no host of its actor; nil if all
// can.
func (e *Engine) unplaced(ctx context.Context, inst *instance, actions []*protos.WorkflowAction) error {
	l, ok := e.cfg.Actors.(hostLookup)
	if !ok {
		return nil
	}
	for _, a := range actions {
		app := a.GetRouter().GetTargetAppID()
		if !e.remote(app) {
			continue
		}
		var actorType, id string
		switch {
		case a.GetScheduleTask() != nil:
			actorType, id = e.activityTypeOf(app), activityActorID(inst.id, inst.generation, a.GetId())
		case a.GetCreateChildWorkflow() != nil:
			actorType, id = e.workflowTypeOf(app), a.GetCreateChildWorkflow().GetInstanceId()
			if id == "" {
				id = childInstanceID(inst.id, a.GetId())
			}
		default:
			continue
		}
		if _, err := l.LookupHost(ctx, actorType, id); err != nil {
			return err
		}
	}
	return nil
}

// holdFirstRun keeps an instance's first run from being recorded while
// the work it sends to another app has nowhere to go, as daprd: the run's
// new events (the start) become the history, so the instance is RUNNING,
// and the inbox stays as it was, so that the watchdog runs it again (with
// the start not repeated, newRunEvents) until the other app is up. Runs
// of an instance held so are dropped while that lasts. It reports whether
// the run was held.
func (e *Engine) holdFirstRun(ctx context.Context, inst *instance, newEvents []*protos.HistoryEvent, actions []*protos.WorkflowAction) (bool, error) {
	first := len(inst.history) == 0
	if !first && !inst.held() {
		return false, nil
	}
	err := e.unplaced(ctx, inst, actions)
	if err == nil {
		return false, nil
	}
	e.log.Warn("workflow waits for another app to host its work", "instance", inst.id, "error", lookupErr(err))
	if !first {
		return true, nil
	}
	inst.history = append(inst.history, newEvents...)
	return true, e.saveOrDrop(ctx, inst)
}

// held reports whether the instance's start is both in its history and
// its inbox: holdFirstRun kept its first run.
func (inst *instance) held() bool {
	if len(inst.inbox) == 0 || inst.inbox[0].GetExecutionStarted() == nil {
		return false
	}
	for _, h := range inst.history {
		if h.GetExecutionStarted() != nil {
			return true
		}
	}
	return false
}

// newRunEvents are the inbox events a run hands to the worker: all, but
// the start of a held instance, which its history has already.
func (inst *instance) newRunEvents() []*protos.HistoryEvent {
	if inst.held() {
		return inst.inbox[1:]
	}
	return inst.inbox
}

// lookupErr words a call's failure to find the actor's host as daprd logs
// it ("failed to lookup actor: api error: code = FailedPrecondition desc =
// did not find address for actor ...").
func lookupErr(err error) error {
	if errors.Is(err, placement.ErrNoAddress) {
		return fmt.Errorf("failed to lookup actor: api error: code = FailedPrecondition desc = %w", err)
	}
	return err
}

// internalReminders is the part of the actor runtime that keeps
// reminders of internal types hosted by other apps
// (actors.Runtime.CreateInternalReminder, DeleteInternalReminder).
type internalReminders interface {
	CreateInternalReminder(ctx context.Context, req actors.ReminderRequest) error
	DeleteInternalReminder(ctx context.Context, actorType, actorID, name string) error
}

// ownType reports whether actorType is one of this engine's.
func (e *Engine) ownType(actorType string) bool {
	return actorType == e.workflowType || actorType == e.activityType || actorType == e.retainType
}

// remind stores a reminder of this app's actor types or, through the
// runtime's internal path, of another app's.
func (e *Engine) remind(ctx context.Context, req actors.ReminderRequest) error {
	if ir, ok := e.cfg.Actors.(internalReminders); ok && !e.ownType(req.ActorType) {
		return ir.CreateInternalReminder(ctx, req)
	}
	return e.cfg.Actors.CreateReminder(ctx, req)
}

// unremind deletes a reminder remind stored.
func (e *Engine) unremind(ctx context.Context, actorType, actorID, name string) error {
	if ir, ok := e.cfg.Actors.(internalReminders); ok && !e.ownType(actorType) {
		return ir.DeleteInternalReminder(ctx, actorType, actorID, name)
	}
	return e.cfg.Actors.DeleteReminder(ctx, actorType, actorID, name)
}
