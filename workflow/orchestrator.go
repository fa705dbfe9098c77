package workflow

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandemrun/tandem/actors"
)

// Methods of the workflow actor (Dapr's names where it has them).
const (
	methodCreate   = "CreateWorkflowInstance"
	methodAddEvent = "AddWorkflowEvent"
	methodGet      = "GetWorkflowState"
	methodPurge    = "PurgeWorkflowState"
	methodRun      = "RunWorkflow"
	methodSettle   = "SettleWorkflow"
	reminderPrefix = "remind/"
	// watchdogName is the reminder that re-drives an instance's work a
	// crash may have lost. It exists only while such work is in flight (an
	// event in the inbox not run yet, a child to create, an event to send):
	// an instance that waits only for durable things (timers, activities,
	// children, external events) has none, so its reminders are those
	// daprd's would be. It is named as daprd's wake-up reminders are, so
	// that a daprd that takes the instance over (sharing the scheduler)
	// runs what it finds in the inbox when it fires.
	watchdogName = newEventPrefix + "-watchdog"
	// legacyWatchdogName is the watchdog of an earlier Tandem.
	legacyWatchdogName = "watchdog"
	// cascadeTerminateName is daprd's reminder that carries a recursive
	// terminate to a child (its ExecutionTerminated event).
	cascadeTerminateName = "cascade-terminate"
	timerPrefix          = "timer-"
	// startPrefix names the reminder that runs an instance with a
	// scheduled start time (start-{generation}, daprd's prefix).
	startPrefix = "start-"
	// newEventPrefix is daprd's wake-up reminder for an instance with
	// events in its inbox; one may be created by a tool or another daprd.
	newEventPrefix = "new-event"
	// waitWorker bounds how long a turn waits for a worker to connect; the
	// instance runs when one does (or at its watchdog).
	waitWorker = 5 * time.Second
)

// orchestratorActor is the workflow actor type.
type orchestratorActor struct{ e *Engine }

var _ actors.Internal = orchestratorActor{}

func (o orchestratorActor) Deactivate(id string) {
	e := o.e
	e.mu.Lock()
	inst := e.instances[id]
	delete(e.instances, id)
	e.mu.Unlock()
	e.runNames.Delete(id)
	if inst != nil && inst.armed {
		e.settleLeaving(inst)
	}
}

