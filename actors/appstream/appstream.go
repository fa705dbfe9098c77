// Package appstream serves Dapr 1.18's app-initiated actor callback stream:
// an app (a gRPC app, or one with no port at all) dials the sidecar, opens
// SubscribeActorEventsAlpha1, names the actor types it hosts in a first
// message, and then answers the actor calls, timers, reminders and
// deactivations the sidecar sends it on that stream, each matched to its
// answer by an ID.
//
// Streams is the actor runtime's app channel (invoke.AppChannel) for such
// an app: it turns the runtime's HTTP-shaped callbacks (GET dapr/config,
// PUT actors/{type}/{id}/method/{method}, .../method/timer/{name},
// .../method/remind/{name}, DELETE actors/{type}/{id}) into stream messages
// and their answers back into responses. The gRPC API (proxy/grpcapi) runs
// the stream itself: Open when it starts, Close when it ends. The newest
// open stream gets the callbacks, as in daprd.
package appstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/resiliency"
)

// Errors of a callback that found no app to answer it.
var (
	// ErrNoConnection: no app has the callback stream open.
	ErrNoConnection = errors.New("actor host is not connected: the app has no SubscribeActorEventsAlpha1 stream open")
	// ErrDisconnected: the stream ended before the app answered.
	ErrDisconnected = errors.New("actor host disconnected before responding")
)

// Headers the actor runtime reads in a callback's answer.
const (
	errorResponseHeader  = "X-Daprerrorresponseheader"
	reminderCancelHeader = "X-DaprReminderCancel"
	reentrancyIDHeader   = "Dapr-Reentrancy-Id"
)

// Streams holds the open callback streams; the newest gets the callbacks.
type Streams struct {
	mu    sync.Mutex
	conns []*Conn
	seq   atomic.Uint64
}

var _ invoke.AppChannel = (*Streams)(nil)

// New returns Streams with no stream open.
func New() *Streams { return &Streams{} }

// Conn is one open callback stream.
type Conn struct {
	// Initial is the app's first message: its actor types and settings.
	Initial *runtimev1.SubscribeActorEventsRequestInitialAlpha1

	out     chan *runtimev1.SubscribeActorEventsResponseAlpha1
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	pending map[string]chan *runtimev1.SubscribeActorEventsRequestAlpha1
}

// Open adds a stream whose app sent initial; it gets the callbacks until a
// newer one opens or it is closed.
func (s *Streams) Open(initial *runtimev1.SubscribeActorEventsRequestInitialAlpha1) *Conn {
	c := &Conn{
		Initial: initial,
		out:     make(chan *runtimev1.SubscribeActorEventsResponseAlpha1, 128),
		done:    make(chan struct{}),
		pending: map[string]chan *runtimev1.SubscribeActorEventsRequestAlpha1{},
	}
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	return c
}

