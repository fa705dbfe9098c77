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

	"github.com/tandemrun/tandem/actors"
)

const (
	methodExecute = "Execute"
	// runActivityReminder is daprd's name of the reminder on an activity
	// actor that runs it and keeps the run durable: with the scheduler,
	// the workflow's call stores it due at once and the run happens inside
	// its trigger (one shot, retried every second until a run succeeds).
	runActivityReminder = "run-activity"
)

// activityActor is the activity actor type: one actor per activity run,
// ID {instance}::{taskID}::{generation}, so that runs spread over hosts.
type activityActor struct{ e *Engine }

var _ actors.Internal = activityActor{}

func activityActorID(instanceID string, gen uint64, taskID int32) string {
	return instanceID + "::" + strconv.Itoa(int(taskID)) + "::" + strconv.FormatUint(gen, 10)
}

// RemindersOutsideTurn: the run-activity reminder runs the activity
// outside the actor's turn and is not cut short when the placement table
// changes (daprd's SkipLock), so a run is not repeated on the actor's new
// owner when hosts join mid-run.
func (activityActor) RemindersOutsideTurn() bool { return true }

var _ actors.ReminderRunner = activityActor{}

// Deactivate starts the grace of the actor's done mark (doneMarks): a
// trigger tried again soon after finds the run done all the same.
func (a activityActor) Deactivate(id string) {
	a.e.mu.Lock()
	a.e.done.deactivated(id, time.Now())
	a.e.mu.Unlock()
}

// Invoke takes an activity run (Execute) or runs it (its run-activity
// reminder's trigger). With the scheduler, as daprd's activity actor,
// Execute only stores the run-activity reminder, due at once, and the run
// goes on inside its trigger: when the trigger is called off (the app
// turned unhealthy, the sidecar's scheduler streams were opened again)
// the run goes on in the background and the reminder's next try follows
// it. Without the scheduler Execute runs the activity itself. A run that
// ended here is not repeated (the instance's watchdog may ask again while
// the answer is on its way).
func (a activityActor) Invoke(ctx context.Context, id, method string, data []byte) ([]byte, error) {
	e := a.e
	if err := e.checkActivityCall(ctx, id, method, data); err != nil {
		return nil, err
	}
	switch method {
	case methodExecute:
	case reminderPrefix + runActivityReminder:
		a, err := reminderAny(data)
		if err == nil {
			data, err = readInvocation(a)
		}
		if err != nil {
			// Retrying cannot make it readable: dropped.
			e.log.Error("run-activity reminder dropped", "activity", id, "error", err)
			return nil, nil
		}
	default:
		return nil, fmt.Errorf("unknown activity actor method %q", method)
	}
	// An activity actor ID repeats when an instance is purged and created
	// again (both start at generation 1): as daprd's in-flight key, a run
	// is the same only with the same task execution ID (the SDK's for the
	// scheduled call, kept across its retries).
	req, router, err := decodeActivity(id, data)
	if err != nil {
		return nil, err
	}
	execution := req.GetTaskExecutionId()
	e.mu.Lock()
	doneFor, done := e.done.get(id)
	e.mu.Unlock()
	if done && doneFor == execution {
		return nil, nil
	}
	if method == methodExecute && e.cfg.SchedulerReminders {
		// The scheduler runs it at once, or when the cluster-wide limits
		// allow. With no limit on activities the run starts here at once,
		// beside the reminder's write: the reminder keeps it durable (its
		// trigger follows this run, or finds it done), and the run does
		// not wait for the scheduler's two commits (the reminder's and its
		// tick's claim) and its delivery. Until the reminder is stored the
		// instance's watchdog re-drives a run a crash lost: the caller
		// holds the instance's settle until this call returns.
		if !e.cfg.ClusterLimits.Activities {
			e.beginRun(id, req, router, data)
		}
		return nil, e.scheduleActivity(ctx, id, data)
	}
	if method == methodExecute {
		return nil, e.execute(ctx, id, req, router, data)
	}
	return nil, e.executeInTrigger(ctx, id, req, router, data)
}

// activityRun is an activity run under way on this host, which the
// retries of its run-activity reminder follow.
type activityRun struct {
	done chan struct{}
	err  error
}