func (o orchestratorActor) Invoke(ctx context.Context, id, method string, data []byte) ([]byte, error) {
	e := o.e
	if method == methodSettle && !e.cached(id) {
		// Only a copy kept here can have stored the watchdog: one loaded
		// for the settle would do nothing, and would keep the watchdog of
		// an instance that just left (settleLeaving).
		return nil, nil
	}
	inst, err := e.instance(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := e.checkWorkflowCall(ctx, inst, method, data); err != nil {
		return nil, err
	}
	if err := e.refuseStalled(inst, method, data); err != nil {
		return nil, err
	}
	switch {
	case method == methodCreate:
		return nil, e.create(ctx, inst, data)
	case method == methodAddEvent:
		return nil, e.addToInbox(ctx, inst, data)
	case method == methodGet:
		if st := inst.state(); st != nil && inst.exists {
			return mustMarshal(st), nil
		}
		return nil, nil
	case method == methodPurge:
		var flags byte
		if len(data) > 0 {
			flags = data[0]
		}
		return e.purgeInstance(ctx, inst, flags)
	case method == methodRun:
		return nil, e.run(ctx, inst)
	case method == methodFork:
		return e.fork(inst, data)
	case method == methodRerun:
		return nil, e.rerunInstance(ctx, inst, data)
	case method == methodSettle:
		if len(data) > 0 && data[0] == settleNow {
			return nil, e.settle(ctx, inst)
		}
		return nil, e.settleSoon(ctx, inst)
	case method == methodSubtree:
		return e.subtreeAnswer(ctx, inst), nil
	case strings.HasPrefix(method, reminderPrefix+timerPrefix), strings.HasPrefix(method, reminderPrefix+startPrefix):
		return nil, e.timerFired(ctx, inst, strings.TrimPrefix(method, reminderPrefix), data)
	case strings.HasPrefix(method, reminderPrefix+activityResultPrefix):
		return nil, e.resultFired(ctx, inst, data)
	case method == reminderPrefix+cascadeTerminateName:
		return nil, e.cascadeFired(ctx, inst, data)
	case method == reminderPrefix+legacyWatchdogName:
		// An earlier Tandem's watchdog: its successor is stored under
		// watchdogName if work is still in flight.
		e.goAsync(func(ctx context.Context) {
			_ = e.cfg.Actors.DeleteReminder(ctx, e.workflowType, inst.id, legacyWatchdogName)
		})
		if inst.exists && inst.completed() == nil {
			inst.armed = false
			e.arm(ctx, inst)
		}
		return nil, e.recover(ctx, inst)
	case strings.HasPrefix(method, reminderPrefix+limitedRunPrefix):
		return nil, e.runLimited(ctx, inst)
	case strings.HasPrefix(method, reminderPrefix+newEventPrefix):
		return nil, e.wake(ctx, inst)
	}
	return nil, fmt.Errorf("unknown workflow actor method %q", method)
}

// instance returns the cached state of an instance active here, loading
// it on first use.
func (e *Engine) instance(ctx context.Context, id string) (*instance, error) {
	e.mu.Lock()
	inst, ok := e.instances[id]
	e.mu.Unlock()
	if ok {
		return inst, nil
	}
	inst, err := e.load(ctx, id)
	if err == nil {
		err = e.checkInbox(inst)
	}
	if err == nil {
		err = e.checkIncoming(inst)
	}
	if err != nil {
		if inst, err = e.endTampered(ctx, inst, err); err != nil {
			return nil, err
		}
	}
	e.mu.Lock()
	e.instances[id] = inst
	e.mu.Unlock()
	return inst, nil
}

// saveOrDrop saves inst; on failure the cache is dropped so that the next
// turn reloads what the store holds.
func (e *Engine) saveOrDrop(ctx context.Context, inst *instance) error {
	fresh, err := e.save(ctx, inst)
	if err != nil {
		e.mu.Lock()
		delete(e.instances, inst.id)
		e.mu.Unlock()
		return err
	}
	if !fresh { // the store did not tell the new ETag
		if err := e.refreshETag(ctx, inst); err != nil {
			// Saved, but its version is not known: the next turn loads it.
			e.log.Debug("workflow state saved; reloaded on next use", "instance", inst.id, "error", err)
			e.mu.Lock()
			delete(e.instances, inst.id)
			e.mu.Unlock()
		}
	}
	e.notify(inst)
	return nil
}

// create starts (or restarts, when the old one ended) an instance.
func (e *Engine) create(ctx context.Context, inst *instance, data []byte) error {
	ev, incoming, ok := createRequest(data)
	if !ok {
		return fmt.Errorf("create workflow %s: not an ExecutionStarted event", inst.id)
	}
	if inst.exists && inst.completed() == nil {
		// A parent re-sending the creation of its child is no conflict.
		if old, p := inst.started(), ev.GetExecutionStarted().GetParentInstance(); p != nil && old != nil &&
			old.GetParentInstance().GetWorkflowInstance().GetInstanceId() == p.GetWorkflowInstance().GetInstanceId() &&
			old.GetParentInstance().GetTaskScheduledId() == p.GetTaskScheduledId() {
			return nil
		}
		return existsErr{id: inst.id}
	}
	chains, err := e.verifyIncoming(incoming)
	if err != nil {
		return fmt.Errorf("workflow actor '%s': propagated history verification failed: %w", inst.id, err)
	}
	if inst.exists {
		if err := e.recreateRefused(ctx, inst); err != nil {
			return err
		}
	}
	// As daprd, the reminder that runs the instance is stored before its
	// state: a create whose reminder the scheduler refuses (its store is
	// full, say) fails, and leaves nothing behind.
	gen := nextGeneration(inst)
	start := ev.GetExecutionStarted().GetScheduledStartTimestamp()
	later := start != nil && start.AsTime().After(time.Now())
	if later {
		// The start reminder is durable: no watchdog while it waits.
		if err := e.createTimerReminder(ctx, inst.id, startReminderName(gen), timerData{Generation: gen, FireAt: start.AsTime()}); err != nil {
			return fmt.Errorf("create workflow %s start reminder: %w", inst.id, err)
		}
	} else {
		inst.armed = false // a re-created instance's old watchdog was deleted at its end
		if err := e.armErr(ctx, inst); err != nil {
			return fmt.Errorf("create workflow %s: %w", inst.id, err)
		}
	}
	inst.history, inst.historyRewritten = nil, true
	inst.sig.extCerts = nil
	inst.sig.keepExternals(chains)
	inst.inbox = []*protos.HistoryEvent{ev}
	inst.customStatus = nil
	inst.setIncoming(incoming)
	inst.generation = gen
	if err := e.saveOrDrop(ctx, inst); err != nil {
		return err
	}
	if !later {
		e.kick(inst.id)
	}
	return nil
}

// nextGeneration is the generation of a (re)created instance, as daprd
// counts: one more than the last, or 1 for an ID with no state (new, or
// purged). A purged instance's activity runs
// ({instance}::{task}::{generation}) that ended on this host are told from
// the new one's by the execution ID (activityActor.Invoke).
func nextGeneration(inst *instance) uint64 {
	if inst.exists {
		return inst.generation + 1
	}
	return 1
}

// addToInbox queues an event for the next run, dropping duplicates and
// answers to tasks the instance does not wait for.
func (e *Engine) addToInbox(ctx context.Context, inst *instance, data []byte) error {
	ev := new(protos.HistoryEvent)
	if err := unmarshal(data, ev); err != nil {
		return fmt.Errorf("workflow %s event: %w", inst.id, err)
	}
	if !inst.exists || inst.started() == nil {
		return fmt.Errorf("%w: %s", ErrNotFound, inst.id)
	}
	if name, dup := inst.duplicateAnswer(ev); dup {
		// A sender that delivers an answer again may have lost the reply
		// to the first delivery, whose wake-up may be lost too: as daprd,
		// the instance's wake-up reminder is stored again (it fires at
		// once and drives whatever is left, or finds nothing to do).
		if !e.cfg.SchedulerReminders {
			return nil
		}
		var due time.Duration // the instance's start: at once
		if len(inst.history) > 0 {
			due = time.Until(inst.history[0].GetTimestamp().AsTime())
		}
		return e.cfg.Actors.CreateReminder(ctx, actors.ReminderRequest{
			ActorType: e.workflowType, ActorID: inst.id, Name: name, DueTime: max(due, 0).String(),
		})
	}
	if inst.completed() != nil {
		return nil // nothing happens to an ended instance
	}
	if inst.duplicateExternal(ev) {
		// Sent again (its sender lost the answer): one event. Its run
		// may have been lost with that answer, so the inbox is run.
		if len(inst.inbox) > 0 {
			e.kick(inst.id)
		}
		return nil
	}
	if id, ok := answerTo(ev); ok && !inst.waitsFor(ev, id) {
		return nil
	}
	if err := e.checkResult(inst, ev); err != nil {
		// As daprd: the instance ends, and its sender is told it is gone
		// (an activity stops running again).
		if ferr := e.failTampered(ctx, inst, err); ferr != nil {
			return ferr
		}
		return fmt.Errorf("%w: %s", ErrNotFound, inst.id)
	}
	inst.inbox = append(inst.inbox, ev)
	if err := e.saveOrDrop(ctx, inst); err != nil {
		return err
	}
	if inst.armed && e.cfg.SchedulerReminders {
		// The watchdog kept since the last turn (settleLater) keeps the
		// event's run durable: the run starts at once, and the watchdog
		// is stored again beside it, as daprd stores a wake-up reminder
		// for each event (a scheduler that fails it loses nothing).
		e.kick(inst.id)
		e.restoreWatchdog(inst.id)
		return nil
	}
	e.arm(ctx, inst)
	e.kick(inst.id)
	return nil
}

// restoreWatchdog stores instance id's watchdog again, in the
// background.
func (e *Engine) restoreWatchdog(id string) {
	e.goAsync(func(ctx context.Context) {
		if err := e.cfg.Actors.CreateReminder(ctx, e.watchdogReminder(id)); err != nil && ctx.Err() == nil {
			e.log.Debug("workflow watchdog not stored again; the one stored before stays", "instance", id, "error", err)
		}
	})
}

// duplicateAnswer reports whether ev answers a task, child or timer that
// the history or inbox has an answer to already, with the name of daprd's
// wake-up reminder for it (new-event-tc-{id}, ...).
func (inst *instance) duplicateAnswer(ev *protos.HistoryEvent) (string, bool) {
	kind := func(ev *protos.HistoryEvent) string {
		switch {
		case ev.GetTaskCompleted() != nil:
			return "tc"
		case ev.GetTaskFailed() != nil:
			return "tf"
		case ev.GetChildWorkflowInstanceCompleted() != nil:
			return "cwc"
		case ev.GetChildWorkflowInstanceFailed() != nil:
			return "cwf"
		case ev.GetTimerFired() != nil:
			return "tmf"
		}
		return ""
	}
	// Completed and failed answer the same task (or child).
	family := func(k string) string {
		switch k {
		case "tc", "tf":
			return "task"
		case "cwc", "cwf":
			return "child"
		}
		return k
	}
	k := kind(ev)
	id, ok := answerTo(ev)
	if k == "" || !ok {
		return "", false
	}
	for _, list := range [][]*protos.HistoryEvent{inst.history, inst.inbox} {
		for _, h := range list {
			if other, ok := answerTo(h); ok && other == id && family(kind(h)) == family(k) {
				return newEventPrefix + "-" + k + "-" + strconv.Itoa(int(id)), true
			}
		}
	}
	return "", false
}

// answerTo is the event ID an event answers (task, child, timer).
func answerTo(ev *protos.HistoryEvent) (int32, bool) {
	switch {
	case ev.GetTaskCompleted() != nil:
		return ev.GetTaskCompleted().GetTaskScheduledId(), true
	case ev.GetTaskFailed() != nil:
		return ev.GetTaskFailed().GetTaskScheduledId(), true
	case ev.GetChildWorkflowInstanceCompleted() != nil:
		return ev.GetChildWorkflowInstanceCompleted().GetTaskScheduledId(), true
	case ev.GetChildWorkflowInstanceFailed() != nil:
		return ev.GetChildWorkflowInstanceFailed().GetTaskScheduledId(), true
	case ev.GetTimerFired() != nil:
		return ev.GetTimerFired().GetTimerId(), true
	}
	return 0, false
}

// waitsFor reports whether the instance scheduled event id of the kind ev
// answers and has no answer to it yet.
func (inst *instance) waitsFor(ev *protos.HistoryEvent, id int32) bool {
	scheduled := false
	for _, h := range inst.history {
		if h.GetEventId() != id {
			continue
		}
		switch {
		case h.GetTaskScheduled() != nil:
			scheduled = ev.GetTaskCompleted() != nil || ev.GetTaskFailed() != nil
		case h.GetChildWorkflowInstanceCreated() != nil:
			scheduled = ev.GetChildWorkflowInstanceCompleted() != nil || ev.GetChildWorkflowInstanceFailed() != nil
		case h.GetTimerCreated() != nil:
			scheduled = ev.GetTimerFired() != nil
		}
	}
	if !scheduled {
		return false
	}
	for _, list := range [][]*protos.HistoryEvent{inst.history, inst.inbox} {
		for _, h := range list {
			if other, ok := answerTo(h); ok && other == id {
				return false
			}
		}
	}
	return true
}

// kick runs the instance soon, once however often it is kicked before.
func (e *Engine) kick(id string) {
	e.mu.Lock()
	if e.running["run|"+id] {
		e.mu.Unlock()
		return
	}
	e.running["run|"+id] = true
	e.mu.Unlock()
	if e.runsLimited() {
		e.kickLimited(id)
		return
	}
	e.goAsync(func(ctx context.Context) {
		if _, err := e.call(ctx, e.workflowType, id, methodRun, nil); err != nil && ctx.Err() == nil {
			e.log.Warn("workflow run failed; its watchdog retries it", "instance", id, "error", err)
			e.mu.Lock()
			delete(e.running, "run|"+id) // the run did not start: a later kick may
			e.mu.Unlock()
		}
	})
}

// maxContinuesPerTurn is how many times an instance may continue as new
// in one turn (durabletask's tight-loop limit, as in daprd); then the
// turn ends and the next one goes on.
const maxContinuesPerTurn = 20

// run is one turn of the instance: it hands the instance's new events to
// a worker and applies the actions it answers with. An instance that
// continues as new runs its next execution in the same turn, up to
// maxContinuesPerTurn times, as daprd's durabletask backend does; the
// generation counts the turns in which it continued, not the
// continuations (daprd's rule: continue-as-new (multi)).
func (e *Engine) run(ctx context.Context, inst *instance) error {
	inst.turnContinues = 0
	for {
		continued, err := e.runOnce(ctx, inst)
		if err != nil || !continued {
			return err
		}
		if inst.turnContinues >= maxContinuesPerTurn {
			// The rest in a turn of its own.
			e.kick(inst.id)
			return nil
		}
	}
}

// runOnce runs the instance's new events once; continued reports that
// the instance continued as new (its next execution's start is in its
// inbox).
func (e *Engine) runOnce(ctx context.Context, inst *instance) (continued bool, err error) {
	e.mu.Lock()
	delete(e.running, "run|"+inst.id)
	e.mu.Unlock()
	if !inst.exists || len(inst.inbox) == 0 {
		return false, nil
	}
	if inst.completed() != nil {
		inst.inbox = nil
		return false, e.saveOrDrop(ctx, inst)
	}
	start := inst.started()
	if ts := start.GetScheduledStartTimestamp(); ts != nil && ts.AsTime().After(time.Now()) && len(inst.history) == 0 {
		return false, nil // its start timer runs it
	}
	if e.parked(inst) {
		return false, nil // a worker that connects runs it
	}
	if why := e.oversize(inst); why != "" {
		return false, e.stall(ctx, inst, why)
	}
	chooseSpanID(inst, start)
	newEvents := append([]*protos.HistoryEvent{stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_WorkflowStarted{WorkflowStarted: &protos.WorkflowStartedEvent{}}})}, freshEvents(inst.history, inst.newRunEvents())...)
	req := &protos.WorkflowRequest{InstanceId: inst.id, ExecutionId: start.GetWorkflowInstance().GetExecutionId(), PastEvents: inst.history, NewEvents: newEvents, PropagatedHistory: inst.incoming}
	var res proto.Message
	release, err := e.workflowSlots.acquire(ctx)
	if err != nil {
		return false, err
	}
	if e.inProcess(start.GetName()) {
		res, err = e.cfg.InProcess.ExecuteWorkflow(ctx, req)
	} else {
		res, err = e.workers.dispatch(ctx, "o|"+inst.id, &protos.WorkItem{Request: &protos.WorkItem_WorkflowRequest{WorkflowRequest: req}}, waitWorker)
	}
	release()
	if err == errNoWorker {
		e.log.Debug("workflow waits for a worker", "instance", inst.id)
		e.mu.Lock()
		e.running["stalled|"+inst.id] = true
		e.mu.Unlock()
		return false, nil
	}
	if err != nil {
		return false, err
	}
	e.firstRun(inst)
	resp := res.(*protos.WorkflowResponse)
	if reason, why, stalled := versionStall(inst.history, newEvents, resp); stalled {
		return false, e.stallWith(ctx, inst, reason, why)
	}
	if why := e.activitiesOversize(inst, resp.GetActions()); why != "" {
		return false, e.stall(ctx, inst, why)
	}
	if held, err := e.holdFirstRun(ctx, inst, newEvents, resp.GetActions()); held || err != nil {
		return false, err
	}
	var post []func(context.Context)
	from := len(inst.history)
	began := newEvents[0].GetTimestamp().AsTime()
	if from > 0 {
		began = inst.history[0].GetTimestamp().AsTime()
	}
	canStatus := protos.OrchestrationStatus(-1)
	inst.history = append(inst.history, newEvents...)
	inst.inbox = nil
	inst.customStatus = resp.GetCustomStatus()
	for _, a := range endLast(resp.GetActions()) {
		p, stop := e.apply(inst, start, a)
		if continuedAsNew(a) {
			post = nil // as daprd, the new generation drops what the old one scheduled in this run
			canStatus = protos.OrchestrationStatus_ORCHESTRATION_STATUS_CONTINUED_AS_NEW
		}
		if p != nil {
			post = append(post, p)
		}
		if stop {
			break
		}
	}
	if inst.completed() == nil {
		if timers := cancelledEventTimers(inst.history, from); len(timers) > 0 {
			post = append(post, func(ctx context.Context) { e.deleteTimers(ctx, inst.id, timers) })
		}
	}
	if inst.completed() != nil {
		// The retention reminder is stored before the end is: once a
		// client sees the instance ended, its reminder is there. Without
		// it the turn fails and is run again (the instance still has its
		// inbox and watchdog); a reminder left by a failed save finds the
		// instance running and ends.
		if err := e.retain(ctx, inst); err != nil {
			e.mu.Lock()
			delete(e.instances, inst.id)
			e.mu.Unlock()
			return false, fmt.Errorf("workflow %s retention reminder: %w", inst.id, err)
		}
	}
	if err := e.saveOrDrop(ctx, inst); err != nil {
		return false, err
	}
	if c := inst.completed(); c != nil {
		e.ended(inst, c)
		e.endOrchestrationSpan(start, began, c.GetWorkflowStatus(), c.GetFailureDetails())
		e.forget(inst.id)
	} else if canStatus >= 0 {
		e.endOrchestrationSpan(start, began, canStatus, nil)
	}
	for _, p := range post {
		p(ctx)
	}
	return canStatus >= 0, e.settleSoon(ctx, inst)
}