// Close removes the stream; callbacks waiting for its answers fail with
// ErrDisconnected.
func (s *Streams) Close(c *Conn) {
	c.once.Do(func() { close(c.done) })
	s.mu.Lock()
	for i, o := range s.conns {
		if o == c {
			s.conns = append(s.conns[:i], s.conns[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
}

func (s *Streams) latest() *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) == 0 {
		return nil
	}
	return s.conns[len(s.conns)-1]
}

// Outbox is the messages to write to the stream, in order.
func (c *Conn) Outbox() <-chan *runtimev1.SubscribeActorEventsResponseAlpha1 { return c.out }

// Done is closed once the stream is closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Deliver hands the app's answer to the callback waiting for it; an
// answer nobody waits for (late, or with an unknown ID) is dropped.
func (c *Conn) Deliver(msg *runtimev1.SubscribeActorEventsRequestAlpha1) bool {
	id, ok := answerID(msg)
	if !ok {
		return false
	}
	c.mu.Lock()
	ch, ok := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ok {
		ch <- msg // buffered, one answer per ID
	}
	return ok
}

func answerID(msg *runtimev1.SubscribeActorEventsRequestAlpha1) (string, bool) {
	switch v := msg.GetRequestType().(type) {
	case *runtimev1.SubscribeActorEventsRequestAlpha1_InvokeResponse:
		return v.InvokeResponse.GetId(), true
	case *runtimev1.SubscribeActorEventsRequestAlpha1_ReminderResponse:
		return v.ReminderResponse.GetId(), true
	case *runtimev1.SubscribeActorEventsRequestAlpha1_TimerResponse:
		return v.TimerResponse.GetId(), true
	case *runtimev1.SubscribeActorEventsRequestAlpha1_DeactivateResponse:
		return v.DeactivateResponse.GetId(), true
	case *runtimev1.SubscribeActorEventsRequestAlpha1_RequestFailed:
		return v.RequestFailed.GetId(), true
	}
	return "", false
}

// send writes the message build makes (given its ID) and waits for the
// app's answer.
func (s *Streams) send(ctx context.Context, build func(id string) *runtimev1.SubscribeActorEventsResponseAlpha1) (*runtimev1.SubscribeActorEventsRequestAlpha1, error) {
	c := s.latest()
	if c == nil {
		return nil, ErrNoConnection
	}
	id := strconv.FormatUint(s.seq.Add(1), 10)
	ch := make(chan *runtimev1.SubscribeActorEventsRequestAlpha1, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	select {
	case c.out <- build(id):
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	case <-c.done:
		forget()
		return nil, ErrDisconnected
	}
	select {
	case msg := <-ch:
		return msg, nil
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	case <-c.done:
		forget()
		return nil, ErrDisconnected
	}
}

// Invoke serves the actor runtime's callbacks (see the package doc).
func (s *Streams) Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error) {
	msg := req.Message.GetMessage()
	method := msg.GetMethod()
	verb := msg.GetHttpExtension().GetVerb()
	if method == "dapr/config" {
		c := s.latest()
		if c == nil {
			return response(http.StatusNotFound, nil, nil), nil
		}
		return response(http.StatusOK, nil, AppConfig(c.Initial)), nil
	}
	rest, ok := strings.CutPrefix(method, "actors/")
	if !ok {
		return nil, fmt.Errorf("the app's actor callback stream does not serve %q", method)
	}
	actorType, rest, _ := strings.Cut(rest, "/")
	if verb == commonv1.HTTPExtension_DELETE {
		return s.deactivate(ctx, actorType, rest)
	}
	actorID, name := req.Message.GetActor().GetActorId(), ""
	if actorID == "" {
		actorID, _, _ = strings.Cut(rest, "/")
	}
	name, ok = strings.CutPrefix(rest, actorID+"/method/")
	if !ok {
		return nil, fmt.Errorf("the app's actor callback stream does not serve %q", method)
	}
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, fmt.Errorf("read actor call body: %w", err)
		}
		body = b
	}
	if t, ok := strings.CutPrefix(name, "timer/"); ok {
		return s.timer(ctx, actorType, actorID, t, body)
	}
	if r, ok := strings.CutPrefix(name, "remind/"); ok {
		return s.reminder(ctx, actorType, actorID, r, body)
	}
	return s.invoke(ctx, actorType, actorID, name, req.Message, body)
}

func (s *Streams) invoke(ctx context.Context, actorType, actorID, method string, m *internalsv1.InternalInvokeRequest, body []byte) (*invoke.Response, error) {
	md := map[string]string{}
	for k, v := range m.GetMetadata() {
		if len(v.GetValues()) == 0 {
			continue
		}
		if strings.EqualFold(k, reentrancyIDHeader) {
			k = reentrancyIDHeader
		}
		md[k] = v.GetValues()[0]
	}
	if ct := m.GetMessage().GetContentType(); ct != "" {
		if _, ok := md["content-type"]; !ok {
			md["content-type"] = ct
		}
	}
	in, err := s.send(ctx, func(id string) *runtimev1.SubscribeActorEventsResponseAlpha1 {
		return &runtimev1.SubscribeActorEventsResponseAlpha1{ResponseType: &runtimev1.SubscribeActorEventsResponseAlpha1_InvokeRequest{
			InvokeRequest: &runtimev1.SubscribeActorEventsResponseInvokeRequestAlpha1{
				Id: id, ActorType: actorType, ActorId: actorID, Method: method, Data: body, Metadata: md,
			},
		}}
	})
	if err != nil {
		return nil, err
	}
	if err := failed(in, method); err != nil {
		return nil, err
	}
	r := in.GetInvokeResponse()
	if r == nil {
		return nil, fmt.Errorf("the app answered actor call %s with %T, not an invoke response", method, in.GetRequestType())
	}
	hdr := map[string]string{}
	for k, v := range r.GetMetadata() {
		hdr[k] = v
	}
	if r.GetError() {
		hdr[errorResponseHeader] = "true"
	}
	resp := response(http.StatusOK, hdr, r.GetData())
	resp.Message.Message.ContentType = r.GetMetadata()["content-type"]
	return resp, nil
}

// callbackBody is the JSON body the actor runtime sends for timers and
// reminders.
type callbackBody struct {
	Callback string          `json:"callback"`
	Data     json.RawMessage `json:"data"`
	DueTime  string          `json:"dueTime"`
	Period   string          `json:"period"`
}