// executeInTrigger runs the activity inside its run-activity reminder's
// trigger ctx. The run itself goes on under the engine's context: if ctx
// ends first (the trigger is called off) it logs daprd's words and
// returns ctx's error, which the reminder's failure policy retries; a
// retry that finds the run under way waits for it, as daprd's in-flight
// calls.
func (e *Engine) executeInTrigger(ctx context.Context, id string, req *protos.ActivityRequest, router *protos.TaskRouter, data []byte) error {
	run := e.beginRun(id, req, router, data)
	select {
	case <-run.done:
		return run.err
	case <-ctx.Done():
		// daprd's words: tools and tests look for them.
		e.log.Warn(fmt.Sprintf("%s: received cancellation signal while waiting for activity execution '%s'", id, runActivityReminder))
		return ctx.Err()
	}
}

// beginRun starts the activity run under the engine's context, unless a
// run of the same actor and task execution is under way here, and
// returns the run to follow.
func (e *Engine) beginRun(id string, req *protos.ActivityRequest, router *protos.TaskRouter, data []byte) *activityRun {
	key := id + "::" + req.GetTaskExecutionId()
	e.mu.Lock()
	run, following := e.inflight[key]
	if !following {
		run = &activityRun{done: make(chan struct{})}
		e.inflight[key] = run
	}
	e.mu.Unlock()
	if !following {
		finish := func(err error) {
			e.mu.Lock()
			delete(e.inflight, key)
			e.mu.Unlock()
			run.err = err
			close(run.done)
		}
		if !e.goAsync(func(bg context.Context) { finish(e.execute(bg, id, req, router, data)) }) {
			finish(errors.New("the workflow engine is stopping"))
		}
	}
	return run
}

// execute runs the activity on a worker of this host (or in process) and
// adds its result to the instance.
func (e *Engine) execute(ctx context.Context, id string, req *protos.ActivityRequest, router *protos.TaskRouter, data []byte) error {
	// An activity keeps nothing: what it received is verified, or it
	// does not run.
	if _, err := e.verifyIncoming(req.GetPropagatedHistory()); err != nil {
		return fmt.Errorf("activity '%s::%d' rejecting invocation: propagated history verification failed: %w", req.GetName(), req.GetTaskId(), err)
	}
	instanceID := req.GetWorkflowInstance().GetInstanceId()
	key := "a|" + instanceID + "|" + strconv.Itoa(int(req.GetTaskId()))
	var res proto.Message
	release, err := e.activitySlots.acquire(ctx)
	if err != nil {
		return err
	}
	endSpan := e.startActivitySpan(ctx, req)
	began := time.Now()
	if e.inProcess(req.GetName()) {
		res, err = e.cfg.InProcess.ExecuteActivity(ctx, req)
	} else {
		// A run a worker took goes on when its caller gives up (the sidecar
		// of the instance stopped), and its result is delivered all the same.
		res, err = e.workers.dispatchKeep(ctx, key, &protos.WorkItem{Request: &protos.WorkItem_ActivityRequest{ActivityRequest: req}}, -1, true)
	}
	release()
	endSpan(err)
	if errors.Is(err, errNoWorker) {
		e.parkActivity(id, data)
	}
	if err != nil {
		if m := e.cfg.Metrics; m != nil {
			m.ActivityOperation(req.GetName(), statusRecoverable, time.Since(began))
		}
		return err
	}
	ctx, cancel := e.detach(ctx)
	defer cancel()
	resp := res.(*protos.ActivityResponse)
	took := time.Since(began)
	if m := e.cfg.Metrics; m != nil {
		m.ActivityOperation(req.GetName(), statusSuccess, took)
	}
	// The execution's status, as daprd's, once its result is delivered:
	// failed when the activity failed or its instance is gone (its state
	// was purged or lost), success otherwise.
	status := statusSuccess
	if resp.GetFailureDetails() != nil {
		status = statusFailed
	}
	var ev *protos.HistoryEvent
	if fd := resp.GetFailureDetails(); fd != nil {
		ev = &protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskFailed{TaskFailed: &protos.TaskFailedEvent{
			TaskScheduledId: req.GetTaskId(), FailureDetails: fd, TaskExecutionId: req.GetTaskExecutionId()}}}
	} else {
		ev = &protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{
			TaskScheduledId: req.GetTaskId(), Result: resp.GetResult(), TaskExecutionId: req.GetTaskExecutionId()}}}
	}
	ev = stamp(ev)
	ev.Router = cloneRouter(router)
	if err := e.attest(ev, instanceID, req.GetName(), req.GetInput()); err != nil {
		return fmt.Errorf("activity %s: %w", id, err)
	}
	for wait := 100 * time.Millisecond; ; wait = min(wait*2, 5*time.Second) {
		err := e.sendResult(ctx, router.GetSourceAppID(), instanceID, ev)
		if err == nil {
			break
		}
		if strings.Contains(err.Error(), ErrNotFound.Error()) {
			e.log.Error("workflow instance not found when reporting activity result", "instance", instanceID, "task", req.GetTaskId(), "activity", id)
			status = statusFailed
			break
		}
		e.log.Warn("activity result not delivered yet", "instance", instanceID, "task", req.GetTaskId(), "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	if m := e.cfg.Metrics; m != nil {
		m.ActivityExecution(req.GetName(), status, took)
	}
	e.mu.Lock()
	e.done.set(id, req.GetTaskExecutionId())
	delete(e.parkedActs, id)
	e.mu.Unlock()
	return nil
}

