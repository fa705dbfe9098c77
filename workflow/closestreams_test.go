package workflow

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// itemStream is a GetWorkItems server stream that hands what is sent to
// sent.
type itemStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent chan *protos.WorkItem
}

func (s *itemStream) Context() context.Context { return s.ctx }
func (s *itemStream) Send(w *protos.WorkItem) error {
	s.sent <- w
	return nil
}

// TestCloseStreams: CloseStreams ends an open work-item stream with
// daprd's Canceled, the item its worker had taken and not answered goes
// back to waiting for a worker (errNoWorker: parked), and a stream opened
// afterwards is refused at once.
func TestCloseStreams(t *testing.T) {
	e := New(Config{AppID: "app"})
	hub := e.TaskHub()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream := &itemStream{ctx: ctx, sent: make(chan *protos.WorkItem, 1)}
	ended := make(chan error, 1)
	go func() { ended <- hub.GetWorkItems(&protos.GetWorkItemsRequest{}, stream) }()
	dispatched := make(chan error, 1)
	go func() {
		_, err := e.workers.dispatchKeep(ctx, "a|x|0", &protos.WorkItem{}, time.Minute, true)
		dispatched <- err
	}()
	select {
	case <-stream.sent:
	case <-ctx.Done():
		t.Fatal("the work item never reached the stream")
	}

	e.CloseStreams()
	select {
	case err := <-ended:
		if status.Code(err) != codes.Canceled {
			t.Fatalf("GetWorkItems = %v, want Canceled", err)
		}
	case <-ctx.Done():
		t.Fatal("GetWorkItems did not return after CloseStreams")
	}
	if err := <-dispatched; !errors.Is(err, errNoWorker) {
		t.Fatalf("the taken item's dispatch = %v, want errNoWorker", err)
	}
	if err := hub.GetWorkItems(&protos.GetWorkItemsRequest{}, stream); status.Code(err) != codes.Canceled {
		t.Fatalf("GetWorkItems after CloseStreams = %v, want Canceled at once", err)
	}
	if n := e.ConnectedWorkers(); n != 0 {
		t.Fatalf("%d workers connected after CloseStreams", n)
	}
}
