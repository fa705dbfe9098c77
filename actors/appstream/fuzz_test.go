package appstream

import (
	"context"
	"testing"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
)

// FuzzInvoke feeds callback paths and bodies to Invoke: it answers or
// fails, never panics, with an app that fails every request.
func FuzzInvoke(f *testing.F) {
	for _, seed := range []struct{ method, body string }{
		{"dapr/config", ""}, {"actors/t/a/b/method/m", "x"}, {"actors/t/a/b/method/timer/n", `{"data":1}`},
		{"actors/t/a/b/method/remind/n", `{`}, {"actors/t", ""}, {"actors/", ""}, {"other", ""},
	} {
		f.Add(seed.method, seed.body, false)
		f.Add(seed.method, seed.body, true)
	}
	f.Fuzz(func(t *testing.T, method, body string, del bool) {
		s := New()
		c := s.Open(&runtimev1.SubscribeActorEventsRequestInitialAlpha1{Entities: []string{"t"}})
		ctx, stop := context.WithCancel(t.Context())
		defer stop()
		go app(ctx, s, c, func(m *runtimev1.SubscribeActorEventsResponseAlpha1) *runtimev1.SubscribeActorEventsRequestAlpha1 {
			id := ""
			switch v := m.GetResponseType().(type) {
			case *runtimev1.SubscribeActorEventsResponseAlpha1_InvokeRequest:
				id = v.InvokeRequest.GetId()
			case *runtimev1.SubscribeActorEventsResponseAlpha1_TimerRequest:
				id = v.TimerRequest.GetId()
			case *runtimev1.SubscribeActorEventsResponseAlpha1_ReminderRequest:
				id = v.ReminderRequest.GetId()
			case *runtimev1.SubscribeActorEventsResponseAlpha1_DeactivateRequest:
				id = v.DeactivateRequest.GetId()
			}
			return &runtimev1.SubscribeActorEventsRequestAlpha1{RequestType: &runtimev1.SubscribeActorEventsRequestAlpha1_RequestFailed{
				RequestFailed: &runtimev1.SubscribeActorEventsRequestFailedAlpha1{Id: id, Code: 13, Message: "no"}}}
		})
		verb := commonv1.HTTPExtension_PUT
		if del {
			verb = commonv1.HTTPExtension_DELETE
		}
		req := call(method, verb, body, nil)
		req.Message.Actor = nil
		if resp, err := s.Invoke(ctx, req); err == nil && resp.Body == nil {
			t.Fatal("answer without a body")
		}
	})
}