// startActivity calls the run's activity actor in the background; the
// actor stores the run's run-activity reminder before it runs. router is
// the TaskScheduled event's: its target app runs the activity.
func (e *Engine) startActivity(_ context.Context, gen uint64, req *protos.ActivityRequest, router *protos.TaskRouter) {
	if router == nil {
		router = &protos.TaskRouter{SourceAppID: e.cfg.AppID}
	}
	e.runActivity(req.GetWorkflowInstance().GetInstanceId(), gen, req, router)
}

// storeRunActivity stores the run-activity reminder of activity actor id
// of actorType, with daprd's data: run is the run's ActivityInvocation as
// encodeActivity wrote it.
func (e *Engine) storeRunActivity(ctx context.Context, actorType, id string, run []byte) error {
	return e.remind(ctx, actors.ReminderRequest{
		ActorType: actorType, ActorID: id, Name: runActivityReminder, DueTime: e.cfg.WatchdogPeriod.String(),
		Any: invocationAny(run), FailurePolicy: retryEverySecond(),
	})
}

// runActivity calls the run's activity actor in the background, once at a
// time per run from this host.
func (e *Engine) runActivity(instanceID string, gen uint64, req *protos.ActivityRequest, router *protos.TaskRouter) {
	id := activityActorID(instanceID, gen, req.GetTaskId())
	actorType := e.activityTypeOf(router.GetTargetAppID())
	// Keyed by the run's execution too: an instance purged and created
	// again reuses the actor IDs, and its new run must not wait for the
	// old one's call to return.
	key := "act|" + id + "|" + req.GetTaskExecutionId()
	e.mu.Lock()
	if e.running[key] {
		e.mu.Unlock()
		return
	}
	e.running[key] = true
	e.mu.Unlock()
	data := encodeActivity(req, router)
	// The instance keeps its watchdog until the run's reminder is stored
	// (settle waits for its deliveries in flight).
	e.track(instanceID)
	stored := false
	started := e.goAsync(func(ctx context.Context) {
		defer func() {
			e.mu.Lock()
			delete(e.running, key)
			e.mu.Unlock()
			e.untrack(instanceID, stored)
		}()
		_, err := e.call(ctx, actorType, id, methodExecute, data)
		stored = err == nil
		if denied(err) {
			e.failDeniedActivity(ctx, gen, req, router)
			return
		}
		if err != nil && ctx.Err() == nil {
			e.log.Warn("activity run failed; the instance's watchdog retries it", "instance", instanceID, "task", req.GetTaskId(), "error", lookupErr(err))
			if e.cfg.SchedulerReminders {
				// The call may not have reached the actor, which stores the
				// reminder: stored from here, the scheduler runs it again.
				if err := e.storeRunActivity(ctx, actorType, id, data); err != nil {
					e.log.Warn("run-activity reminder not stored: a crash may lose the activity run", "instance", instanceID, "task", req.GetTaskId(), "error", err)
				} else {
					stored = true
				}
			}
		}
	})
	if !started {
		e.mu.Lock()
		delete(e.running, key)
		e.mu.Unlock()
		e.untrack(instanceID, false)
	}
}
