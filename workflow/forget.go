package workflow

// forget drops the cached state of an instance that ended, as daprd
// deactivates a workflow actor once its run completes: an ended
// instance's history (its inputs and results, megabytes at times) is not
// kept in memory for as long as its actor stays active; a later call (a
// get, a purge, a late event) loads it from the store again. It is
// called in the instance's turn.
func (e *Engine) forget(id string) {
	e.mu.Lock()
	delete(e.instances, id)
	e.mu.Unlock()
}
