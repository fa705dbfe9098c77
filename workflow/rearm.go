package workflow

import (
	"context"
	"time"
)

// rearm stores an instance's watchdog in the background after the turn
// that needed it failed to (the scheduler refused it for a while): the
// work in flight then has its driver after a crash all the same. Once
// stored, the watchdog fires as any does: it re-drives what is left, or
// finds nothing and is deleted (settle).
func (e *Engine) rearm(id string) {
	key := "arm|" + id
	e.mu.Lock()
	if e.running[key] {
		e.mu.Unlock()
		return
	}
	e.running[key] = true
	e.mu.Unlock()
	e.goAsync(func(ctx context.Context) {
		defer func() {
			e.mu.Lock()
			delete(e.running, key)
			e.mu.Unlock()
		}()
		for wait := 200 * time.Millisecond; ; wait = min(wait*2, 5*time.Second) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			err := e.cfg.Actors.CreateReminder(ctx, e.watchdogReminder(id))
			if err == nil {
				return
			}
			e.log.Debug("workflow watchdog still not stored; retrying", "instance", id, "error", err)
		}
	})
}
