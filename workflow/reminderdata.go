package workflow

import (
	"encoding/json"
	"fmt"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The engine's reminders carry daprd 1.18's data, so that a daprd and a
// tandemd sharing the scheduler (or an app moved from one to the other)
// each fire the reminders the other stored:
//
//	run-activity       Any(ActivityInvocation)
//	timer-{id}         Any(DurableTimer{TimerEvent: TimerFired, Generation})
//	start-...          Any(DurableTimer) with the generation (daprd's has
//	                   none: it runs the instance's inbox)
//	activity-result-…  Any(HistoryEvent)
//	cascade-terminate  Any(HistoryEvent), ExecutionTerminated (daprd's)
//
// Reminders an earlier Tandem stored have JSON data instead, which the
// actor runtime hands over as a BytesValue: they are read too.

// retryEverySecond is the failure policy of daprd's workflow reminders:
// one shot, retried every second until the actor takes it.
func retryEverySecond() *commonv1.JobFailurePolicy {
	return &commonv1.JobFailurePolicy{Policy: &commonv1.JobFailurePolicy_Constant{
		Constant: &commonv1.JobFailurePolicyConstant{Interval: durationpb.New(time.Second)}}}
}

// reminderAny reads the data a reminder's call carries (actors.Internal):
// the reminder's Any, nil when it has none.
func reminderAny(data []byte) (*anypb.Any, error) {
	if len(data) == 0 {
		return nil, nil
	}
	a := new(anypb.Any)
	if err := proto.Unmarshal(data, a); err != nil {
		return nil, fmt.Errorf("reminder data: %w", err)
	}
	return a, nil
}

// legacyJSON is the JSON data of a reminder an earlier Tandem stored.
func legacyJSON(a *anypb.Any) ([]byte, bool) {
	var b wrapperspb.BytesValue
	if !a.MessageIs(&b) || a.UnmarshalTo(&b) != nil {
		return nil, false
	}
	return b.GetValue(), true
}

// legacyBytes is the protobuf message an earlier Tandem stored in a
// reminder as a JSON string (base64).
func legacyBytes(a *anypb.Any) ([]byte, bool, error) {
	raw, ok := legacyJSON(a)
	if !ok {
		return nil, false, nil
	}
	var b []byte
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, true, err
	}
	return b, true, nil
}

// invocationAny wraps encodeActivity's bytes, an ActivityInvocation, in
// an Any as anypb.New would, without decoding them again.
func invocationAny(run []byte) *anypb.Any {
	return &anypb.Any{TypeUrl: "type.googleapis.com/" + string((*protos.ActivityInvocation)(nil).ProtoReflect().Descriptor().FullName()), Value: run}
}

// mustAny wraps a message the engine made in an Any.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err) // a message of ours that does not marshal
	}
	return a
}

// timerAny is a timer's (or a scheduled start's) reminder data: daprd's
// DurableTimer, its TimerFired event made ahead.
func timerAny(t timerData) *anypb.Any {
	return mustAny(&protos.DurableTimer{
		Generation: t.Generation,
		TimerEvent: &protos.HistoryEvent{
			EventId: -1, Timestamp: timestamppb.Now(),
			EventType: &protos.HistoryEvent_TimerFired{TimerFired: &protos.TimerFiredEvent{TimerId: t.ID, FireAt: timestamppb.New(t.FireAt)}},
		},
	})
}

// readTimer reads a timer reminder's data: daprd's DurableTimer or an
// earlier Tandem's JSON. ok is false for a reminder with no data (daprd's
// start reminder).
func readTimer(a *anypb.Any) (t timerData, ok bool, err error) {
	if a == nil {
		return t, false, nil
	}
	if raw, legacy := legacyJSON(a); legacy {
		if err := json.Unmarshal(raw, &t); err != nil {
			return t, false, err
		}
		return t, true, nil
	}
	dt := new(protos.DurableTimer)
	if !a.MessageIs(dt) {
		return t, false, fmt.Errorf("timer reminder data is a %s, not a DurableTimer", a.GetTypeUrl())
	}
	if err := a.UnmarshalTo(dt); err != nil {
		return t, false, err
	}
	t.Generation = dt.GetGeneration()
	if ev := dt.GetTimerEvent(); ev != nil {
		// A crafted reminder must not put other events in the inbox.
		tf := ev.GetTimerFired()
		if tf == nil {
			return t, false, fmt.Errorf("timer reminder carries a %T event, not TimerFired", ev.GetEventType())
		}
		t.ID, t.FireAt = tf.GetTimerId(), tf.GetFireAt().AsTime()
	}
	if t.FireAt.IsZero() {
		t.FireAt = time.Now()
	}
	return t, true, nil
}

// readEvent reads the HistoryEvent a reminder carries (activity-result,
// cascade-terminate), marshaled.
func readEvent(a *anypb.Any) ([]byte, error) {
	if a == nil {
		return nil, fmt.Errorf("reminder has no event")
	}
	if b, legacy, err := legacyBytes(a); legacy {
		return b, err
	}
	if !a.MessageIs(&protos.HistoryEvent{}) {
		return nil, fmt.Errorf("reminder data is a %s, not a HistoryEvent", a.GetTypeUrl())
	}
	return a.GetValue(), nil
}

// readInvocation reads a run-activity reminder's data into encodeActivity's
// form: daprd's ActivityInvocation, an older daprd's bare TaskScheduled
// HistoryEvent, or an earlier Tandem's JSON.
func readInvocation(a *anypb.Any) ([]byte, error) {
	if a == nil {
		return nil, fmt.Errorf("run-activity reminder has no data")
	}
	if b, legacy, err := legacyBytes(a); legacy {
		return b, err
	}
	switch {
	case a.MessageIs(&protos.ActivityInvocation{}):
		return a.GetValue(), nil
	case a.MessageIs(&protos.HistoryEvent{}):
		ev := new(protos.HistoryEvent)
		if err := a.UnmarshalTo(ev); err != nil {
			return nil, err
		}
		return mustMarshal(&protos.ActivityInvocation{HistoryEvent: ev}), nil
	}
	return nil, fmt.Errorf("run-activity reminder data is a %s, not an ActivityInvocation", a.GetTypeUrl())
}
