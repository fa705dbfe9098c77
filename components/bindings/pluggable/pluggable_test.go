package pluggable

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	compv1 "github.com/dapr/dapr/pkg/proto/components/v1"
	"google.golang.org/grpc"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/components/bindings/bindingstest"
)

// server is a pluggable binding as a third party would write one: a gRPC
// server on a Unix socket whose output side (create) queues the data, and
// whose input side sends queued events on the Read stream, each waiting
// for its answer; an answer with an error, or the stream ending first,
// puts the event back in the queue.
type server struct {
	compv1.UnimplementedInputBindingServer
	seq   atomic.Uint64
	queue chan *compv1.ReadResponse
	mu    sync.Mutex
	acks  []*compv1.ReadRequest
}

func (s *server) Init(context.Context, *compv1.InputBindingInitRequest) (*compv1.InputBindingInitResponse, error) {
	return &compv1.InputBindingInitResponse{}, nil
}

func (s *server) Read(stream compv1.InputBinding_ReadServer) error {
	pending := map[string]*compv1.ReadResponse{}
	var mu sync.Mutex
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range pending {
			s.queue <- m
		}
	}()
	go func() {
		for {
			ack, err := stream.Recv()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.acks = append(s.acks, ack)
			s.mu.Unlock()
			mu.Lock()
			m := pending[ack.GetMessageId()]
			delete(pending, ack.GetMessageId())
			mu.Unlock()
			if ack.GetResponseError() != nil && m != nil {
				s.queue <- m
			}
		}
	}()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case m := <-s.queue:
			mu.Lock()
			pending[m.GetMessageId()] = m
			mu.Unlock()
			if err := stream.Send(m); err != nil {
				return err
			}
		}
	}
}

type output struct {
	compv1.UnimplementedOutputBindingServer
	s *server
}

func (o output) Init(context.Context, *compv1.OutputBindingInitRequest) (*compv1.OutputBindingInitResponse, error) {
	return &compv1.OutputBindingInitResponse{}, nil
}

func (o output) ListOperations(context.Context, *compv1.ListOperationsRequest) (*compv1.ListOperationsResponse, error) {
	return &compv1.ListOperationsResponse{Operations: []string{"create"}}, nil
}

func (o output) Invoke(_ context.Context, req *compv1.InvokeRequest) (*compv1.InvokeResponse, error) {
	if req.GetOperation() != "create" {
		return nil, os.ErrInvalid
	}
	o.s.queue <- &compv1.ReadResponse{Data: req.GetData(), MessageId: strconv.FormatUint(o.s.seq.Add(1), 10)}
	return &compv1.InvokeResponse{Data: []byte("queued"), Metadata: map[string]string{"n": "1"}}, nil
}

// serve starts the component in a new sockets folder, with the output side
// if withOutput.
func serve(t *testing.T, withOutput bool) (components.SocketsFolder, *server) {
	t.Helper()
	dir, err := os.MkdirTemp("", "plg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ln, err := net.Listen("unix", filepath.Join(dir, "feed.sock"))
	if err != nil {
		t.Fatal(err)
	}
	s := &server{queue: make(chan *compv1.ReadResponse, 100)}
	g := grpc.NewServer()
	compv1.RegisterInputBindingServer(g, s)
	if withOutput {
		compv1.RegisterOutputBindingServer(g, output{s: s})
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return components.SocketsFolder(dir), s
}

func newFromFolder(t *testing.T, folder components.SocketsFolder) bindings.Binding {
	t.Helper()
	none := func(string) (bindings.Binding, bool) { return nil, false }
	b, ok := Fallback(none, folder, nil)("bindings.feed")
	if !ok {
		t.Fatal("socket not found")
	}
	return b
}

func TestContract(t *testing.T) {
	folder, _ := serve(t, true)
	bindingstest.Run(t, bindingstest.Config{
		New:      func() bindings.Binding { return newFromFolder(t, folder) },
		Metadata: func(*testing.T) components.Metadata { return components.Metadata{Name: "feed", Type: "bindings.feed"} },
		Send: func(data []byte) *bindings.InvokeRequest {
			return &bindings.InvokeRequest{Operation: "create", Data: data}
		},
	})
}

func TestSidesAndAnswers(t *testing.T) {
	folder, s := serve(t, false)
	b := newFromFolder(t, folder)
	if err := b.Init(context.Background(), components.Metadata{Name: "feed"}); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := bindings.SidesOf(b); !got.Input || got.Output {
		t.Fatalf("sides = %+v, want input only", got)
	}
	s.queue <- &compv1.ReadResponse{Data: []byte("hi"), MessageId: "m1"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	got := make(chan string, 1)
	go func() {
		done <- b.(bindings.InputBinding).Read(ctx, func(_ context.Context, ev *bindings.Event) ([]byte, error) {
			got <- string(ev.Data)
			return []byte("answer"), nil
		})
	}()
	if v := <-got; v != "hi" {
		t.Fatalf("event %q", v)
	}
	for {
		s.mu.Lock()
		n := len(s.acks)
		s.mu.Unlock()
		if n > 0 {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.acks[0]; a.GetMessageId() != "m1" || string(a.GetResponseData()) != "answer" || a.GetResponseError() != nil {
		t.Errorf("ack = %v", a)
	}
}
