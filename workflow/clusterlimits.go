package workflow

import (
	"context"
	"errors"

	"github.com/tandemrun/tandem/actors"
)

// ClusterLimits says which runs the scheduler bounds across all the app's
// sidecars (the Configuration's spec.workflow
// globalMaxConcurrentWorkflowInvocations, workflowConcurrencyLimits,
// globalMaxConcurrentActivityInvocations, activityConcurrencyLimits; the
// sidecar sends the limits on its job streams). As in daprd, such runs
// start from a reminder that carries the run's name as its concurrency
// key, and run inside the reminder's trigger: the scheduler holds back
// the triggers of a limited actor type, or name, while as many as the
// limit are unanswered.
type ClusterLimits struct {
	// Workflows: each run of an instance (its start, each batch of new
	// events) is a reminder on its workflow actor whose key is the
	// workflow's name.
	Workflows bool
	// Activities: each activity run is its run-activity reminder, due at
	// once, whose key is the activity's name. With the scheduler every
	// activity runs so, limited or not (as daprd's): the field only says
	// that the limits apply.
	Activities bool
}

// limitedRunPrefix names the reminder that runs an instance under the
// cluster-wide limits. It is one of daprd's wake-up reminders
// (new-event...), so that a daprd that takes the instance over runs its
// inbox when it fires.
const limitedRunPrefix = newEventPrefix + "-run-"

// ActorTypes are the workflow and activity actor types of the engine of
// appID in namespace ("" is "default"), the types the cluster-wide
// limits name.
func ActorTypes(namespace, appID string) (workflowType, activityType string) {
	if namespace == "" {
		namespace = "default"
	}
	prefix := "dapr.internal." + namespace + "." + appID
	return prefix + ".workflow", prefix + ".activity"
}

// runsLimited reports whether the instances' runs go through the
// scheduler's limits.
func (e *Engine) runsLimited() bool {
	return e.cfg.SchedulerReminders && e.cfg.ClusterLimits.Workflows && e.cfg.Actors != nil
}

// kickLimited stores the reminder whose trigger runs the instance (kick
// marked it running). A reminder not stored leaves the run to the
// instance's watchdog, or the next kick.
func (e *Engine) kickLimited(id string) {
	e.goAsync(func(ctx context.Context) {
		err := e.storeLimitedRun(ctx, id)
		if err == nil || ctx.Err() != nil {
			return
		}
		e.log.Warn("workflow run reminder not stored; its watchdog retries it", "instance", id, "error", err)
		e.mu.Lock()
		delete(e.running, "run|"+id)
		e.mu.Unlock()
	})
}

// storeLimitedRun stores a run reminder of instance id, due at once,
// keyed by the workflow's name (read from the store: kick is called
// outside the instance's turn too). Each has its own name: one that is
// held back or under way is never replaced.
func (e *Engine) storeLimitedRun(ctx context.Context, id string) error {
	var key *string
	if name, ok := e.runNames.Load(id); ok {
		key = new(name.(string))
	} else {
		inst, err := e.load(ctx, id)
		if err != nil {
			return err
		}
		if start := inst.started(); start != nil && start.GetName() != "" {
			key = new(start.GetName())
		}
	}
	return e.cfg.Actors.CreateReminder(ctx, actors.ReminderRequest{
		ActorType: e.workflowType, ActorID: id, Name: limitedRunPrefix + newID(), DueTime: "0s",
		FailurePolicy: retryEverySecond(), ConcurrencyKey: key,
	})
}

// runLimited runs the instance in its run reminder's trigger, which the
// scheduler answers, and lets go of the limit's slot, when the run ends.
func (e *Engine) runLimited(ctx context.Context, inst *instance) error {
	if start := inst.started(); start != nil && start.GetName() != "" {
		e.runNames.Store(inst.id, start.GetName())
	}
	return e.run(ctx, inst)
}

// scheduleActivity stores the run-activity reminder of activity actor id,
// due at once and keyed by the activity's name: the scheduler fires it
// when the limits allow, and the run goes on inside that trigger (Invoke's
// reminder path).
func (e *Engine) scheduleActivity(ctx context.Context, id string, data []byte) error {
	req, _, err := decodeActivity(id, data)
	if err != nil {
		return err
	}
	name := req.GetName()
	if name == "" {
		return errors.New("activity " + id + " has no name")
	}
	return e.remind(ctx, actors.ReminderRequest{
		ActorType: e.activityType, ActorID: id, Name: runActivityReminder, DueTime: "0s",
		Any: invocationAny(data), FailurePolicy: retryEverySecond(), ConcurrencyKey: &name,
	})
}