// apply records one action in the history and returns what to do once
// the history is saved; stop ends the action list (continue-as-new).
func (e *Engine) apply(inst *instance, start *protos.ExecutionStartedEvent, a *protos.WorkflowAction) (post func(context.Context), stop bool) {
	id := a.GetId()
	router := e.actionRouter(a)
	add := func(ev *protos.HistoryEvent) {
		ev = stamp(ev)
		ev.EventId = id
		if ev.Router == nil {
			ev.Router = router
		}
		inst.history = append(inst.history, ev)
	}
	gen := inst.generation
	switch {
	case a.GetScheduleTask() != nil:
		t := a.GetScheduleTask()
		traceParent := orchestrationTraceContext(start)
		add(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskScheduled{TaskScheduled: &protos.TaskScheduledEvent{
			Name: t.GetName(), Version: t.GetVersion(), Input: t.GetInput(), TaskExecutionId: t.GetTaskExecutionId(),
			HistoryPropagationScope: t.HistoryPropagationScope, ParentTraceContext: traceParent}}})
		if answered("task", id, inst.history) {
			// The history has the task's answer already (it lost the
			// scheduling): as daprd, the activity does not run again.
			e.log.Debug("activity not run again: its result is in the history", "instance", inst.id, "task", id)
			return nil, false
		}
		req := &protos.ActivityRequest{Name: t.GetName(), Version: t.GetVersion(), Input: t.GetInput(), TaskId: id,
			TaskExecutionId: t.GetTaskExecutionId(), WorkflowInstance: inst.ref(),
			PropagatedHistory: e.propagateFrom(inst, t.GetHistoryPropagationScope()), ParentTraceContext: traceParent}
		return func(ctx context.Context) { e.startActivity(ctx, gen, req, router) }, false
	case a.GetCreateTimer() != nil:
		t := a.GetCreateTimer()
		add(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TimerCreated{TimerCreated: timerCreated(t)}})
		return func(ctx context.Context) {
			name := timerPrefix + strconv.Itoa(int(id))
			if err := e.createTimerReminder(ctx, inst.id, name, timerData{Generation: gen, ID: id, FireAt: t.GetFireAt().AsTime()}); err != nil {
				e.log.Warn("durable timer not stored; the watchdog fires it late", "instance", inst.id, "error", err)
			}
		}, false
	case a.GetCreateChildWorkflow() != nil:
		c := a.GetCreateChildWorkflow()
		childID := c.GetInstanceId()
		if childID == "" {
			childID = childInstanceID(inst.id, id)
		}
		add(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ChildWorkflowInstanceCreated{ChildWorkflowInstanceCreated: &protos.ChildWorkflowInstanceCreatedEvent{
			InstanceId: childID, Name: c.GetName(), Version: c.GetVersion(), Input: c.GetInput(),
			HistoryPropagationScope: c.HistoryPropagationScope, ParentTraceContext: orchestrationTraceContext(start)}}})
		ref, ph := inst.ref(), e.propagateFrom(inst, c.GetHistoryPropagationScope())
		return func(context.Context) { e.createChild(inst.id, start, ref, id, childID, c.GetName(), c, router, ph) }, false
	case a.GetSendEvent() != nil:
		s := a.GetSendEvent()
		add(&protos.HistoryEvent{EventType: &protos.HistoryEvent_EventSent{EventSent: &protos.EventSentEvent{
			InstanceId: s.GetInstance().GetInstanceId(), Name: s.GetName(), Input: s.GetData()}}})
		ev := stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_EventRaised{EventRaised: &protos.EventRaisedEvent{Name: s.GetName(), Input: s.GetData()}}})
		ev.Timestamp = e.uniqueEventTime() // its identity (eventdedup.go)
		return func(context.Context) { e.deliver(inst.id, s.GetInstance().GetInstanceId(), ev) }, false
	case a.GetTerminateWorkflow() != nil:
		t := a.GetTerminateWorkflow()
		ev := stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionTerminated{ExecutionTerminated: &protos.ExecutionTerminatedEvent{Input: t.GetReason(), Recurse: t.GetRecurse()}}})
		return func(context.Context) { e.deliver(inst.id, t.GetInstanceId(), ev) }, false
	case a.GetCompleteWorkflow() != nil:
		c := a.GetCompleteWorkflow()
		if c.GetWorkflowStatus() == protos.OrchestrationStatus_ORCHESTRATION_STATUS_CONTINUED_AS_NEW {
			next := proto.Clone(start).(*protos.ExecutionStartedEvent)
			next.Input = c.GetResult()
			next.WorkflowInstance = &protos.WorkflowInstance{InstanceId: inst.id, ExecutionId: wrap(newID())}
			next.ScheduledStartTimestamp = nil
			next.WorkflowSpanID = nil // each generation has its own orchestration span
			if inst.incoming != nil {
				inst.setIncoming(e.continuedIncoming(inst))
			}
			inst.history, inst.historyRewritten = nil, true
			inst.sig.extCerts = nil
			inst.inbox = append([]*protos.HistoryEvent{stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionStarted{ExecutionStarted: next}})}, c.GetCarryoverEvents()...)
			if inst.turnContinues == 0 {
				inst.generation++ // once per turn (run)
			}
			inst.turnContinues++
			return nil, true // run goes on with the next execution
		}
		add(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionCompleted{ExecutionCompleted: &protos.ExecutionCompletedEvent{
			WorkflowStatus: c.GetWorkflowStatus(), Result: c.GetResult(), FailureDetails: c.GetFailureDetails()}},
			Router: e.router()})
		timers, activities, runs := inst.pendingTimers(), []string(nil), e.remoteRuns(inst)
		if e.cfg.SchedulerReminders {
			activities = inst.pendingBeforeRun()
		}
		return func(context.Context) {
			if len(runs) > 0 {
				e.goAsync(func(ctx context.Context) { e.deleteRuns(ctx, runs) })
			}
			e.deleteReminders(inst.id, timers, activities)
			e.finish(inst, start, c)
		}, true
	}
	return nil, false
}

