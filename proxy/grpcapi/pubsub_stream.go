package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"sync"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/proxy/api"
	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/proxy/subscriptions"
)

// SubscribeTopicEventsAlpha1 serves a streaming subscription: the client
// sends an initial request (pub/sub, topic, metadata, dead letter topic),
// receives an initial response, then events; it answers each event with
// its ID and a status (SUCCESS, RETRY, DROP). Events not answered when the
// stream ends are redelivered.
func (a *API) SubscribeTopicEventsAlpha1(stream runtimev1.Dapr_SubscribeTopicEventsAlpha1Server) error {
	if a.cfg.PubSub == nil {
		return errPubSubUnimplemented
	}
	// One goroutine reads the stream, so that the handler can return
	// when the sidecar stops (CloseStreams) while a read is blocked.
	in := make(chan *runtimev1.SubscribeTopicEventsRequestAlpha1)
	readErr := make(chan error, 1)
	a.readers.Add(1)
	go func() {
		defer a.readers.Done()
		for {
			m, err := stream.Recv()
			if err != nil {
				readErr <- err
				return
			}
			select {
			case in <- m:
			case <-stream.Context().Done():
				readErr <- stream.Context().Err()
				return
			}
		}
	}()
	// stopped is closed once the subscription has stopped (ss.done).
	var stopped <-chan struct{}
	next := func() (*runtimev1.SubscribeTopicEventsRequestAlpha1, error) {
		select {
		case m := <-in:
			return m, nil
		case err := <-readErr:
			return nil, err
		case <-a.closing:
			return nil, errStreamsClosed
		case <-stopped:
			return nil, errSubscriptionStopped
		}
	}
	first, err := next()
	if err != nil {
		return err
	}
	// daprd's checks and words (plain errors, so codes.Unknown), before
	// the pub/sub is looked up.
	init := first.GetInitialRequest()
	switch {
	case init == nil:
		return status.Error(codes.Unknown, "initial request is required")
	case init.GetPubsubName() == "":
		return status.Error(codes.Unknown, "pubsubName is required")
	case init.GetTopic() == "":
		return status.Error(codes.Unknown, "topic is required")
	}
	ss := &eventStream{stream: stream, pending: map[string]chan subscriptions.Status{}, done: make(chan struct{})}
	stopped = ss.done
	stop, err := a.cfg.PubSub.Subscribe(stream.Context(), api.StreamRequest{
		PubsubName: init.GetPubsubName(), Topic: init.GetTopic(), Metadata: init.GetMetadata(),
		DeadLetterTopic: init.GetDeadLetterTopic(),
		// Deliveries waiting for an answer give up once the subscription
		// is cancelled: the broker leaves their messages unanswered
		// instead of seeing a nack. At shutdown that is after the
		// subscriber could answer them; then the stream ends.
		OnStop: ss.giveUp,
	}, ss)
	if err != nil {
		return apierr.GRPC(err)
	}
	defer stop()
	// The stream is over (deferred calls run last first): what waits for
	// an answer gives up before stop waits for the deliveries.
	defer ss.giveUp()
	if err := ss.send(&runtimev1.SubscribeTopicEventsResponseAlpha1{
		SubscribeTopicEventsResponseType: &runtimev1.SubscribeTopicEventsResponseAlpha1_InitialResponse{
			InitialResponse: &runtimev1.SubscribeTopicEventsResponseInitialAlpha1{},
		},
	}); err != nil {
		return err
	}
	for {
		m, err := next()
		if errors.Is(err, errStreamsClosed) {
			return err
		}
		if errors.Is(err, errSubscriptionStopped) {
			// The sidecar stopped the subscription (its shutdown began)
			// and the subscriber has answered what it could: the stream
			// ends as daprd's does.
			return nil
		}
		if err != nil {
			// EOF or cancelled: the client is gone.
			return nil
		}
		p := m.GetEventProcessed()
		if p == nil {
			// daprd's words: only an initial request can be anything else.
			return status.Error(codes.Unknown, "duplicate initial request received")
		}
		ss.answer(p.GetId(), p.GetStatus().GetStatus())
	}
}

// errStreamsClosed ends a topic event stream when the sidecar stops.
var errStreamsClosed = status.Error(codes.Unavailable, "api server closed")

// errSubscriptionStopped tells the stream's loop its subscription stopped.
var errSubscriptionStopped = errors.New("subscription stopped")

// eventStream delivers events to a streaming subscriber.
type eventStream struct {
	stream  runtimev1.Dapr_SubscribeTopicEventsAlpha1Server
	sendMu  sync.Mutex
	mu      sync.Mutex
	pending map[string]chan subscriptions.Status
	// done is closed (giveUp) once the subscription stopped or the stream
	// ended: deliveries waiting for an answer give up.
	done     chan struct{}
	doneOnce sync.Once
}

func (s *eventStream) giveUp() { s.doneOnce.Do(func() { close(s.done) }) }

func (s *eventStream) send(m *runtimev1.SubscribeTopicEventsResponseAlpha1) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.stream.Send(m)
}

func (s *eventStream) answer(id string, st runtimev1.TopicEventResponse_TopicEventResponseStatus) {
	s.mu.Lock()
	ch, ok := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	if !ok {
		return // unknown or duplicate answer
	}
	res, _ := subscriptions.StatusFromProto(id, st)
	ch <- res
}

// Deliver implements subscriptions.Deliverer.
func (s *eventStream) Deliver(ctx context.Context, m *subscriptions.Message) (subscriptions.Status, error) {
	req, err := subscriptions.TopicEventRequest(m)
	if err != nil {
		return subscriptions.Retry, err
	}
	id := req.GetId()
	ch := make(chan subscriptions.Status, 1)
	s.mu.Lock()
	if _, dup := s.pending[id]; dup {
		s.mu.Unlock()
		return subscriptions.Retry, fmt.Errorf("event %s is already waiting for the subscriber's answer", id)
	}
	s.pending[id] = ch
	s.mu.Unlock()
	forget := func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}
	err = s.send(&runtimev1.SubscribeTopicEventsResponseAlpha1{
		SubscribeTopicEventsResponseType: &runtimev1.SubscribeTopicEventsResponseAlpha1_EventMessage{EventMessage: req},
	})
	if err != nil {
		forget()
		return subscriptions.Retry, fmt.Errorf("send event %s to the streaming subscriber: %w", id, err)
	}
	select {
	case st := <-ch:
		if st == subscriptions.Retry {
			return st, fmt.Errorf("subscriber asked to retry event %s", id)
		}
		return st, nil
	case <-s.done:
		forget()
		return subscriptions.Retry, fmt.Errorf("stream closed before the subscriber answered event %s", id)
	case <-ctx.Done():
		forget()
		return subscriptions.Retry, ctx.Err()
	}
}
