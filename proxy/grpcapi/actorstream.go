package grpcapi

import (
	"context"
	"fmt"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/actors"
	"github.com/tandemrun/tandem/actors/appstream"
)

// SubscribeActorEventsAlpha1 serves Dapr 1.18's actor callback stream: the
// app names the actor types it hosts in a first message and then answers
// the actor calls, timers, reminders and deactivations sent on the stream
// (actors/appstream). Its types are hosted here while the stream is open.
// Only a sidecar whose app speaks gRPC, or that has no app port, serves
// it (daprd answers FailedPrecondition to an HTTP app's).
func (a *API) SubscribeActorEventsAlpha1(stream runtimev1.Dapr_SubscribeActorEventsAlpha1Server) error {
	streams := a.cfg.ActorStreams
	if streams == nil {
		return status.Error(codes.FailedPrecondition, "actor callback streaming requires a gRPC app channel (--app-protocol grpc) or no app port")
	}
	if a.cfg.Actors == nil {
		return status.Error(codes.FailedPrecondition, "actor callback streaming needs the actor runtime: start the sidecar with --placement-host-address")
	}
	// One goroutine reads the stream, so the handler can return when the
	// sidecar stops (CloseStreams) while a read is blocked.
	in := make(chan *runtimev1.SubscribeActorEventsRequestAlpha1)
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
	var first *runtimev1.SubscribeActorEventsRequestAlpha1
	select {
	case first = <-in:
	case err := <-readErr:
		return err
	case <-a.closing:
		return errStreamsClosed
	}
	initial := first.GetInitialRequest()
	if initial == nil {
		return status.Error(codes.InvalidArgument, "first message must be SubscribeActorEventsRequestInitialAlpha1")
	}
	types, warnings, err := actors.ParseAppConfig(appstream.AppConfig(initial))
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "actor registration: %v", err)
	}
	for _, w := range warnings {
		a.log.Warn("actor configuration", "warning", w)
	}
	if err := a.cfg.Actors.RegisterHosted(stream.Context(), types); err != nil {
		return status.Errorf(codes.Internal, "failed to register hosted actors: %v", err)
	}
	conn := streams.Open(initial)
	// The stream first (calls waiting for its answers fail at once), then
	// the types: their actors are deactivated, through a newer stream if
	// there is one.
	defer func() {
		streams.Close(conn)
		a.cfg.Actors.UnregisterHosted(context.WithoutCancel(stream.Context()), initial.GetEntities()...)
	}()
	if err := stream.Send(&runtimev1.SubscribeActorEventsResponseAlpha1{
		ResponseType: &runtimev1.SubscribeActorEventsResponseAlpha1_InitialResponse{
			InitialResponse: &runtimev1.SubscribeActorEventsResponseInitialAlpha1{},
		},
	}); err != nil {
		return err
	}
	for {
		select {
		case m := <-in:
			if m.GetInitialRequest() != nil {
				return status.Error(codes.InvalidArgument, "duplicate initial request received")
			}
			conn.Deliver(m)
		case out := <-conn.Outbox():
			if err := stream.Send(out); err != nil {
				return fmt.Errorf("send actor callback: %w", err)
			}
		case <-readErr:
			return nil // EOF or cancelled: the app is gone
		case <-a.closing:
			return errStreamsClosed
		}
	}
}