// timerCreated is a timer action's history event, with the timer's
// origin (a plain timer, an external event's timeout, an activity's or a
// child's retry), which the SDKs read back.
func timerCreated(t *protos.CreateTimerAction) *protos.TimerCreatedEvent {
	ev := &protos.TimerCreatedEvent{FireAt: t.GetFireAt(), Name: t.Name}
	switch o := t.GetOrigin().(type) {
	case *protos.CreateTimerAction_CreateTimer:
		ev.Origin = &protos.TimerCreatedEvent_CreateTimer{CreateTimer: o.CreateTimer}
	case *protos.CreateTimerAction_ExternalEvent:
		ev.Origin = &protos.TimerCreatedEvent_ExternalEvent{ExternalEvent: o.ExternalEvent}
	case *protos.CreateTimerAction_ActivityRetry:
		ev.Origin = &protos.TimerCreatedEvent_ActivityRetry{ActivityRetry: o.ActivityRetry}
	case *protos.CreateTimerAction_ChildWorkflowRetry:
		ev.Origin = &protos.TimerCreatedEvent_ChildWorkflowRetry{ChildWorkflowRetry: o.ChildWorkflowRetry}
	}
	return ev
}

// runningChildren are the children created and not answered yet.
func (inst *instance) runningChildren() []string {
	var out []string
	for _, h := range inst.history {
		if c := h.GetChildWorkflowInstanceCreated(); c != nil {
			answered := false
			for _, x := range inst.history {
				if id, ok := answerTo(x); ok && id == h.GetEventId() && x.GetTimerFired() == nil {
					answered = true
				}
			}
			if !answered {
				out = append(out, c.GetInstanceId())
			}
		}
	}
	return out
}

