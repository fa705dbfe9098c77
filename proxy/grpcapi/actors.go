package grpcapi

import (
	"context"
	"encoding/json"
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
	// An actor type or ID that would change the path of the app's
	// callback ("/", "..", "?"…) is refused, as daprd.
	for _, v := range [][2]string{{"actor type", in.GetActorType()}, {"actor ID", in.GetActorId()}} {
		if err := actors.ValidName(v[0], v[1]); err != nil {
			return nil, apierr.GRPC(apierr.BadRequest("%s", err))
		}
	}
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
	var re *actors.RemoteError
	if errors.As(err, &re) {
		return nil, re.GRPCStatus().Err()
	}
	if err != nil {
		return nil, apierr.GRPC(apierr.Actor(apierr.ActorInvoke, err))
	}
	return &runtimev1.InvokeActorResponse{Data: resp.GetMessage().GetData().GetValue()}, nil
}

// GetActorState reads one key of an actor's state.
func (a *API) GetActorState(ctx context.Context, in *runtimev1.GetActorStateRequest) (*runtimev1.GetActorStateResponse, error) {
	if e := apierr.ReservedActorType(in.GetActorType()); e != nil {
		return nil, apierr.GRPC(e)
	}
	data, md, err := a.cfg.Actors.GetStateMetadata(ctx, in.GetActorType(), in.GetActorId(), in.GetKey())
	if err != nil {
		return nil, apierr.GRPC(apierr.Actor(apierr.ActorStateGet, err))
	}
	return &runtimev1.GetActorStateResponse{Data: data, Metadata: md}, nil
}

// RegisterActorTimer starts a timer of a hosted actor.
func (a *API) RegisterActorTimer(ctx context.Context, in *runtimev1.RegisterActorTimerRequest) (*emptypb.Empty, error) {
	if e := apierr.ReservedActorType(in.GetActorType()); e != nil {
		return nil, apierr.GRPC(e)
	}
	req := actors.TimerRequest{
		ActorType: in.GetActorType(), ActorID: in.GetActorId(), Name: in.GetName(),
		DueTime: in.GetDueTime(), Period: in.GetPeriod(), TTL: in.GetTtl(), Callback: in.GetCallback(), Data: base64JSON(in.GetData()),
	}
	if err := a.cfg.Actors.CreateTimer(ctx, req); err != nil {
		return nil, apierr.GRPC(apierr.Actor(apierr.ActorTimerCreate, err))
	}
	return &emptypb.Empty{}, nil
}

// UnregisterActorTimer stops a timer.
func (a *API) UnregisterActorTimer(_ context.Context, in *runtimev1.UnregisterActorTimerRequest) (*emptypb.Empty, error) {
	if e := apierr.ReservedActorType(in.GetActorType()); e != nil {
		return nil, apierr.GRPC(e)
	}
	a.cfg.Actors.DeleteTimer(in.GetActorType(), in.GetActorId(), in.GetName())
	return &emptypb.Empty{}, nil
}

// ExecuteActorStateTransaction applies upserts and deletes to the state of
// an actor active on this host. Values are sent as they are (Any.Value),
// as daprd stores them.
func (a *API) ExecuteActorStateTransaction(ctx context.Context, in *runtimev1.ExecuteActorStateTransactionRequest) (*emptypb.Empty, error) {
	if e := apierr.ReservedActorType(in.GetActorType()); e != nil {
		return nil, apierr.GRPC(e)
	}
	ops := make([]actors.StateOp, 0, len(in.GetOperations()))
	for _, o := range in.GetOperations() {
		var op actors.StateOp
		op.Operation = o.GetOperationType()
		op.Request.Key = o.GetKey()
		op.Request.Metadata = o.GetMetadata()
		op.Raw = o.GetValue().GetValue()
		ops = append(ops, op)
	}
	if err := a.cfg.Actors.TransactState(ctx, in.GetActorType(), in.GetActorId(), ops); err != nil {
		return nil, apierr.GRPC(apierr.Actor(apierr.ActorStateTransaction, err))
	}
	return &emptypb.Empty{}, nil
}

