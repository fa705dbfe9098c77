package actors

import (
	"bytes"
	"encoding/json"
	"strings"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// A reminder's data takes one of two shapes, as daprd's:
//
//   - an app's reminder has the JSON it was created with; the scheduler
//     keeps it as a BytesValue of that JSON, the actor state store as the
//     JSON itself;
//   - an internal actor's reminder (the workflow engine's) has a protobuf
//     message (ReminderRequest.Any: daprd's ActivityInvocation,
//     DurableTimer, HistoryEvent); the scheduler keeps that Any as it is,
//     so that a daprd sharing the scheduler reads Tandem's reminders and
//     Tandem daprd's; the actor state store (which daprd 1.18 no longer
//     keeps reminders in) keeps the Any in its JSON form, "@type" and all.
//
// Reminders stored by an earlier Tandem have an internal actor's data as
// JSON (a BytesValue in the scheduler): the actor is handed that as a
// BytesValue, and tells the layouts apart by the Any's type.

// isInternalType reports whether actorType is one of the sidecar's own.
func isInternalType(actorType string) bool { return strings.HasPrefix(actorType, internalTypePrefix) }

// jobData is the scheduler job data of a reminder.
func (req ReminderRequest) jobData() (*anypb.Any, error) {
	if req.Any != nil {
		return req.Any, nil
	}
	if len(req.Data) == 0 {
		return nil, nil
	}
	return anypb.New(wrapperspb.Bytes(req.Data))
}

// storedData is a reminder's data as the actor state store keeps it.
func (req ReminderRequest) storedData() (json.RawMessage, error) {
	if req.Any == nil {
		return req.Data, nil
	}
	return protojson.Marshal(req.Any)
}

// dataAny is the data of a reminder the actor state store holds as the
// scheduler would hold it (an internal actor's Any, stored by storedData,
// comes back as it was created).
func (s storedReminder) dataAny() *anypb.Any {
	if len(s.Data) == 0 {
		return nil
	}
	if isInternalType(s.ActorType) && bytes.HasPrefix(bytes.TrimSpace(s.Data), []byte("{")) && bytes.Contains(s.Data, []byte(`"@type"`)) {
		a := new(anypb.Any)
		if err := protojson.Unmarshal(s.Data, a); err == nil {
			return a
		}
	}
	a, _ := anypb.New(wrapperspb.Bytes(s.Data))
	return a
}

// reminderData is a reminder's data as the JSON of the body an app's
// actor gets (and the reminders API returns), as daprd renders it: the
// bytes of a BytesValue (quoted when they are not JSON), the JSON form of
// any other message.
func reminderData(a *anypb.Any) json.RawMessage {
	if a == nil {
		return nil
	}
	var b wrapperspb.BytesValue
	if a.MessageIs(&b) && a.UnmarshalTo(&b) == nil {
		return jsonOrString(b.GetValue())
	}
	if m, err := a.UnmarshalNew(); err == nil {
		if out, err := protojson.Marshal(m); err == nil {
			return out
		}
	}
	return jsonOrString(a.GetValue())
}

func jsonOrString(b []byte) json.RawMessage {
	if len(b) == 0 || json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// internalReminderMessage is the data of the call a reminder of an
// internal actor makes (remind/{name}): the reminder's Any itself, whose
// type travels with it to the owner (the JSON body an app's actor gets
// would lose it).
func internalReminderMessage(data *anypb.Any) *anypb.Any {
	if data == nil {
		return &anypb.Any{}
	}
	return data
}

// internalReminderData turns the data of a remind/{name} call of an
// internal actor into what its Internal gets: the reminder's Any,
// marshaled (empty when it has none). A call with an untyped JSON body
// ({"data": ...}, as an earlier Tandem host sends it) gives a BytesValue
// of its data.
func internalReminderData(msg *anypb.Any) []byte {
	a := msg
	if msg.GetTypeUrl() == "" {
		var body struct {
			Data json.RawMessage `json:"data"`
		}
		if len(msg.GetValue()) == 0 || json.Unmarshal(msg.GetValue(), &body) != nil || len(body.Data) == 0 || string(body.Data) == "null" {
			return nil
		}
		a, _ = anypb.New(wrapperspb.Bytes(body.Data))
	}
	out, _ := proto.Marshal(a)
	return out
}

// reminderCall is the actor call that fires reminder name on an actor: an
// app's actor gets daprd's body (no "data" when the reminder has none,
// its JSON compacted otherwise, with dueTime and period as given), an
// internal actor the data as it is stored.
func reminderCall(actorType, actorID, name string, data *anypb.Any, dueTime, period string) *internalsv1.InternalInvokeRequest {
	msg := &anypb.Any{}
	if isInternalType(actorType) {
		msg = internalReminderMessage(data)
	} else {
		msg.Value, _ = json.Marshal(struct {
			Data    json.RawMessage `json:"data,omitempty"`
			DueTime string          `json:"dueTime"`
			Period  string          `json:"period"`
		}{Data: reminderData(data), DueTime: dueTime, Period: period})
	}
	return &internalsv1.InternalInvokeRequest{
		Ver:   internalsv1.APIVersion_V1,
		Actor: &internalsv1.Actor{ActorType: actorType, ActorId: actorID},
		Message: &commonv1.InvokeRequest{
			Method: "remind/" + name, ContentType: "application/json", Data: msg,
			HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_PUT},
		},
	}
}
