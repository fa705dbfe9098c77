package appstream

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tandemrun/tandem/invoke"
)

// app answers the callbacks of c with answer until ctx ends.
func app(ctx context.Context, s *Streams, c *Conn, answer func(*runtimev1.SubscribeActorEventsResponseAlpha1) *runtimev1.SubscribeActorEventsRequestAlpha1) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-c.Outbox():
			if a := answer(m); a != nil {
				c.Deliver(a)
			}
		}
	}
}

func call(method string, verb commonv1.HTTPExtension_Verb, body string, md map[string]string) *invoke.Request {
	m := map[string]*internalsv1.ListStringValue{}
	for k, v := range md {
		m[k] = &internalsv1.ListStringValue{Values: []string{v}}
	}
	return &invoke.Request{
		Message: &internalsv1.InternalInvokeRequest{
			Message:  &commonv1.InvokeRequest{Method: method, HttpExtension: &commonv1.HTTPExtension{Verb: verb}},
			Metadata: m, Actor: &internalsv1.Actor{ActorType: "t", ActorId: "a/b"},
		},
		Body: invoke.NewMemBody([]byte(body)),
	}
}

func readBody(t *testing.T, r *invoke.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCallbacks(t *testing.T) {
	s := New()
	ctx := t.Context()
	if _, err := s.Invoke(ctx, call("actors/t/a/b/method/m", commonv1.HTTPExtension_PUT, "", nil)); !errors.Is(err, ErrNoConnection) {
		t.Fatalf("no stream: %v", err)
	}
	resp, err := s.Invoke(ctx, call("dapr/config", commonv1.HTTPExtension_GET, "", nil))
	if err != nil || resp.Message.GetStatus().GetCode() != 404 {
		t.Fatalf("config without a stream: %v %v", resp, err)
	}
	c := s.Open(&runtimev1.SubscribeActorEventsRequestInitialAlpha1{Entities: []string{"t"}, ActorIdleTimeout: durationpb.New(time.Second)})
	actx, stop := context.WithCancel(ctx)
	defer stop()
	seen := make(chan *runtimev1.SubscribeActorEventsResponseAlpha1, 10)
	go app(actx, s, c, func(m *runtimev1.SubscribeActorEventsResponseAlpha1) *runtimev1.SubscribeActorEventsRequestAlpha1 {
		seen <- m
		switch v := m.GetResponseType().(type) {
		case *runtimev1.SubscribeActorEventsResponseAlpha1_InvokeRequest:
			if v.InvokeRequest.GetMethod() == "missing" {
				return &runtimev1.SubscribeActorEventsRequestAlpha1{RequestType: &runtimev1.SubscribeActorEventsRequestAlpha1_RequestFailed{
					RequestFailed: &runtimev1.SubscribeActorEventsRequestFailedAlpha1{Id: v.InvokeRequest.GetId(), Code: uint32(codes.NotFound), Message: "no"}}}
			}
			return &runtimev1.SubscribeActorEventsRequestAlpha1{RequestType: &runtimev1.SubscribeActorEventsRequestAlpha1_InvokeResponse{
				InvokeResponse: &runtimev1.SubscribeActorEventsRequestInvokeResponseAlpha1{
					Id: v.InvokeRequest.GetId(), Data: append([]byte("echo:"), v.InvokeRequest.GetData()...),
					Metadata: map[string]string{"content-type": "text/plain"}, Error: v.InvokeRequest.GetMethod() == "boom",
				}}}
		case *runtimev1.SubscribeActorEventsResponseAlpha1_TimerRequest:
			return &runtimev1.SubscribeActorEventsRequestAlpha1{RequestType: &runtimev1.SubscribeActorEventsRequestAlpha1_TimerResponse{
				TimerResponse: &runtimev1.SubscribeActorEventsRequestReminderResponseAlpha1{Id: v.TimerRequest.GetId(), Cancel: true}}}
		case *runtimev1.SubscribeActorEventsResponseAlpha1_ReminderRequest:
			return &runtimev1.SubscribeActorEventsRequestAlpha1{RequestType: &runtimev1.SubscribeActorEventsRequestAlpha1_ReminderResponse{
				ReminderResponse: &runtimev1.SubscribeActorEventsRequestReminderResponseAlpha1{Id: v.ReminderRequest.GetId()}}}
		case *runtimev1.SubscribeActorEventsResponseAlpha1_DeactivateRequest:
			return &runtimev1.SubscribeActorEventsRequestAlpha1{RequestType: &runtimev1.SubscribeActorEventsRequestAlpha1_DeactivateResponse{
				DeactivateResponse: &runtimev1.SubscribeActorEventsRequestDeactivateResponseAlpha1{Id: v.DeactivateRequest.GetId()}}}
		}
		return nil
	})

	resp, err = s.Invoke(ctx, call("dapr/config", commonv1.HTTPExtension_GET, "", nil))
	if err != nil || resp.Message.GetStatus().GetCode() != 200 {
		t.Fatalf("config: %v %v", resp, err)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(readBody(t, resp)), &cfg); err != nil || cfg["actorIdleTimeout"] != "1s" {
		t.Fatalf("config %v %v", cfg, err)
	}

	resp, err = s.Invoke(ctx, call("actors/t/a/b/method/ping", commonv1.HTTPExtension_PUT, "hi",
		map[string]string{"dapr-reentrancy-id": "r1", "content-type": "text/plain"}))
	if err != nil || readBody(t, resp) != "echo:hi" || resp.Message.GetMessage().GetContentType() != "text/plain" {
		t.Fatalf("invoke: %v %v", resp, err)
	}
	ir := (<-seen).GetInvokeRequest()
	if ir.GetActorId() != "a/b" || ir.GetMethod() != "ping" || ir.GetMetadata()["Dapr-Reentrancy-Id"] != "r1" {
		t.Fatalf("invoke request %v", ir)
	}

	resp, err = s.Invoke(ctx, call("actors/t/a/b/method/boom", commonv1.HTTPExtension_PUT, "", nil))
	<-seen
	if err != nil || len(resp.Message.GetHeaders()[errorResponseHeader].GetValues()) == 0 {
		t.Fatalf("app error: %v %v", resp, err)
	}
	if _, err = s.Invoke(ctx, call("actors/t/a/b/method/missing", commonv1.HTTPExtension_PUT, "", nil)); err == nil {
		t.Fatal("missing method answered")
	}
	<-seen

	resp, err = s.Invoke(ctx, call("actors/t/a/b/method/timer/tick", commonv1.HTTPExtension_PUT,
		`{"callback":"cb","data":{"x":1},"dueTime":"1s","period":"2s"}`, nil))
	if err != nil || len(resp.Message.GetHeaders()[reminderCancelHeader].GetValues()) == 0 {
		t.Fatalf("timer: %v %v", resp, err)
	}
	tr := (<-seen).GetTimerRequest()
	if tr.GetName() != "tick" || tr.GetCallback() != "cb" || string(tr.GetData().GetValue()) != `{"x":1}` || tr.GetPeriod() != "2s" {
		t.Fatalf("timer request %v", tr)
	}

	if _, err = s.Invoke(ctx, call("actors/t/a/b/method/remind/r", commonv1.HTTPExtension_PUT, `{"data":null,"dueTime":"","period":""}`, nil)); err != nil {
		t.Fatal(err)
	}
	if rr := (<-seen).GetReminderRequest(); rr.GetName() != "r" || rr.GetData() != nil {
		t.Fatalf("reminder request %v", rr)
	}

	d := call("actors/t/x", commonv1.HTTPExtension_DELETE, "", nil)
	d.Message.Actor = nil
	if resp, err = s.Invoke(ctx, d); err != nil || resp.Message.GetStatus().GetCode() != 200 {
		t.Fatalf("deactivate: %v %v", resp, err)
	}
	if dr := (<-seen).GetDeactivateRequest(); dr.GetActorType() != "t" || dr.GetActorId() != "x" {
		t.Fatalf("deactivate request %v", dr)
	}
}

// A callback waiting for its answer fails when the stream closes.
func TestCloseFailsPending(t *testing.T) {
	s := New()
	c := s.Open(&runtimev1.SubscribeActorEventsRequestInitialAlpha1{})
	errc := make(chan error, 1)
	go func() {
		_, err := s.Invoke(t.Context(), call("actors/t/a/b/method/m", commonv1.HTTPExtension_PUT, "", nil))
		errc <- err
	}()
	<-c.Outbox()
	s.Close(c)
	if err := <-errc; !errors.Is(err, ErrDisconnected) {
		t.Fatalf("got %v", err)
	}
	if _, err := s.Invoke(t.Context(), call("actors/t/a/b/method/m", commonv1.HTTPExtension_PUT, "", nil)); !errors.Is(err, ErrNoConnection) {
		t.Fatalf("after close: %v", err)
	}
}