// RegisterActorReminder stores a reminder of a hosted actor type.
func (a *API) RegisterActorReminder(ctx context.Context, in *runtimev1.RegisterActorReminderRequest) (*emptypb.Empty, error) {
	if e := apierr.ReservedActorType(in.GetActorType()); e != nil {
		return nil, apierr.GRPC(e)
	}
	req := actors.ReminderRequest{
		ActorType: in.GetActorType(), ActorID: in.GetActorId(), Name: in.GetName(),
		DueTime: in.GetDueTime(), Period: in.GetPeriod(), TTL: in.GetTtl(), Data: base64JSON(in.GetData()),
		Overwrite: in.Overwrite, FailurePolicy: in.GetFailurePolicy(),
	}
	if err := a.cfg.Actors.CreateReminder(ctx, req); err != nil {
		return nil, apierr.GRPC(apierr.Actor(apierr.ActorReminderCreate, err))
	}
	return &emptypb.Empty{}, nil
}

// UnregisterActorReminder deletes a reminder.
func (a *API) UnregisterActorReminder(ctx context.Context, in *runtimev1.UnregisterActorReminderRequest) (*emptypb.Empty, error) {
	if e := apierr.ReservedActorType(in.GetActorType()); e != nil {
		return nil, apierr.GRPC(e)
	}
	if err := a.cfg.Actors.DeleteReminder(ctx, in.GetActorType(), in.GetActorId(), in.GetName()); err != nil {
		return nil, apierr.GRPC(apierr.Actor(apierr.ActorReminderDelete, err))
	}
	return &emptypb.Empty{}, nil
}

// GetActorReminder returns a reminder of a hosted actor type.
func (a *API) GetActorReminder(ctx context.Context, in *runtimev1.GetActorReminderRequest) (*runtimev1.GetActorReminderResponse, error) {
	if e := apierr.ReservedActorType(in.GetActorType()); e != nil {
		return nil, apierr.GRPC(e)
	}
	rem, err := a.cfg.Actors.GetReminder(ctx, in.GetActorType(), in.GetActorId(), in.GetName())
	if err != nil {
		return nil, apierr.GRPC(apierr.Actor(apierr.ActorReminderGet, err))
	}
	return &runtimev1.GetActorReminderResponse{
		ActorType: rem.ActorType, ActorId: rem.ActorID, Data: rem.Data,
		DueTime: optional(rem.DueTime), Period: optional(rem.Period), Ttl: optional(rem.TTL),
	}, nil
}

// ListActorReminders returns the reminders of a hosted actor type, of one
// actor when ActorId is set.
func (a *API) ListActorReminders(ctx context.Context, in *runtimev1.ListActorRemindersRequest) (*runtimev1.ListActorRemindersResponse, error) {
	if e := apierr.ReservedActorType(in.GetActorType()); e != nil {
		return nil, apierr.GRPC(e)
	}
	list, err := a.cfg.Actors.ListReminders(ctx, in.GetActorType(), in.ActorId)
	if err != nil {
		return nil, apierr.GRPC(apierr.Actor(apierr.ActorReminderGet, err))
	}
	out := &runtimev1.ListActorRemindersResponse{Reminders: make([]*runtimev1.NamedActorReminder, 0, len(list))}
	for _, rem := range list {
		out.Reminders = append(out.Reminders, &runtimev1.NamedActorReminder{Name: rem.Name, Reminder: &runtimev1.ActorReminder{
			ActorType: rem.ActorType, ActorId: rem.ActorID, Data: rem.Data,
			DueTime: optional(rem.DueTime), Period: optional(rem.Period), Ttl: optional(rem.TTL),
		}})
	}
	return out, nil
}

// UnregisterActorRemindersByType deletes the reminders of a hosted actor
// type, of one actor when ActorId is set.
func (a *API) UnregisterActorRemindersByType(ctx context.Context, in *runtimev1.UnregisterActorRemindersByTypeRequest) (*runtimev1.UnregisterActorRemindersByTypeResponse, error) {
	if e := apierr.ReservedActorType(in.GetActorType()); e != nil {
		return nil, apierr.GRPC(e)
	}
	if err := a.cfg.Actors.DeleteRemindersByActor(ctx, in.GetActorType(), in.ActorId); err != nil {
		return nil, apierr.GRPC(apierr.Actor(apierr.ActorReminderDelete, err))
	}
	return &runtimev1.UnregisterActorRemindersByTypeResponse{}, nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// base64JSON is the data of a gRPC timer or reminder as daprd keeps it:
// the bytes as a JSON string in base64 (what the app's callback gets).
func base64JSON(b []byte) json.RawMessage {
	if b == nil {
		return nil
	}
	out, _ := json.Marshal(b)
	return out
}
