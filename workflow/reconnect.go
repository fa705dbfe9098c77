package workflow

import "context"

// Work a worker took and lost. When the app's last worker disconnects
// with a work item, the turn that dispatched it ends at once (the engine's
// actors are being deactivated) and the work waits for the next worker to
// connect, which runs it: a workflow run is parked as stalled (run), an
// activity run here. daprd gets the same from its reminders' retries
// every second.

// parkActivity keeps the call data of activity actor id, whose worker
// left before it answered, until a worker connects.
func (e *Engine) parkActivity(id string, data []byte) {
	e.mu.Lock()
	e.parkedActs[id] = data
	e.mu.Unlock()
}

// rerunParkedActivities calls the parked activity runs again, now that a
// worker is connected; one that ran meanwhile (its run-activity reminder)
// is not run twice (the actor remembers it ran).
func (e *Engine) rerunParkedActivities() {
	e.mu.Lock()
	parked := e.parkedActs
	e.parkedActs = map[string][]byte{}
	e.mu.Unlock()
	for id, data := range parked {
		e.goAsync(func(ctx context.Context) {
			if _, err := e.call(ctx, e.activityType, id, methodExecute, data); err != nil && ctx.Err() == nil {
				e.log.Warn("activity run again after its worker left; its run-activity reminder retries it", "activity", id, "error", lookupErr(err))
			}
		})
	}
}
