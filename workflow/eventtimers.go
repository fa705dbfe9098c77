package workflow

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/dapr/durabletask-go/api/protos"

	"github.com/tandemrun/tandem/actors"
)

// eventTimerName is the external event (upper-cased: event names match
// case-insensitively) whose wait a timer times out; false for other
// timers. A timer from an SDK that sets no origin names its event.
func eventTimerName(tc *protos.TimerCreatedEvent) (string, bool) {
	if ee := tc.GetExternalEvent(); ee != nil {
		return strings.ToUpper(ee.GetName()), true
	}
	if tc.Name != nil && tc.GetOrigin() == nil {
		return strings.ToUpper(tc.GetName()), true
	}
	return "", false
}

// cancelledEventTimers are the timers of waits for external events that
// events from index from on in history answered: each event raised takes
// the oldest unfired timer of its name created before it. The events
// before from are paired too, so that timers answered in earlier turns do
// not take this turn's events.
func cancelledEventTimers(history []*protos.HistoryEvent, from int) []int32 {
	pending := map[string][]int32{} // event name: timer IDs, oldest first
	nameOf := map[int32]string{}
	var out []int32
	for i, h := range history {
		switch {
		case h.GetTimerCreated() != nil:
			if name, ok := eventTimerName(h.GetTimerCreated()); ok {
				pending[name] = append(pending[name], h.GetEventId())
				nameOf[h.GetEventId()] = name
			}
		case h.GetTimerFired() != nil:
			id := h.GetTimerFired().GetTimerId()
			name, ok := nameOf[id]
			if !ok {
				continue
			}
			delete(nameOf, id)
			ids := pending[name]
			for j, t := range ids {
				if t == id {
					pending[name] = append(ids[:j:j], ids[j+1:]...)
					break
				}
			}
		case h.GetEventRaised() != nil:
			name := strings.ToUpper(h.GetEventRaised().GetName())
			ids := pending[name]
			if len(ids) == 0 {
				continue
			}
			pending[name] = ids[1:]
			delete(nameOf, ids[0])
			if i >= from {
				out = append(out, ids[0])
			}
		}
	}
	return out
}

// deleteTimers deletes the reminders of timers no longer waited for, as
// daprd deletes the timer of a wait for an event once the event came.
func (e *Engine) deleteTimers(ctx context.Context, id string, timers []int32) {
	for _, t := range timers {
		name := timerPrefix + strconv.Itoa(int(t))
		if err := e.cfg.Actors.DeleteReminder(ctx, e.workflowType, id, name); err != nil && !errors.Is(err, actors.ErrReminderNotFound) && ctx.Err() == nil {
			e.log.Debug("delete timer of an answered event wait", "instance", id, "timer", name, "error", err)
		}
	}
}
