package actors

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestJSONOrString(t *testing.T) {
	if got := string(jsonOrString([]byte("plain"))); got != `"plain"` {
		t.Fatalf("jsonOrString = %s", got)
	}
	if got := string(jsonOrString([]byte(`{"a":1}`))); got != `{"a":1}` {
		t.Fatalf("jsonOrString = %s", got)
	}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// An app's actor gets a BytesValue's JSON as it is, any other message in
// its JSON form, as daprd's ReminderResponse renders them.
func TestReminderDataRendering(t *testing.T) {
	for _, tc := range []struct {
		name string
		data *anypb.Any
		want string
	}{
		{"none", nil, ""},
		{"bytes of JSON", mustAny(t, wrapperspb.Bytes([]byte(`{"a":1}`))), `{"a":1}`},
		{"bytes of text", mustAny(t, wrapperspb.Bytes([]byte("hi"))), `"hi"`},
		{"message", mustAny(t, durationpb.New(1500_000_000)), `"1.500s"`},
		{"unknown type", &anypb.Any{TypeUrl: "type.googleapis.com/no.Such", Value: []byte(`"x"`)}, `"x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(reminderData(tc.data)); got != tc.want {
				t.Errorf("reminderData = %s, want %s", got, tc.want)
			}
		})
	}
}

// An internal actor's reminder keeps its message through the actor state
// store and the scheduler; an app's keeps its JSON, and so does an
// internal actor's stored by an earlier Tandem (handed over as a
// BytesValue).
func TestReminderDataRoundTrip(t *testing.T) {
	msg := durationpb.New(42)
	internal := "dapr.internal.default.app.workflow"
	for _, tc := range []struct {
		name string
		req  ReminderRequest
		want proto.Message // what the actor is handed
	}{
		{"internal message", ReminderRequest{ActorType: internal, Any: mustAny(t, msg)}, msg},
		{"internal legacy JSON", ReminderRequest{ActorType: internal, Data: json.RawMessage(`{"generation":1}`)}, wrapperspb.Bytes([]byte(`{"generation":1}`))},
		{"app JSON", ReminderRequest{ActorType: "app", Data: json.RawMessage(`{"@type":"x"}`)}, wrapperspb.Bytes([]byte(`{"@type":"x"}`))},
		{"none", ReminderRequest{ActorType: internal}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(where string, got *anypb.Any) {
				t.Helper()
				if tc.want == nil {
					if got != nil {
						t.Errorf("%s: data %v, want none", where, got)
					}
					return
				}
				m, err := got.UnmarshalNew()
				if err != nil || !proto.Equal(m, tc.want) {
					t.Errorf("%s: data %v (%v), want %v", where, m, err, tc.want)
				}
			}
			stored, err := tc.req.storedData()
			if err != nil {
				t.Fatal(err)
			}
			check("state store", storedReminder{ActorType: tc.req.ActorType, Data: stored}.dataAny())
			job, err := tc.req.jobData()
			if err != nil {
				t.Fatal(err)
			}
			check("scheduler", job)
			if !isInternalType(tc.req.ActorType) {
				return
			}
			// What the internal actor's Invoke gets, from either store.
			for where, d := range map[string]*anypb.Any{"state store call": storedReminder{ActorType: tc.req.ActorType, Data: stored}.dataAny(), "scheduler call": job} {
				b := internalReminderData(internalReminderMessage(d))
				if tc.want == nil {
					if len(b) != 0 {
						t.Errorf("%s: %d bytes, want none", where, len(b))
					}
					continue
				}
				a := new(anypb.Any)
				if err := proto.Unmarshal(b, a); err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				check(where, a)
			}
		})
	}
}

// A remind call with an earlier Tandem's JSON body gives the internal
// actor a BytesValue of its data.
func TestInternalReminderDataLegacyBody(t *testing.T) {
	for body, want := range map[string]string{
		`{"data":"AQI=","dueTime":"","period":""}`: `"AQI="`,
		`{"data":{"id":3}}`:                        `{"id":3}`,
		`{"data":null}`:                            "",
		`{"dueTime":"1s"}`:                         "",
		``:                                         "",
	} {
		b := internalReminderData(&anypb.Any{Value: []byte(body)})
		if want == "" {
			if len(b) != 0 {
				t.Errorf("%s: %d bytes, want none", body, len(b))
			}
			continue
		}
		a := new(anypb.Any)
		var bv wrapperspb.BytesValue
		if err := proto.Unmarshal(b, a); err != nil || a.UnmarshalTo(&bv) != nil || string(bv.GetValue()) != want {
			t.Errorf("%s: %v %q, want a BytesValue of %s", body, err, bv.GetValue(), want)
		}
	}
}