// pendingTimers are the reminder names of the timers created and not
// fired yet.
func (inst *instance) pendingTimers() []string {
	fired := map[int32]bool{}
	for _, h := range inst.history {
		if f := h.GetTimerFired(); f != nil {
			fired[f.GetTimerId()] = true
		}
	}
	var out []string
	if inst.started().GetScheduledStartTimestamp() != nil {
		out = append(out, startReminderName(inst.generation))
	}
	for _, h := range inst.history {
		if h.GetTimerCreated() != nil && !fired[h.GetEventId()] {
			out = append(out, timerPrefix+strconv.Itoa(int(h.GetEventId())))
		}
	}
	return out
}

// pendingActivities are the activity actor IDs of the activities
// scheduled and not answered yet.
func (inst *instance) pendingActivities() []string {
	var out []string
	probe := &protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{}}}
	for _, h := range inst.history {
		if h.GetTaskScheduled() != nil && inst.waitsFor(probe, h.GetEventId()) {
			out = append(out, activityActorID(inst.id, inst.generation, h.GetEventId()))
		}
	}
	return out
}

// deleteReminders deletes an ended instance's timer reminders and its
// activities' run-activity reminders, as daprd deletes every reminder of
// a workflow that ended.
func (e *Engine) deleteReminders(id string, timers, activities []string) {
	if len(timers)+len(activities) == 0 {
		return
	}
	e.goAsync(func(ctx context.Context) { e.deleteRemindersNow(ctx, id, timers, activities) })
}

func (e *Engine) deleteRemindersNow(ctx context.Context, id string, timers, activities []string) {
	for _, n := range timers {
		if err := e.cfg.Actors.DeleteReminder(ctx, e.workflowType, id, n); err != nil && ctx.Err() == nil {
			e.log.Debug("delete timer of ended workflow", "instance", id, "timer", n, "error", err)
		}
	}
	for _, a := range activities {
		if err := e.cfg.Actors.DeleteReminder(ctx, e.activityType, a, runActivityReminder); err != nil && ctx.Err() == nil {
			e.log.Debug("delete activity reminder of ended workflow", "instance", id, "activity", a, "error", err)
		}
	}
}

// finish ends the children of a recursive terminate (cascade.go) and
// tells the parent, if any, that the instance ended, then stops its
// watchdog (which repeats this until it succeeds). inst has ended.
func (e *Engine) finish(inst *instance, start *protos.ExecutionStartedEvent, c *protos.CompleteWorkflowAction) {
	id := inst.id
	children, term := inst.cascadeChildren()
	e.goAsync(func(ctx context.Context) {
		if len(children) > 0 && !e.cascade(ctx, id, children, term) {
			return
		}
		if p := start.GetParentInstance(); p != nil {
			var ev *protos.HistoryEvent
			if c.GetWorkflowStatus() == protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED {
				ev = &protos.HistoryEvent{EventType: &protos.HistoryEvent_ChildWorkflowInstanceCompleted{ChildWorkflowInstanceCompleted: &protos.ChildWorkflowInstanceCompletedEvent{
					TaskScheduledId: p.GetTaskScheduledId(), Result: c.GetResult()}}}
			} else {
				fd := c.GetFailureDetails()
				if fd == nil {
					fd = &protos.TaskFailureDetails{ErrorType: "WorkflowEnded", ErrorMessage: fmt.Sprintf("child workflow %s ended as %s", id, statusName(c.GetWorkflowStatus()))}
				}
				ev = &protos.HistoryEvent{EventType: &protos.HistoryEvent_ChildWorkflowInstanceFailed{ChildWorkflowInstanceFailed: &protos.ChildWorkflowInstanceFailedEvent{
					TaskScheduledId: p.GetTaskScheduledId(), FailureDetails: fd}}}
			}
			ev = stamp(ev)
			ev.Router = &protos.TaskRouter{SourceAppID: e.cfg.AppID, TargetAppID: p.AppID}
			if err := e.attest(ev, p.GetWorkflowInstance().GetInstanceId(), "", start.GetInput()); err != nil {
				e.log.Warn("attest result to parent workflow; the watchdog retries", "instance", id, "error", err)
				return
			}
			if err := e.sendResult(ctx, p.GetAppID(), p.GetWorkflowInstance().GetInstanceId(), ev); err != nil {
				e.log.Warn("tell parent workflow; the watchdog retries", "instance", id, "parent", p.GetWorkflowInstance().GetInstanceId(), "error", err)
				return
			}
		}
		if err := e.cfg.Actors.DeleteReminder(ctx, e.workflowType, id, watchdogName); err != nil && ctx.Err() == nil {
			e.log.Debug("delete workflow watchdog", "instance", id, "error", err)
		}
	})
}

