package pluggable

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	compv1 "github.com/dapr/dapr/pkg/proto/components/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/components/pubsub"
)

// pull is one subscription's PullMessages stream.
type pull struct {
	stream compv1.PubSub_PullMessagesClient
	topic  string
	log    *slog.Logger

	sendMu sync.Mutex // a gRPC stream takes one sender at a time
}

// run hands the stream's messages to h until subCtx ends (the subscription
// stops or the broker closes) or the stream does, then waits for the
// handlers running, which are still answered, and ends the stream with
// cancel.
func (s *pull) run(subCtx context.Context, cancel context.CancelFunc, h pubsub.Handler, req pubsub.SubscribeRequest) {
	conc := req.MaxConcurrency
	if conc < 1 {
		conc = 1
	}
	d := pubsub.NewDispatcher(subCtx, h, pubsub.DispatcherConfig{
		Concurrency: conc, OrderingKey: req.OrderingKey, Log: s.log,
	})
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		s.receive(subCtx, d)
	}()
	select {
	case <-subCtx.Done():
	case <-recvDone:
	}
	d.Wait()
	if d.RanPastStop() {
		// As daprd: when deliveries were still running as the
		// subscription stopped, the stream stays open a moment after the
		// last of them was answered, so the answers settle with the
		// component; what it sends meanwhile is held unanswered.
		t := time.NewTimer(ackSettle)
		select {
		case <-recvDone:
		case <-t.C:
		}
		t.Stop()
	}
	s.sendMu.Lock()
	_ = s.stream.CloseSend()
	s.sendMu.Unlock()
	// Let the component read the last acks and end the stream itself:
	// cancelling at once could drop acks still in the send buffer.
	t := time.NewTimer(closeWait)
	select {
	case <-recvDone:
	case <-t.C:
	}
	t.Stop()
	cancel()
	<-recvDone
}

// closeWait bounds how long a stopping subscription waits for the component
// to end the stream after the last ack.
const closeWait = 2 * time.Second

// ackSettle is how long a stopping subscription keeps its stream open after
// the deliveries that were running when it stopped were answered (daprd's
// 400ms). A variable for tests.
var ackSettle = 400 * time.Millisecond

// receive dispatches each message while subCtx lasts. Messages that arrive
// after it ended are held unanswered: the component redelivers them once
// the stream is gone.
func (s *pull) receive(subCtx context.Context, d *pubsub.Dispatcher) {
	for {
		m, err := s.stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) && status.Code(err) != codes.Canceled && subCtx.Err() == nil {
				s.log.Error("pluggable pub/sub stream ended: this subscription gets no more messages until it is made again",
					"topic", s.topic, "error", err)
			}
			return
		}
		if subCtx.Err() != nil {
			continue
		}
		id := m.GetId()
		msg := &pubsub.Message{
			Topic: m.GetTopicName(), Data: m.GetData(), ContentType: m.GetContentType(), Metadata: m.GetMetadata(), ID: id,
		}
		_ = d.Dispatch(pubsub.Delivery{
			Msg: msg,
			Ack: func(context.Context) error { return s.answer(id, nil) },
			Nack: func(_ context.Context, cause error) error {
				if subCtx.Err() != nil {
					// Stopping: no nack, which a component may take as a
					// reason to dead-letter the message.
					return nil
				}
				return s.answer(id, cause)
			},
		})
	}
}

// answer acknowledges message id, with cause as the error when not nil.
func (s *pull) answer(id string, cause error) error {
	req := &compv1.PullMessagesRequest{AckMessageId: id}
	if cause != nil {
		req.AckError = &compv1.AckMessageError{Message: cause.Error()}
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.stream.Send(req)
}
