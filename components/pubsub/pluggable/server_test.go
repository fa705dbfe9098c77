package pluggable_test

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	compv1 "github.com/dapr/dapr/pkg/proto/components/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/components/pubsub"
)

// server is a pluggable pub/sub component as a third party would write one:
// a gRPC server on a Unix socket with a queue per topic. Each PullMessages
// stream takes messages from its topic's queue (streams of one topic share
// it); a message sent on a stream waits for its ack, and an ack with an
// error, or the stream ending first, puts it back in the queue. answers
// records every ack it got.
type server struct {
	compv1.UnimplementedPubSubServer
	pausable bool

	seq     atomic.Uint64
	mu      sync.Mutex
	queues  map[string]*queue
	answers []*compv1.PullMessagesRequest
	paused  chan struct{} // closed by the first Pause
	pauses  atomic.Int32
	sent    atomic.Int32 // messages sent over PullMessages streams
}

// queue is one topic's messages not yet sent; ready has a value while it
// is not empty.
type queue struct {
	mu    sync.Mutex
	msgs  []*compv1.PullMessagesResponse
	ready chan struct{}
}

func (q *queue) push(m *compv1.PullMessagesResponse) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, m)
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop waits for the next message until ctx ends.
func (q *queue) pop(ctx context.Context) (*compv1.PullMessagesResponse, bool) {
	for {
		q.mu.Lock()
		if len(q.msgs) > 0 {
			m := q.msgs[0]
			q.msgs = q.msgs[1:]
			if len(q.msgs) > 0 {
				select {
				case q.ready <- struct{}{}:
				default:
				}
			}
			q.mu.Unlock()
			return m, true
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// startServer serves a new component on a socket in dir named name+".sock".
func startServer(t *testing.T, dir, name string, pausable bool) *server {
	t.Helper()
	s := &server{pausable: pausable, paused: make(chan struct{}), queues: map[string]*queue{}}
	ln, err := net.Listen("unix", filepath.Join(dir, name+".sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	compv1.RegisterPubSubServer(srv, s)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return s
}

func (s *server) queue(topic string) *queue {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[topic]
	if q == nil {
		q = &queue{ready: make(chan struct{}, 1)}
		s.queues[topic] = q
	}
	return q
}

func (s *server) Init(context.Context, *compv1.PubSubInitRequest) (*compv1.PubSubInitResponse, error) {
	return &compv1.PubSubInitResponse{}, nil
}

func (s *server) Features(context.Context, *compv1.FeaturesRequest) (*compv1.FeaturesResponse, error) {
	return &compv1.FeaturesResponse{Features: []string{string(pubsub.FeatureMessageMetadata)}}, nil
}

func (s *server) Publish(_ context.Context, req *compv1.PublishRequest) (*compv1.PublishResponse, error) {
	s.queue(req.GetTopic()).push(&compv1.PullMessagesResponse{
		Id: strconv.FormatUint(s.seq.Add(1), 10), TopicName: req.GetTopic(), Data: req.GetData(),
		ContentType: req.GetContentType(), Metadata: req.GetMetadata(),
	})
	return &compv1.PublishResponse{}, nil
}

func (s *server) Pause(context.Context, *compv1.PauseRequest) (*compv1.PauseResponse, error) {
	if s.pauses.Add(1) == 1 {
		close(s.paused)
	}
	if !s.pausable {
		return nil, status.Error(codes.Unimplemented, "pause not implemented")
	}
	return &compv1.PauseResponse{}, nil
}

func (s *server) answered() []*compv1.PullMessagesRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*compv1.PullMessagesRequest(nil), s.answers...)
}

func (s *server) PullMessages(stream compv1.PubSub_PullMessagesServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	q := s.queue(first.GetTopic().GetName())
	ctx, cancel := context.WithCancel(stream.Context())
	var mu sync.Mutex
	pending := map[string]*compv1.PullMessagesResponse{}
	defer func() {
		// Not acknowledged: back in the queue.
		mu.Lock()
		defer mu.Unlock()
		for _, m := range pending {
			q.push(m)
		}
	}()
	go func() {
		defer cancel()
		for {
			a, err := stream.Recv()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.answers = append(s.answers, a)
			s.mu.Unlock()
			mu.Lock()
			m := pending[a.GetAckMessageId()]
			delete(pending, a.GetAckMessageId())
			mu.Unlock()
			if m != nil && a.GetAckError() != nil {
				time.AfterFunc(20*time.Millisecond, func() { q.push(m) })
			}
		}
	}()
	for {
		m, ok := q.pop(ctx)
		if !ok {
			return nil
		}
		mu.Lock()
		pending[m.GetId()] = m
		mu.Unlock()
		if err := stream.Send(m); err != nil {
			return nil
		}
		s.sent.Add(1)
	}
}
