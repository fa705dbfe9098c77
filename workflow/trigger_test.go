package workflow

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tandemrun/tandem/actors"
	"github.com/tandemrun/tandem/internal/syncbuf"
)

// TestActivityRunsInTrigger: with the scheduler and cluster-wide limits
// on activities, as daprd, an activity runs inside its run-activity
// reminder's trigger, not in the workflow's call: nothing is dispatched
// before the reminder (due at once) fires. A
// trigger called off while the worker holds the run (the app turned
// unhealthy) logs daprd's words and fails, and the run goes on; the
// reminder's retry follows it rather than dispatching it again, and
// succeeds with its answer; the instance completes.
func TestActivityRunsInTrigger(t *testing.T) {
	host := newMemHost()
	host.noFire = true // the test fires it
	var logs syncbuf.Buffer
	e, w, next := triggerEngine(t, Config{AppID: "app", Actors: host, SchedulerReminders: true, WatchdogPeriod: time.Hour,
		ClusterLimits: ClusterLimits{Activities: true}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := t.Context()
	idle := func(what string) {
		t.Helper()
		select {
		case item := <-w.items:
			t.Fatalf("%s: work item %v dispatched", what, item)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if _, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "wf", InstanceId: "i1"}); err != nil {
		t.Fatal(err)
	}
	next("the first run")
	e.workers.complete("o|i1", &protos.WorkflowResponse{InstanceId: "i1", Actions: []*protos.WorkflowAction{{Id: 0,
		WorkflowActionType: &protos.WorkflowAction_ScheduleTask{ScheduleTask: &protos.ScheduleTaskAction{Name: "slow", TaskExecutionId: "x1"}}}}})
	act := waitReminder(t, host, e.activityType, runActivityReminder)
	if act.DueTime != "0s" || act.ConcurrencyKey == nil || *act.ConcurrencyKey != "slow" || act.FailurePolicy == nil {
		t.Fatalf("run-activity reminder %+v, want one due at once keyed slow, retried", act)
	}
	idle("before the reminder fired")

	data := reminderData(t, act)
	trigger, callOff := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := host.CallInternal(trigger, act.ActorType, act.ActorID, reminderPrefix+runActivityReminder, data)
		first <- err
	}()
	item := next("the activity, in its trigger").GetActivityRequest()
	if item == nil {
		t.Fatal("the trigger dispatched no activity")
	}
	callOff()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("the called-off trigger = %v, want context.Canceled", err)
	}
	if want := act.ActorID + ": received cancellation signal while waiting for activity execution 'run-activity'"; !strings.Contains(logs.String(), want) {
		t.Fatalf("log lacks %q:\n%s", want, logs.String())
	}

	retry := make(chan error, 1)
	go func() {
		_, err := host.CallInternal(context.Background(), act.ActorType, act.ActorID, reminderPrefix+runActivityReminder, data)
		retry <- err
	}()
	idle("the retry while the run is under way")
	select {
	case err := <-retry:
		t.Fatalf("the retry returned (%v) before the run ended", err)
	default:
	}
	if !e.workers.complete("a|i1|"+strconv.Itoa(int(item.GetTaskId())), &protos.ActivityResponse{InstanceId: "i1", TaskId: item.GetTaskId()}) {
		t.Fatal("nothing waited for the activity's answer after its trigger was called off")
	}
	if err := <-retry; err != nil {
		t.Fatalf("the retry = %v, want nil once the run ended", err)
	}
	next("the run with the result")
	completeAndFireAgain(t, e, host, act, data) // answered without a run
	idle("a firing after the run ended")
}

// TestActivityStartsBesideItsReminder: with the scheduler and no
// cluster-wide limit on activities, the workflow's call starts the run at
// once, beside storing its run-activity reminder: the worker has the
// activity before the reminder fires. The reminder firing while the run is
// under way follows it (nothing is dispatched again) and succeeds with its
// answer; one firing after the end is answered without a run. The
// instance completes with the activity's result.
func TestActivityStartsBesideItsReminder(t *testing.T) {
	host := newMemHost()
	host.noFire = true // the test fires it
	e, w, next := triggerEngine(t, Config{AppID: "app", Actors: host, SchedulerReminders: true, WatchdogPeriod: time.Hour})
	item := startWithActivity(t, e, next, "slow", "the activity, before its reminder fired")
	act := waitReminder(t, host, e.activityType, runActivityReminder)
	if act.DueTime != "0s" || act.FailurePolicy == nil {
		t.Fatalf("run-activity reminder %+v, want one due at once, retried", act)
	}
	data := reminderData(t, act)
	fired := make(chan error, 1)
	go func() {
		_, err := host.CallInternal(context.Background(), act.ActorType, act.ActorID, reminderPrefix+runActivityReminder, data)
		fired <- err
	}()
	select {
	case item := <-w.items:
		t.Fatalf("the reminder's firing dispatched %v again", item)
	case err := <-fired:
		t.Fatalf("the firing returned (%v) before the run ended", err)
	case <-time.After(100 * time.Millisecond):
	}
	if !e.workers.complete("a|i1|"+strconv.Itoa(int(item.GetTaskId())), &protos.ActivityResponse{InstanceId: "i1", TaskId: item.GetTaskId(),
		Result: wrapperspb.String("7")}) {
		t.Fatal("nothing waited for the activity's answer")
	}
	if err := <-fired; err != nil {
		t.Fatalf("the firing = %v, want nil once the run ended", err)
	}
	res := next("the run with the result").GetWorkflowRequest()
	if got := lastResult(res); got != "7" {
		t.Fatalf("the instance's new events carry result %q, want 7", got)
	}
	completeAndFireAgain(t, e, host, act, data)
	select {
	case item := <-w.items:
		t.Fatalf("a firing after the run ended dispatched %v", item)
	case <-time.After(100 * time.Millisecond):
	}
}

