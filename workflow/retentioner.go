package workflow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dapr/durabletask-go/api/protos"

	"github.com/tandemrun/tandem/actors"
)

// RetentionPolicy is the Configuration's
// spec.workflow.stateRetentionPolicy: how long an ended instance's state is
// kept before the sidecar purges it. A nil duration is unset; a status's
// own duration wins over AnyTerminal; 0 purges at once. With no duration
// that applies, the instance is kept until it is purged by hand.
type RetentionPolicy struct {
	AnyTerminal *time.Duration
	Completed   *time.Duration
	Failed      *time.Duration
	Terminated  *time.Duration
}

// after is how long an instance that ended with status is kept; false if
// the policy keeps it for good.
func (p *RetentionPolicy) after(status protos.OrchestrationStatus) (time.Duration, bool) {
	if p == nil {
		return 0, false
	}
	var d *time.Duration
	switch status {
	case protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED:
		d = p.Completed
	case protos.OrchestrationStatus_ORCHESTRATION_STATUS_FAILED:
		d = p.Failed
	case protos.OrchestrationStatus_ORCHESTRATION_STATUS_TERMINATED:
		d = p.Terminated
	}
	if d == nil {
		d = p.AnyTerminal
	}
	if d == nil {
		return 0, false
	}
	return *d, true
}

// retentionReminder is the one name of an instance's retention reminder
// (daprd's): a re-created instance's reminder replaces the earlier run's
// rather than adding a second one.
const retentionReminder = "retention"

// retain stores the retention reminder of an instance that ended: it
// fires the policy's duration after the instance's end (not after now,
// so that storing it again, after a crash, does not push it back). It is
// a no-op if the policy keeps the instance.
func (e *Engine) retain(ctx context.Context, inst *instance) error {
	c := inst.completed()
	if c == nil {
		return nil
	}
	keep, ok := e.cfg.Retention.after(c.GetWorkflowStatus())
	if !ok {
		return nil
	}
	end := inst.completedAt()
	if end.IsZero() {
		end = time.Now()
	}
	return e.cfg.Actors.CreateReminder(ctx, actors.ReminderRequest{
		ActorType: e.retainType, ActorID: inst.id, Name: retentionReminder,
		DueTime: end.Add(keep).UTC().Format(time.RFC3339Nano),
		// One shot, retried every second until the purge succeeds.
		FailurePolicy: retryEverySecond(),
	})
}

// completedAt is when the instance ended (its ExecutionCompleted event);
// zero if it did not.
func (inst *instance) completedAt() time.Time {
	for i := len(inst.history) - 1; i >= 0; i-- {
		if inst.history[i].GetExecutionCompleted() != nil {
			return inst.history[i].GetTimestamp().AsTime()
		}
	}
	return time.Time{}
}

// retentionerActor is daprd's third workflow actor type
// (dapr.internal.{namespace}.{appID}.retentioner, one actor per instance):
// its retention reminder purges the instance it is named after. daprd
// hosts it beside the workflow and activity types, so a sidecar with
// workflow workers reports the same actor types as daprd's in its
// metadata.
type retentionerActor struct{ e *Engine }

var _ actors.Internal = retentionerActor{}

func (retentionerActor) Deactivate(string) {}

// Invoke purges the instance once its retention reminder fires. The
// reminder is done (nil) when the instance is gone (purged by hand) or
// runs again (its ID was reused: the new run stores its own reminder when
// it ends) or is stalled (it stores its own when it ends, if ever); any
// other failure is returned, and the scheduler retries it.
func (r retentionerActor) Invoke(ctx context.Context, id, method string, _ []byte) ([]byte, error) {
	if !strings.HasPrefix(method, reminderPrefix) {
		return nil, fmt.Errorf("unknown workflow retentioner method %q", method)
	}
	_, err := r.e.call(ctx, r.e.workflowType, id, methodPurge, []byte{purgeRetention})
	if err = unwrapActorErr(err); err != nil && !errors.Is(err, ErrNotCompleted) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrStalled) {
		r.e.log.Warn("workflow retention purge failed; retried", "instance", id, "error", err)
		return nil, err
	}
	r.e.log.Debug("workflow retention purge", "instance", id, "error", err)
	return nil, nil
}