// createChild starts a child instance of the parent ref (whose start
// event is parent) on the app router targets (this one if none).
func (e *Engine) createChild(parentID string, parent *protos.ExecutionStartedEvent, ref *protos.WorkflowInstance, taskID int32, childID, name string, c *protos.CreateChildWorkflowAction, router *protos.TaskRouter, ph *protos.PropagatedHistory) {
	key := "child|" + parentID + "|" + strconv.Itoa(int(taskID))
	e.mu.Lock()
	if e.running[key] {
		e.mu.Unlock()
		return
	}
	e.running[key] = true
	e.mu.Unlock()
	target := router.GetTargetAppID()
	if router == nil {
		router = e.router()
	}
	ev := stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionStarted{ExecutionStarted: &protos.ExecutionStartedEvent{
		Name: name, Version: c.GetVersion(), Input: c.GetInput(),
		WorkflowInstance: &protos.WorkflowInstance{InstanceId: childID, ExecutionId: wrap(newID())},
		ParentInstance: &protos.ParentInstanceInfo{TaskScheduledId: taskID, Name: wrap(parent.GetName()),
			WorkflowInstance: ref, AppID: &e.cfg.AppID},
		ParentTraceContext: orchestrationTraceContext(parent),
	}}, Router: router})
	e.track(parentID)
	e.goAsync(func(ctx context.Context) {
		ok := false
		defer func() {
			e.mu.Lock()
			delete(e.running, key)
			e.mu.Unlock()
			e.untrack(parentID, ok)
		}()
		_, err := e.call(ctx, e.workflowTypeOf(target), childID, methodCreate, createData(ev, ph))
		if err == nil || ctx.Err() != nil {
			ok = err == nil
			return
		}
		if !e.childCreateFails(target, err) && !denied(err) {
			e.log.Warn("child workflow not created yet; the watchdog retries", "instance", parentID, "child", childID, "app", target, "error", lookupErr(err))
			return
		}
		fd := &protos.TaskFailureDetails{ErrorType: "WorkflowCreateFailed", ErrorMessage: unwrapActorErr(err).Error()}
		switch {
		case denied(err):
			fd = deniedFailure()
		case childTaken(err):
			e.log.Warn("child workflow instance ID already exists", "instance", parentID, "child", childID, "error", unwrapActorErr(err))
			fd = childTakenFailure(unwrapActorErr(err))
		}
		fail := stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ChildWorkflowInstanceFailed{ChildWorkflowInstanceFailed: &protos.ChildWorkflowInstanceFailedEvent{TaskScheduledId: taskID, FailureDetails: fd}}})
		if err := e.attest(fail, parentID, "", c.GetInput()); err != nil {
			e.log.Warn("child workflow creation failure not attested", "instance", parentID, "child", childID, "error", err)
			return
		}
		if err := e.addEvent(ctx, parentID, fail); err != nil {
			e.log.Warn("child workflow not created", "instance", parentID, "child", childID, "error", err)
			return
		}
		ok = true
	})
}

// deliver adds an event of instance from to instance id, in the
// background; from keeps its watchdog until that is done.
func (e *Engine) deliver(from, id string, ev *protos.HistoryEvent) {
	e.track(from)
	e.goAsync(func(ctx context.Context) {
		err := e.addEvent(ctx, id, ev)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("deliver workflow event", "instance", id, "error", err)
		}
		e.untrack(from, err == nil || errors.Is(err, ErrNotFound) || strings.Contains(err.Error(), ErrNotFound.Error()))
	})
}

// track counts a delivery of instance id in flight; untrack ends it, and
// once the last one succeeded the instance settles (drops its watchdog)
// in its own turn.
func (e *Engine) track(id string) {
	e.mu.Lock()
	e.pending[id]++
	e.mu.Unlock()
}

func (e *Engine) untrack(id string, ok bool) {
	e.mu.Lock()
	e.pending[id]--
	last := e.pending[id] <= 0
	if last {
		delete(e.pending, id)
		if ch, waited := e.delivered[id]; waited {
			close(ch)
			delete(e.delivered, id)
		}
	}
	e.mu.Unlock()
	if ok && last && e.cfg.SchedulerReminders {
		e.goAsync(func(ctx context.Context) { e.settleCall(ctx, id, nil) })
	}
}

// awaitDeliveries returns a channel closed once instance id has no
// delivery in flight from this host.
func (e *Engine) awaitDeliveries(id string) <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pending[id] <= 0 {
		return closedChan
	}
	ch, ok := e.delivered[id]
	if !ok {
		ch = make(chan struct{})
		e.delivered[id] = ch
	}
	return ch
}

// closedChan is a channel that is closed.
var closedChan = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

// leaveWait bounds how long an instance that left this host waits for
// its deliveries in flight before it settles (settleLeaving), and the
// settle itself.
const leaveWait = 5 * time.Second

// settleLeaving settles an instance whose actor leaves this host (its
// type is no longer hosted here: the app's last worker left; placement
// moved it or was lost) with its watchdog stored, as its last turn here
// would have: its copy goes with the actor, so no later settle call finds
// it (settleCall), and the watchdog would stay until it fires, beside the
// reminders daprd keeps for such an instance. With nothing in flight it
// settles at once, in the deactivation (which holds the turn). With
// deliveries of this host in flight it settles once they ended (up to
// leaveWait), in the background: a deactivation never waits for them (a
// lost placement's would hold the reconnection). A copy loaded here again
// meanwhile keeps the watchdog; a host that took the instance over in that
// moment and stored the watchdog again may find it deleted, which only
// leaves a crash of that host in that turn to the instance's other
// reminders.
func (e *Engine) settleLeaving(inst *instance) {
	delivered := e.awaitDeliveries(inst.id)
	select {
	case <-delivered:
		if ctx, cancel, ok := e.leaveContext(); ok {
			e.settleGone(ctx, inst)
			cancel()
		}
		return
	default:
	}
	e.goAsync(func(context.Context) {
		ctx, cancel, ok := e.leaveContext()
		if !ok {
			return
		}
		defer cancel()
		select {
		case <-delivered:
		case <-ctx.Done():
			return // the watchdog stays: it re-drives what is still in flight
		}
		if !e.cached(inst.id) {
			e.settleGone(ctx, inst)
		}
	})
}

// leaveContext is the engine's run bounded by leaveWait; ok is false once
// the engine stops (the watchdog stays, which is always safe).
func (e *Engine) leaveContext() (context.Context, context.CancelFunc, bool) {
	e.mu.Lock()
	ectx := e.ctx
	e.mu.Unlock()
	if ectx == nil || ectx.Err() != nil {
		return nil, nil, false
	}
	ctx, cancel := context.WithTimeout(ectx, leaveWait)
	return ctx, cancel, true
}

// settleGone settles an instance whose actor left this host: its type may
// be hosted here no more, so the watchdog is deleted as another app's
// internal reminder is.
func (e *Engine) settleGone(ctx context.Context, inst *instance) {
	del := e.cfg.Actors.DeleteReminder
	if ir, ok := e.cfg.Actors.(internalReminders); ok {
		del = ir.DeleteInternalReminder
	}
	_ = e.settleWith(ctx, inst, del)
}

// settleCall calls the settle method of instance id in its own turn,
// with data, if a copy of it is kept here: only such a copy can have
// stored the watchdog (one loaded from the store has not; an ended one
// was forgotten), and the turn would load an instance for nothing.
func (e *Engine) settleCall(ctx context.Context, id string, data []byte) {
	if !e.cached(id) {
		return
	}
	if _, err := e.call(ctx, e.workflowType, id, methodSettle, data); err != nil && ctx.Err() == nil {
		e.log.Debug("settle workflow", "instance", id, "error", err)
	}
}

// cached reports whether a copy of instance id is kept here.
func (e *Engine) cached(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.instances[id]
	return ok
}

// settleNow is the data of a settle call that deletes the watchdog
// without waiting (settleLater's).
const settleNow = 1

// settleSoon settles the instance in its turn, at once unless what it
// waits for is an activity of its own app: then the watchdog is kept for
// SettleDelay (settleLater), so that a chain of activities does not delete
// and store it again for each. What waits on events, timers, children or
// another app's activities settles at once, as daprd keeps only their
// reminders.
func (e *Engine) settleSoon(ctx context.Context, inst *instance) error {
	if !e.settleable(inst) {
		return nil
	}
	if e.cfg.SettleDelay > 0 && inst.waitsOnOwnActivity(e.cfg.AppID) {
		e.settleLater(inst.id)
		return nil
	}
	return e.settle(ctx, inst)
}