// lastResult is the result of the last TaskCompleted among a run's new
// events.
func lastResult(req *protos.WorkflowRequest) string {
	got := ""
	for _, ev := range req.GetNewEvents() {
		if tc := ev.GetTaskCompleted(); tc != nil {
			got = tc.GetResult().GetValue()
		}
	}
	return got
}

// triggerEngine runs an engine of cfg with one worker until the test
// ends; next takes the worker's next work item (failing after 10s).
func triggerEngine(t *testing.T, cfg Config) (e *Engine, w *worker, next func(what string) *protos.WorkItem) {
	t.Helper()
	e = New(cfg)
	e.host()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.bg.Wait() })
	go func() { _ = e.Run(ctx) }()
	// Background work started before Run would not stop with it.
	for running := false; !running; time.Sleep(time.Millisecond) {
		e.mu.Lock()
		running = e.ctx != nil
		e.mu.Unlock()
	}
	w, remove := e.workers.add()
	t.Cleanup(remove)
	next = func(what string) *protos.WorkItem {
		t.Helper()
		select {
		case item := <-w.items:
			return item
		case <-time.After(10 * time.Second):
			t.Fatalf("no work item: %s", what)
			return nil
		}
	}
	return e, w, next
}

// completeAndFireAgain completes instance i1 (its run with the activity's
// result is under way) and fires its run-activity reminder act once more.
func completeAndFireAgain(t *testing.T, e *Engine, host *memHost, act actors.ReminderRequest, data []byte) {
	t.Helper()
	e.workers.complete("o|i1", &protos.WorkflowResponse{InstanceId: "i1", Actions: []*protos.WorkflowAction{{Id: 1,
		WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: &protos.CompleteWorkflowAction{
			WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}}}})
	waitStatus(t, e, "i1", protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED)
	if _, err := host.CallInternal(context.Background(), act.ActorType, act.ActorID, reminderPrefix+runActivityReminder, data); err != nil {
		t.Fatal(err)
	}
}

// TestEventStoresTheKeptWatchdogAgain: an activity's result that reaches
// an instance whose watchdog is kept since its last turn (it waits for
// an activity of its own app: settleLater) runs it at once and stores the
// watchdog again, as daprd stores a wake-up reminder per event; a
// scheduler that fails that write delays nothing.
func TestEventStoresTheKeptWatchdogAgain(t *testing.T) {
	host := newMemHost()
	host.noFire = true
	e, _, next := triggerEngine(t, Config{AppID: "app", Actors: host, SchedulerReminders: true, WatchdogPeriod: time.Hour, SettleDelay: time.Hour})
	item := startWithActivity(t, e, next, "act", "the activity")
	waitReminder(t, host, e.activityType, runActivityReminder)
	waitReminder(t, host, e.workflowType, watchdogName)
	host.mu.Lock()
	host.remindErr = errors.New("scheduler unavailable")
	host.mu.Unlock()
	if !e.workers.complete("a|i1|"+strconv.Itoa(int(item.GetTaskId())), &protos.ActivityResponse{InstanceId: "i1", TaskId: item.GetTaskId()}) {
		t.Fatal("nothing waited for the activity's answer")
	}
	if got := next("the run with the result").GetWorkflowRequest(); got == nil {
		t.Fatal("no run after the activity's result")
	}
	deadline := time.Now().Add(5 * time.Second)
	for host.remindFailures() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the result did not store the watchdog again")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startWithActivity starts instance i1, whose first run schedules
// activity name (task execution x1), and returns the activity's work item.
func startWithActivity(t *testing.T, e *Engine, next func(string) *protos.WorkItem, name, what string) *protos.ActivityRequest {
	t.Helper()
	if _, err := e.Start(t.Context(), &protos.CreateInstanceRequest{Name: "wf", InstanceId: "i1"}); err != nil {
		t.Fatal(err)
	}
	next("the first run")
	e.workers.complete("o|i1", &protos.WorkflowResponse{InstanceId: "i1", Actions: []*protos.WorkflowAction{{Id: 0,
		WorkflowActionType: &protos.WorkflowAction_ScheduleTask{ScheduleTask: &protos.ScheduleTaskAction{Name: name, TaskExecutionId: "x1"}}}}})
	item := next(what).GetActivityRequest()
	if item == nil {
		t.Fatalf("%s: no activity dispatched", what)
	}
	return item
}
