package workflow

import (
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// External events (RaiseEvent, a workflow's SendEvent) have no ID to tell a
// redelivery from a second event: a sender that retries an AddWorkflowEvent
// whose answer it lost sends the same bytes again. As daprd, an event gets
// an ingestion time unique on this sidecar when it enters the engine, and
// an instance drops an EventRaised whose name and time match one it holds
// (in its history or inbox): two RaiseEvents with the same name and
// payload are two events, the same one sent twice is one.

// uniqueEventTime is a time strictly later than any it returned before:
// now, or a nanosecond after the last one when the clock has not moved
// on.
func (e *Engine) uniqueEventTime() *timestamppb.Timestamp {
	now := time.Now().UnixNano()
	for {
		prev := e.lastEventNano.Load()
		next := max(now, prev+1)
		if e.lastEventNano.CompareAndSwap(prev, next) {
			return timestamppb.New(time.Unix(0, next))
		}
	}
}

// duplicateExternal reports whether ev is an EventRaised that the instance
// holds already: one of the same name and ingestion time.
func (inst *instance) duplicateExternal(ev *protos.HistoryEvent) bool {
	r := ev.GetEventRaised()
	if r == nil {
		return false
	}
	for _, list := range [][]*protos.HistoryEvent{inst.history, inst.inbox} {
		for _, h := range list {
			if hr := h.GetEventRaised(); hr != nil && hr.GetName() == r.GetName() && proto.Equal(h.GetTimestamp(), ev.GetTimestamp()) {
				return true
			}
		}
	}
	return false
}