// waitsOnOwnActivity reports whether the instance waits for the result
// of an activity that its own app runs.
func (inst *instance) waitsOnOwnActivity(appID string) bool {
	probe := &protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{}}}
	for _, h := range inst.history {
		if h.GetTaskScheduled() == nil {
			continue
		}
		if target := h.GetRouter().GetTargetAppID(); target != "" && target != appID {
			continue
		}
		if inst.waitsFor(probe, h.GetEventId()) {
			return true
		}
	}
	return false
}

// settleLater settles instance id in its own turn once SettleDelay has
// passed, once however often it is asked before: an instance whose next
// event comes sooner (the next activity of a chain) keeps its watchdog
// instead of deleting it and storing it again, two writes to the
// scheduler per activity. Keeping a watchdog longer is always safe: it
// only re-drives what a crash may have lost.
func (e *Engine) settleLater(id string) {
	e.mu.Lock()
	if e.settling[id] {
		e.mu.Unlock()
		return
	}
	e.settling[id] = true
	e.mu.Unlock()
	started := e.goAsync(func(ctx context.Context) {
		t := time.NewTimer(e.cfg.SettleDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		e.mu.Lock()
		delete(e.settling, id)
		e.mu.Unlock()
		if ctx.Err() == nil {
			e.settleCall(ctx, id, []byte{settleNow})
		}
	})
	if !started {
		e.mu.Lock()
		delete(e.settling, id)
		e.mu.Unlock()
	}
}

// arm makes sure the instance's watchdog reminder is stored: it has work
// in flight that only the watchdog would re-drive after a crash.
func (e *Engine) arm(ctx context.Context, inst *instance) {
	if err := e.armErr(ctx, inst); err != nil {
		e.log.Warn("workflow watchdog not stored yet; retrying in the background", "instance", inst.id, "error", err)
		e.rearm(inst.id)
	}
}

// armErr is arm that returns the failure to store the watchdog.
func (e *Engine) armErr(ctx context.Context, inst *instance) error {
	if inst.armed {
		return nil
	}
	if err := e.cfg.Actors.CreateReminder(ctx, e.watchdogReminder(inst.id)); err != nil {
		return fmt.Errorf("workflow watchdog: %w", err)
	}
	inst.armed = true
	return nil
}

// watchdogReminder is instance id's watchdog reminder.
func (e *Engine) watchdogReminder(id string) actors.ReminderRequest {
	return actors.ReminderRequest{
		ActorType: e.workflowType, ActorID: id, Name: watchdogName,
		DueTime: e.cfg.WatchdogPeriod.String(), Period: e.cfg.WatchdogPeriod.String(),
	}
}

// settle deletes the watchdog of a running instance that has nothing in
// flight any more: no inbox, no delivery from this host. What it waits
// for then is durable by itself (timer and activity reminders, children,
// external events).
func (e *Engine) settle(ctx context.Context, inst *instance) error {
	return e.settleWith(ctx, inst, e.cfg.Actors.DeleteReminder)
}

// settleWith is settle deleting the watchdog with del.
func (e *Engine) settleWith(ctx context.Context, inst *instance, del func(ctx context.Context, actorType, actorID, name string) error) error {
	if !e.settleable(inst) {
		return nil
	}
	if err := del(ctx, e.workflowType, inst.id, watchdogName); err != nil && !errors.Is(err, actors.ErrReminderNotFound) {
		e.log.Debug("delete workflow watchdog", "instance", inst.id, "error", err)
		return nil
	}
	inst.armed = false
	return nil
}

// settleable reports whether settle would delete the instance's
// watchdog now.
func (e *Engine) settleable(inst *instance) bool {
	if !e.cfg.SchedulerReminders || !inst.armed || !inst.exists || inst.completed() != nil || len(inst.inbox) > 0 {
		return false
	}
	return !e.busy(inst.id)
}

// busy reports whether this host drives work of instance id: deliveries
// in flight from it, a run, or a run that waits for a worker.
func (e *Engine) busy(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pending[id] > 0 || e.running["run|"+id] || e.running["stalled|"+id]
}

// timerData is the data of a timer's reminder.
type timerData struct {
	Generation uint64    `json:"generation"`
	ID         int32     `json:"id"`
	FireAt     time.Time `json:"fireAt"`
}

// startReminderName is the name of the reminder that starts an instance
// of a generation at its scheduled time.
func startReminderName(gen uint64) string { return startPrefix + strconv.FormatUint(gen, 36) }

// createTimerReminder stores a durable timer as a reminder named as
// daprd names them (timer-{event ID}, start-...); its data says which
// generation of the instance set it, so that one left by an earlier
// generation (continue-as-new, a re-created ID) is ignored.
func (e *Engine) createTimerReminder(ctx context.Context, id, name string, t timerData) error {
	due := time.Until(t.FireAt)
	if due < 0 {
		due = 0
	}
	return e.cfg.Actors.CreateReminder(ctx, actors.ReminderRequest{
		ActorType: e.workflowType, ActorID: id, Name: name, DueTime: due.String(), Any: timerAny(t),
		FailurePolicy: retryEverySecond(),
	})
}

// timerFired turns a timer's reminder into a TimerFired event (timer 0
// of a generation with no history is a scheduled start). A start
// reminder with no data (daprd's) runs what the inbox holds.
func (e *Engine) timerFired(ctx context.Context, inst *instance, name string, data []byte) error {
	a, err := reminderAny(data)
	if err != nil {
		return fmt.Errorf("timer reminder %s of %s: %w", name, inst.id, err)
	}
	t, ok, err := readTimer(a)
	if err != nil {
		// As daprd: a timer it cannot read is dropped, not retried.
		e.log.Error("workflow timer reminder dropped", "instance", inst.id, "reminder", name, "error", err)
		return nil
	}
	if !ok {
		if strings.HasPrefix(name, startPrefix) {
			return e.recover(ctx, inst)
		}
		e.log.Error("workflow timer reminder with no data dropped", "instance", inst.id, "reminder", name)
		return nil
	}
	if !inst.exists || t.Generation != inst.generation || inst.completed() != nil {
		return nil
	}
	if t.ID == 0 && len(inst.history) == 0 {
		e.kick(inst.id)
		return nil
	}
	ev := stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TimerFired{TimerFired: &protos.TimerFiredEvent{FireAt: timestamppb.New(t.FireAt), TimerId: t.ID}}})
	return e.addToInbox(ctx, inst, mustMarshal(ev))
}

