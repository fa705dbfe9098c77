package workflow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dapr/durabletask-go/api/protos"

	"github.com/tandemrun/tandem/actors"
)

// A recursive terminate reaches an instance's children once the
// instance's end is saved, as daprd delivers it: to a child of this app
// as a cascade-terminate reminder (with scheduler reminders), which the
// scheduler retries until the child took it, so the cascade outlives
// this host; to a child of another app (or without scheduler reminders)
// as its ExecutionTerminated event, directly. Either is idempotent (an
// ended child ignores it). A cascade that fails is tried again, here
// until it succeeds and, after a crash, by the instance's watchdog, which
// finish deletes only once the cascade is delivered.

// cascadeChildren are the children a recursively terminated instance ends
// with it (none for another end), and the terminate event they get.
func (inst *instance) cascadeChildren() ([]childRef, *protos.HistoryEvent) {
	c := inst.completed()
	if c == nil || c.GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_TERMINATED {
		return nil, nil
	}
	var term *protos.ExecutionTerminatedEvent
	for _, h := range inst.history {
		if t := h.GetExecutionTerminated(); t != nil {
			term = t // the last one asked for the end
		}
	}
	if !term.GetRecurse() {
		return nil, nil
	}
	children := inst.runningChildRefs()
	if len(children) == 0 {
		return nil, nil
	}
	return children, stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionTerminated{
		ExecutionTerminated: &protos.ExecutionTerminatedEvent{Input: term.GetInput(), Recurse: true}}})
}

// cascadeOnce delivers a recursive terminate to each child, once; it
// returns the children it failed to reach.
func (e *Engine) cascadeOnce(ctx context.Context, children []childRef, term *protos.HistoryEvent) ([]childRef, error) {
	var (
		errs   []error
		failed []childRef
	)
	for _, c := range children {
		var err error
		switch {
		case !e.remote(c.app) && e.cfg.SchedulerReminders:
			err = e.cfg.Actors.CreateReminder(ctx, actors.ReminderRequest{
				ActorType: e.workflowType, ActorID: c.id, Name: cascadeTerminateName, DueTime: "0s",
				Any: mustAny(term), FailurePolicy: retryEverySecond(),
			})
		default:
			// A call, not a reminder: another app's actor type is not
			// this sidecar's to remind. Bounded: the child may be calling
			// back.
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = e.call(cctx, e.workflowTypeOf(c.app), c.id, methodAddEvent, mustMarshal(term))
			cancel()
			if err != nil && containsText(err, ErrNotFound) {
				err = nil // purged meanwhile: nothing to end
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("child %s: %w", c.id, err))
			failed = append(failed, c)
		}
	}
	return failed, errors.Join(errs...)
}

// cascade delivers a recursive terminate to the children, trying again
// until it succeeds or ctx ends (then false: the watchdog tries again).
func (e *Engine) cascade(ctx context.Context, id string, children []childRef, term *protos.HistoryEvent) bool {
	for wait := 100 * time.Millisecond; ; wait = min(wait*2, 5*time.Second) {
		var err error
		if children, err = e.cascadeOnce(ctx, children, term); err == nil {
			return true
		}
		e.log.Warn("recursive terminate not delivered to every child yet; retrying", "instance", id, "error", lookupErr(err))
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}
