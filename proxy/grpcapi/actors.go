package grpcapi

import (
	"context"
	"errors"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tandemrun/tandem/actors"
	"github.com/tandemrun/tandem/proxy/apierr"
)

// InvokeActor calls an actor method through the actor router.
func (a *API) InvokeActor(ctx context.Context, in *runtimev1.InvokeActorRequest) (*runtimev1.InvokeActorResponse, error) {
	md := make(map[string]*internalsv1.ListStringValue, len(in.GetMetadata()))
	for k, v := range in.GetMetadata() {
		md[k] = &internalsv1.ListStringValue{Values: []string{v}}
	}
	req := &internalsv1.InternalInvokeRequest{
		Ver:      internalsv1.APIVersion_V1,
		Actor:    &internalsv1.Actor{ActorType: in.GetActorType(), ActorId: in.GetActorId()},
		Metadata: md,
		Message: &commonv1.InvokeRequest{
			Method: in.GetMethod(), Data: &anypb.Any{Value: in.GetData()},
			HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_PUT},
		},
	}
	resp, err := a.cfg.Actors.Call(ctx, req)
	var ae *actors.AppError
	if errors.As(err, &ae) && ae.Flagged {
		return &runtimev1.InvokeActorResponse{Data: ae.Body}, nil
	}
	if err != nil {
		return nil, apierr.GRPC(apierr.Actor(apierr.ActorInvoke, err))
	}
	return &runtimev1.InvokeActorResponse{Data: resp.GetMessage().GetData().GetValue()}, nil
}

// GetActorState reads one key of an actor's state.
func (a *API) GetActorState(ctx context.Context, in *runtimev1.GetActorStateRequest) (*runtimev1.GetActorStateResponse, error) {
	data, err := a.cfg.Actors.GetState(ctx, in.GetActorType(), in.GetActorId(), in.GetKey())
	if err != nil {
		return nil, apierr.GRPC(apierr.Actor(apierr.ActorStateGet, err))
	}
	return &runtimev1.GetActorStateResponse{Data: data}, nil
}

// RegisterActorTimer starts a timer of a hosted actor.
func (a *API) RegisterActorTimer(ctx context.Context, in *runtimev1.RegisterActorTimerRequest) (*emptypb.Empty, error) {
	req := actors.TimerRequest{
		ActorType: in.GetActorType(), ActorID: in.GetActorId(), Name: in.GetName(),
		DueTime: in.GetDueTime(), Period: in.GetPeriod(), TTL: in.GetTtl(), Callback: in.GetCallback(), Data: in.GetData(),
	}
	if err := a.cfg.Actors.CreateTimer(ctx, req); err != nil {
		return nil, apierr.GRPC(apierr.Actor(apierr.ActorTimerCreate, err))
	}
	return &emptypb.Empty{}, nil
}

// UnregisterActorTimer stops a timer.
func (a *API) UnregisterActorTimer(_ context.Context, in *runtimev1.UnregisterActorTimerRequest) (*emptypb.Empty, error) {
	a.cfg.Actors.DeleteTimer(in.GetActorType(), in.GetActorId(), in.GetName())
	return &emptypb.Empty{}, nil
}