// cascadeFired adds the ExecutionTerminated event daprd's
// cascade-terminate reminder carries (a parent terminated recursively) to
// the instance; an ended one has nothing to do.
func (e *Engine) cascadeFired(ctx context.Context, inst *instance, data []byte) error {
	a, err := reminderAny(data)
	var b []byte
	if err == nil {
		b, err = readEvent(a)
	}
	ev := new(protos.HistoryEvent)
	if err == nil {
		err = unmarshal(b, ev)
	}
	if err == nil && ev.GetExecutionTerminated() == nil {
		err = fmt.Errorf("carries a %T event, not ExecutionTerminated", ev.GetEventType())
	}
	if err != nil {
		e.log.Error("workflow cascade-terminate reminder dropped", "instance", inst.id, "error", err)
		return nil
	}
	if !inst.exists || inst.completed() != nil {
		return nil
	}
	err = e.addToInbox(ctx, inst, mustMarshal(stamp(ev)))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// recover re-drives what a crash may have lost: queued events, activity
// runs and children with no answer, timers past due, the parent's news.
func (e *Engine) recover(ctx context.Context, inst *instance) error {
	if !inst.exists {
		e.goAsync(func(ctx context.Context) { _ = e.cfg.Actors.DeleteReminder(ctx, e.workflowType, inst.id, watchdogName) })
		return nil
	}
	start := inst.started()
	if c := inst.completed(); c != nil {
		// Stored again (same name, same due time) in case the first
		// store was lost, as daprd does on a wake-up of an ended instance.
		if err := e.retain(ctx, inst); err != nil {
			return fmt.Errorf("workflow %s retention reminder: %w", inst.id, err)
		}
		e.finish(inst, start, &protos.CompleteWorkflowAction{WorkflowStatus: c.GetWorkflowStatus(), Result: c.GetResult(), FailureDetails: c.GetFailureDetails()})
		return nil
	}
	inst.armed = true // fired by it, or by a wake-up reminder: delete it if it is there
	e.mu.Lock()
	delete(e.running, "run|"+inst.id) // a lost kick
	e.mu.Unlock()
	if len(inst.inbox) > 0 {
		e.kick(inst.id)
	}
	for i, h := range inst.history {
		id := h.GetEventId()
		switch {
		case h.GetTaskScheduled() != nil:
			probe := &protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{}}}
			if inst.waitsFor(probe, id) {
				t := h.GetTaskScheduled()
				e.startActivity(ctx, inst.generation, &protos.ActivityRequest{Name: t.GetName(), Version: t.GetVersion(), Input: t.GetInput(),
					TaskId: id, TaskExecutionId: t.GetTaskExecutionId(), WorkflowInstance: inst.ref(), ParentTraceContext: t.GetParentTraceContext(),
					PropagatedHistory: e.propagateAt(inst, i, t.GetHistoryPropagationScope())}, h.GetRouter())
			}
		case h.GetTimerCreated() != nil:
			probe := &protos.HistoryEvent{EventType: &protos.HistoryEvent_TimerFired{TimerFired: &protos.TimerFiredEvent{}}}
			if at := h.GetTimerCreated().GetFireAt().AsTime(); inst.waitsFor(probe, id) && time.Since(at) > e.cfg.WatchdogPeriod {
				ev := stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TimerFired{TimerFired: &protos.TimerFiredEvent{FireAt: h.GetTimerCreated().GetFireAt(), TimerId: id}}})
				if err := e.addToInbox(ctx, inst, mustMarshal(ev)); err != nil {
					return err
				}
			}
		case h.GetChildWorkflowInstanceCreated() != nil:
			probe := &protos.HistoryEvent{EventType: &protos.HistoryEvent_ChildWorkflowInstanceCompleted{ChildWorkflowInstanceCompleted: &protos.ChildWorkflowInstanceCompletedEvent{}}}
			if inst.waitsFor(probe, id) {
				c := h.GetChildWorkflowInstanceCreated()
				e.createChild(inst.id, start, inst.ref(), id, c.GetInstanceId(), c.GetName(), &protos.CreateChildWorkflowAction{Version: c.GetVersion(), Input: c.GetInput()}, h.GetRouter(),
					e.propagateAt(inst, i, c.GetHistoryPropagationScope()))
			}
		}
	}
	return e.settle(ctx, inst)
}

// Flags of a purge call (the first byte of its data).
const (
	// purgeRecursive purges the instance's children too.
	purgeRecursive byte = 1 << iota
	// purgeRetention: the instance's retention reminder asks; that
	// reminder ends by itself once the call returns, so it is not deleted.
	purgeRetention
	// purgeForce purges an instance that has not ended (a cross-app
	// child of a force-purged parent).
	purgeForce
)

// purgeInstance deletes an ended instance's state; [1] if there was one.
func (e *Engine) purgeInstance(ctx context.Context, inst *instance, flags byte) ([]byte, error) {
	force := flags&purgeForce != 0
	if !inst.exists || inst.started() == nil {
		return []byte{0}, nil
	}
	if inst.completed() == nil && !force {
		return nil, fmt.Errorf("%w: %s", ErrNotCompleted, inst.id)
	}
	if flags&purgeRecursive != 0 {
		for _, h := range inst.history {
			if c := h.GetChildWorkflowInstanceCreated(); c != nil {
				if _, err := e.purgeOn(ctx, targetOf(h), c.GetInstanceId(), true, force); err != nil {
					e.log.Warn("purge child workflow", "instance", inst.id, "child", c.GetInstanceId(), "error", err)
				}
			}
		}
	}
	if err := e.purgeAll(ctx, inst, false, flags&purgeRetention != 0); err != nil {
		return nil, err
	}
	return []byte{1}, nil
}

// purgeAll deletes inst's state (directly in the store, or in its actor's
// turn) and every reminder it has, here and on other apps: daprd's purge
// deletes them before it answers. The retention reminder is kept when it
// is what asks (it ends by itself).
func (e *Engine) purgeAll(ctx context.Context, inst *instance, direct, byRetention bool) error {
	timers, activities, runs := inst.pendingTimers(), inst.pendingActivities(), e.remoteRuns(inst)
	if byRetention {
		if st := inst.state(); st != nil {
			e.watchers.rememberFinal(inst.id, st)
		}
	}
	if err := e.purge(ctx, inst, direct); err != nil {
		return err
	}
	// The host's copy of the instance, if any, is stale now: the next
	// call loads what the store holds (nothing).
	e.mu.Lock()
	delete(e.instances, inst.id)
	e.mu.Unlock()
	if !e.cfg.SchedulerReminders {
		activities = nil
	}
	e.deleteRemindersNow(ctx, inst.id, append(timers, watchdogName), activities)
	if !byRetention && (e.cfg.Retention != nil || e.cfg.SchedulerReminders) {
		if err := e.cfg.Actors.DeleteReminder(ctx, e.retainType, inst.id, retentionReminder); err != nil &&
			!errors.Is(err, actors.ErrReminderNotFound) && ctx.Err() == nil {
			e.log.Debug("delete retention reminder of purged workflow", "instance", inst.id, "error", err)
		}
	}
	e.deleteRuns(ctx, runs)
	e.watchers.notify(inst.id, nil)
	return nil
}

// statusName is Dapr's name of a status: RUNNING, COMPLETED, ...
func statusName(s protos.OrchestrationStatus) string {
	return strings.TrimPrefix(s.String(), "ORCHESTRATION_STATUS_")
}

// StatusName is Dapr's name of a runtime status (RUNNING, COMPLETED, ...).
func StatusName(s protos.OrchestrationStatus) string { return statusName(s) }
