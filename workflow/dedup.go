package workflow

import (
	"slices"

	"github.com/dapr/durabletask-go/api/protos"
)

// Deduplication, as daprd's runtime state: an event added to the inbox is
// checked against the history and the inbox (addToInbox), but the inbox
// may hold a second answer all the same (a store written outside the
// engine, a save that raced a redelivery), and the history may lack a
// task's scheduling while it has the task's answer. A run hands the
// worker only events that change something, and a task that has its
// answer is not run again.

// answerKind is what an event answers: a task (completed or failed), a
// child (completed or failed) or a timer; "" for other events.
func answerKind(ev *protos.HistoryEvent) string {
	switch {
	case ev.GetTaskCompleted() != nil, ev.GetTaskFailed() != nil:
		return "task"
	case ev.GetChildWorkflowInstanceCompleted() != nil, ev.GetChildWorkflowInstanceFailed() != nil:
		return "child"
	case ev.GetTimerFired() != nil:
		return "timer"
	}
	return ""
}

// answered reports whether one of lists has an answer of kind to id.
func answered(kind string, id int32, lists ...[]*protos.HistoryEvent) bool {
	for _, list := range lists {
		for _, h := range list {
			if other, ok := answerTo(h); ok && other == id && answerKind(h) == kind {
				return true
			}
		}
	}
	return false
}

// freshEvents are the events of a run's inbox that the history does not
// make void: not a second start (or end), not a second answer to a task,
// child or timer, and not an answer to a task or child that the history
// never scheduled (the SDKs ignore it, and in the history it would pass
// for the answer to a later task of the same ID: IDs start again on
// continue-as-new).
func freshEvents(history, inbox []*protos.HistoryEvent) []*protos.HistoryEvent {
	isStart := func(h *protos.HistoryEvent) bool { return h.GetExecutionStarted() != nil }
	isEnd := func(h *protos.HistoryEvent) bool { return h.GetExecutionCompleted() != nil }
	has := func(f func(*protos.HistoryEvent) bool, lists ...[]*protos.HistoryEvent) bool {
		for _, list := range lists {
			if slices.ContainsFunc(list, f) {
				return true
			}
		}
		return false
	}
	scheduled := map[string]map[int32]bool{"task": {}, "child": {}}
	for _, h := range history {
		switch {
		case h.GetTaskScheduled() != nil:
			scheduled["task"][h.GetEventId()] = true
		case h.GetChildWorkflowInstanceCreated() != nil:
			scheduled["child"][h.GetEventId()] = true
		}
	}
	out := make([]*protos.HistoryEvent, 0, len(inbox))
	for _, ev := range inbox {
		switch kind := answerKind(ev); {
		case ev.GetExecutionStarted() != nil:
			if has(isStart, history, out) {
				continue
			}
		case ev.GetExecutionCompleted() != nil:
			if has(isEnd, history, out) {
				continue
			}
		case kind != "":
			id, _ := answerTo(ev)
			if answered(kind, id, history, out) || kind != "timer" && !scheduled[kind][id] {
				continue
			}
		}
		out = append(out, ev)
	}
	return out
}
