package workflow

import (
	"slices"
	"testing"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"
)

func eventTimer(id int32, event string) *protos.HistoryEvent {
	return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TimerCreated{TimerCreated: &protos.TimerCreatedEvent{
		Origin: &protos.TimerCreatedEvent_ExternalEvent{ExternalEvent: &protos.TimerOriginExternalEvent{Name: event}}}}}, id)
}

func raised(name string) *protos.HistoryEvent {
	return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_EventRaised{EventRaised: &protos.EventRaisedEvent{Name: name}}}, -1)
}

// TestCancelledEventTimers: an event raised cancels the oldest unfired
// timer of its wait created before it; only this turn's events (from on)
// cancel, earlier ones are paired so they do not take this turn's.
func TestCancelledEventTimers(t *testing.T) {
	plain := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TimerCreated{TimerCreated: &protos.TimerCreatedEvent{}}}, 9)
	legacy := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TimerCreated{TimerCreated: &protos.TimerCreatedEvent{Name: proto.String("old")}}}, 4)
	fired := func(id int32) *protos.HistoryEvent {
		return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TimerFired{TimerFired: &protos.TimerFiredEvent{TimerId: id}}}, -1)
	}
	w := wfStarted
	for _, tc := range []struct {
		name    string
		history []*protos.HistoryEvent
		from    int
		want    []int32
	}{
		{"one wait", []*protos.HistoryEvent{w(), started("w"), eventTimer(0, "bar"), w(), raised("bar")}, 3, []int32{0}},
		{"case-insensitive", []*protos.HistoryEvent{w(), started("w"), eventTimer(0, "Bar"), w(), raised("bAR")}, 3, []int32{0}},
		{"second wait, same name", []*protos.HistoryEvent{w(), started("w"), eventTimer(0, "bar"), w(), raised("bar"), eventTimer(1, "bar"), w(), raised("bar")}, 6, []int32{1}},
		{"fan-out, one answered", []*protos.HistoryEvent{w(), started("w"), eventTimer(0, "e1"), eventTimer(1, "e2"), eventTimer(2, "e3"), w(), raised("e2")}, 5, []int32{1}},
		{"two events in one turn", []*protos.HistoryEvent{w(), started("w"), eventTimer(0, "e1"), eventTimer(1, "e2"), w(), raised("e2"), raised("e1")}, 4, []int32{1, 0}},
		{"fired timer is not taken", []*protos.HistoryEvent{w(), started("w"), eventTimer(0, "bar"), w(), fired(0), eventTimer(1, "bar"), w(), raised("bar")}, 6, []int32{1}},
		{"timer created after the event", []*protos.HistoryEvent{w(), started("w"), w(), raised("bar"), eventTimer(0, "bar")}, 2, nil},
		{"plain timer", []*protos.HistoryEvent{w(), started("w"), plain, w(), raised("bar")}, 3, nil},
		{"legacy name", []*protos.HistoryEvent{w(), started("w"), legacy, w(), raised("OLD")}, 3, []int32{4}},
		{"earlier turn's event", []*protos.HistoryEvent{w(), started("w"), eventTimer(0, "bar"), w(), raised("bar")}, 5, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cancelledEventTimers(tc.history, tc.from); !slices.Equal(got, tc.want) {
				t.Errorf("cancelled = %v, want %v (history %s)", got, tc.want, kinds(tc.history))
			}
		})
	}
}
