package actors

import (
	"context"
	"errors"
	"strings"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// A reminder the scheduler triggers on this host for an internal actor
// (the workflow engine's) that another host owns reaches the owner as
// daprd sends it: the internal CallActorReminder RPC, with the reminder's
// data as it is stored. A daprd owner needs that (it takes
// "remind/{name}" through CallActor for a method of the actor, which its
// workflow actors do not have); an owner that does not serve it (an
// earlier Tandem) gets the call through CallActor. An app's actor's
// reminder goes through CallActor, which daprd serves as its reminder
// call (PUT .../method/remind/{name}), as Tandem does.

// routeReminder routes a reminder's call (remind/{name}) to the owner.
func (r *Runtime) routeReminder(ctx context.Context, req *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	if !isInternalType(req.GetActor().GetActorType()) {
		return r.route(ctx, req)
	}
	return r.routeVia(ctx, req, r.callRemoteReminder)
}

// callRemoteReminder sends a reminder's call to its owner by
// CallActorReminder; CallActor when the owner does not serve that.
func (r *Runtime) callRemoteReminder(ctx context.Context, addr string, req *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	cc, err := r.cfg.Pool.Get(addr)
	if err != nil {
		return nil, err
	}
	name := strings.TrimPrefix(req.GetMessage().GetMethod(), "remind/")
	rem := &internalsv1.Reminder{ActorType: req.GetActor().GetActorType(), ActorId: req.GetActor().GetActorId(), Name: name}
	if d := req.GetMessage().GetData(); d.GetTypeUrl() != "" {
		rem.Data = d
	}
	// The Reminder message has no metadata: this sidecar's identity goes
	// in the call's (read where there is no mTLS to tell it).
	octx := metadata.AppendToOutgoingContext(ctx, callerAppHeader, r.cfg.AppID)
	if r.cfg.Namespace != "" {
		octx = metadata.AppendToOutgoingContext(octx, callerNamespaceHeader, r.cfg.Namespace)
	}
	err = cc.Invoke(octx, internalsv1.ServiceInvocation_CallActorReminder_FullMethodName, rem, new(emptypb.Empty))
	switch status.Code(err) {
	case codes.OK:
		return &internalsv1.InternalInvokeResponse{Status: &internalsv1.Status{Code: 200}, Message: &commonv1.InvokeResponse{}}, nil
	case codes.Unimplemented:
		return r.callRemote(ctx, addr, req)
	case codes.Unavailable:
		r.cfg.Pool.Discard(addr, cc)
	case codes.FailedPrecondition:
		if strings.HasPrefix(status.Convert(err).Message(), errMoved.Error()) {
			return nil, errMoved
		}
	}
	return nil, errors.New("call actor reminder on host " + addr + ": " + status.Convert(err).Message())
}

// CallActorReminder fires a reminder another host was triggered for on
// the actor, which this host owns (the internal CallActorReminder RPC):
// an app's actor gets daprd's reminder call, an internal actor the data
// as stored. The actor's asking to cancel the reminder (the
// X-DaprReminderCancel header) deletes it here, as daprd's owner does.
func (r *Runtime) CallActorReminder(ctx context.Context, in *internalsv1.Reminder) error {
	if r == nil || r.placement == nil {
		return status.Error(codes.FailedPrecondition, ErrNoPlacement.Error())
	}
	req := reminderCall(in.GetActorType(), in.GetActorId(), in.GetName(), in.GetData(), in.GetDueTime(), in.GetPeriod())
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for _, h := range []string{callerAppHeader, callerNamespaceHeader} {
			if v := md.Get(h); len(v) > 0 {
				if req.Metadata == nil {
					req.Metadata = map[string]*internalsv1.ListStringValue{}
				}
				req.Metadata[h] = &internalsv1.ListStringValue{Values: v[:1]}
			}
		}
	}
	resp, err := r.CallActor(ctx, req)
	if err != nil {
		return err
	}
	if cancelHeader(resp) {
		if derr := r.remStore.Delete(ctx, in.GetActorType(), in.GetActorId(), in.GetName()); derr != nil {
			r.log.Warn("delete cancelled reminder", "reminder", in.GetName(), "error", derr)
		}
	}
	return nil
}