func (b callbackBody) data() *anypb.Any {
	if len(b.Data) == 0 || string(b.Data) == "null" {
		return nil
	}
	return &anypb.Any{Value: b.Data}
}

func (s *Streams) timer(ctx context.Context, actorType, actorID, name string, body []byte) (*invoke.Response, error) {
	var b callbackBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("decode timer %s: %w", name, err)
	}
	in, err := s.send(ctx, func(id string) *runtimev1.SubscribeActorEventsResponseAlpha1 {
		return &runtimev1.SubscribeActorEventsResponseAlpha1{ResponseType: &runtimev1.SubscribeActorEventsResponseAlpha1_TimerRequest{
			TimerRequest: &runtimev1.SubscribeActorEventsResponseTimerRequestAlpha1{
				Id: id, ActorType: actorType, ActorId: actorID, Name: name,
				DueTime: b.DueTime, Period: b.Period, Callback: b.Callback, Data: b.data(),
			},
		}}
	})
	if err != nil {
		return nil, err
	}
	if err := failed(in, "timer/"+name); err != nil {
		return nil, err
	}
	r := in.GetTimerResponse()
	if r == nil {
		return nil, fmt.Errorf("the app answered timer %s with %T, not a timer response", name, in.GetRequestType())
	}
	return cancelResponse(r.GetCancel()), nil
}

func (s *Streams) reminder(ctx context.Context, actorType, actorID, name string, body []byte) (*invoke.Response, error) {
	var b callbackBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("decode reminder %s: %w", name, err)
	}
	in, err := s.send(ctx, func(id string) *runtimev1.SubscribeActorEventsResponseAlpha1 {
		return &runtimev1.SubscribeActorEventsResponseAlpha1{ResponseType: &runtimev1.SubscribeActorEventsResponseAlpha1_ReminderRequest{
			ReminderRequest: &runtimev1.SubscribeActorEventsResponseReminderRequestAlpha1{
				Id: id, ActorType: actorType, ActorId: actorID, Name: name,
				DueTime: b.DueTime, Period: b.Period, Data: b.data(),
			},
		}}
	})
	if err != nil {
		return nil, err
	}
	if err := failed(in, "remind/"+name); err != nil {
		return nil, err
	}
	r := in.GetReminderResponse()
	if r == nil {
		return nil, fmt.Errorf("the app answered reminder %s with %T, not a reminder response", name, in.GetRequestType())
	}
	return cancelResponse(r.GetCancel()), nil
}

func (s *Streams) deactivate(ctx context.Context, actorType, actorID string) (*invoke.Response, error) {
	in, err := s.send(ctx, func(id string) *runtimev1.SubscribeActorEventsResponseAlpha1 {
		return &runtimev1.SubscribeActorEventsResponseAlpha1{ResponseType: &runtimev1.SubscribeActorEventsResponseAlpha1_DeactivateRequest{
			DeactivateRequest: &runtimev1.SubscribeActorEventsResponseDeactivateRequestAlpha1{Id: id, ActorType: actorType, ActorId: actorID},
		}}
	})
	if err != nil {
		return nil, err
	}
	if err := failed(in, "deactivate"); err != nil {
		return nil, err
	}
	return response(http.StatusOK, nil, nil), nil
}

// failed is the app's request_failed answer as an error: NotFound (no such
// method) is not retried, as in daprd.
func failed(in *runtimev1.SubscribeActorEventsRequestAlpha1, what string) error {
	f := in.GetRequestFailed()
	if f == nil {
		return nil
	}
	if codes.Code(f.GetCode()) == codes.NotFound {
		return resiliency.Permanent(fmt.Errorf("actor method not found: %s: %s", what, f.GetMessage()))
	}
	return fmt.Errorf("error from actor service (%s, code %s): %s", what, codes.Code(f.GetCode()), f.GetMessage())
}

func cancelResponse(cancel bool) *invoke.Response {
	if cancel {
		return response(http.StatusOK, map[string]string{reminderCancelHeader: "true"}, nil)
	}
	return response(http.StatusOK, nil, nil)
}

func response(status int, hdr map[string]string, body []byte) *invoke.Response {
	h := make(map[string]*internalsv1.ListStringValue, len(hdr))
	for k, v := range hdr {
		h[k] = &internalsv1.ListStringValue{Values: []string{v}}
	}
	return &invoke.Response{
		Message: &internalsv1.InternalInvokeResponse{
			Status: &internalsv1.Status{Code: int32(status)}, Headers: h, Message: &commonv1.InvokeResponse{},
		},
		Body: io.NopCloser(strings.NewReader(string(body))), ContentLength: int64(len(body)),
	}
}
