package workflow

import "time"

// doneGrace is how long an activity actor's done mark outlives the
// actor's deactivation. A placement change can deactivate the actor right
// after its run ended, while a trigger of its run-activity reminder that
// was called off is still to be tried again (every second): found within
// this time the mark keeps the run from happening again when the actor is
// placed here again.
const doneGrace = 15 * time.Second

// doneMarks are the activity actors that ran to the end on this host, by
// actor ID, with the run's task execution ID. A mark is dropped doneGrace
// after its actor's deactivation, unless the actor ran here again since.
// The engine's mu guards it.
type doneMarks struct {
	m    map[string]doneMark
	left []leftActor // deactivations in order, for dropping their marks
}

type doneMark struct {
	execution string
	left      time.Time // when the actor was deactivated; zero while active
}

type leftActor struct {
	id string
	at time.Time
}

// get returns the task execution ID of the run of actor id that ended
// here.
func (d *doneMarks) get(id string) (string, bool) {
	m, ok := d.m[id]
	return m.execution, ok
}

// set marks actor id's run of execution done.
func (d *doneMarks) set(id, execution string) {
	if d.m == nil {
		d.m = map[string]doneMark{}
	}
	d.m[id] = doneMark{execution: execution}
}

// deactivated starts actor id's mark's grace at now, and drops the marks
// whose grace has passed.
func (d *doneMarks) deactivated(id string, now time.Time) {
	if m, ok := d.m[id]; ok {
		m.left = now
		d.m[id] = m
		d.left = append(d.left, leftActor{id: id, at: now})
	}
	n := 0
	for _, l := range d.left {
		if now.Sub(l.at) < doneGrace {
			break
		}
		// A mark set again since (the actor ran here again) or whose
		// actor left again later is not this deactivation's.
		if m, ok := d.m[l.id]; ok && m.left.Equal(l.at) {
			delete(d.m, l.id)
		}
		n++
	}
	if n > 0 {
		d.left = append(d.left[:0], d.left[n:]...)
	}
}
