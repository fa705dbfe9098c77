package grpcapi

import (
	"context"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tandemrun/tandem/proxy/api"
	"github.com/tandemrun/tandem/proxy/apierr"
)

// errPubSubUnimplemented answers pub/sub RPCs when no pub/sub API is wired.
var errPubSubUnimplemented = status.Error(codes.Unimplemented, "the pub/sub API is not enabled on this sidecar")

// traceContext returns the caller's W3C trace context from the incoming
// metadata.
func traceContext(ctx context.Context) (traceParent, traceState string) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("traceparent"); len(v) > 0 {
		traceParent = v[0]
	}
	if v := md.Get("tracestate"); len(v) > 0 {
		traceState = v[0]
	}
	return traceParent, traceState
}

// PublishEvent publishes one event.
func (a *API) PublishEvent(ctx context.Context, in *runtimev1.PublishEventRequest) (*emptypb.Empty, error) {
	if a.cfg.PubSub == nil {
		return nil, errPubSubUnimplemented
	}
	tp, ts := traceContext(ctx)
	err := a.cfg.PubSub.Publish(ctx, api.PublishRequest{
		PubsubName: in.GetPubsubName(), Topic: in.GetTopic(), Data: in.GetData(),
		ContentType: in.GetDataContentType(), Metadata: in.GetMetadata(), TraceParent: tp, TraceState: ts,
	})
	if err != nil {
		a.log.Debug("publish failed", "pubsub", in.GetPubsubName(), "topic", in.GetTopic(), "error", err)
		return nil, apierr.GRPC(err)
	}
	return &emptypb.Empty{}, nil
}

// BulkPublishEvent publishes a batch; entries the broker refused are
// listed in the response (the call itself succeeds, as in Dapr).
func (a *API) BulkPublishEvent(ctx context.Context, in *runtimev1.BulkPublishRequest) (*runtimev1.BulkPublishResponse, error) {
	if a.cfg.PubSub == nil {
		return nil, errPubSubUnimplemented
	}
	tp, ts := traceContext(ctx)
	req := api.BulkPublishRequest{
		PubsubName: in.GetPubsubName(), Topic: in.GetTopic(), Metadata: in.GetMetadata(),
		TraceParent: tp, TraceState: ts, Entries: make([]api.BulkPublishEntry, len(in.GetEntries())),
	}
	for i, e := range in.GetEntries() {
		req.Entries[i] = api.BulkPublishEntry{EntryID: e.GetEntryId(), Event: e.GetEvent(), ContentType: e.GetContentType(), Metadata: e.GetMetadata()}
	}
	failed, err := a.cfg.PubSub.BulkPublish(ctx, req)
	if err != nil && len(failed) == 0 {
		return nil, apierr.GRPC(err)
	}
	out := &runtimev1.BulkPublishResponse{}
	for _, f := range failed {
		out.FailedEntries = append(out.FailedEntries, &runtimev1.BulkPublishResponseFailedEntry{EntryId: f.EntryID, Error: f.Error})
	}
	return out, nil
}

// BulkPublishEventAlpha1 is BulkPublishEvent under its alpha name.
func (a *API) BulkPublishEventAlpha1(ctx context.Context, in *runtimev1.BulkPublishRequest) (*runtimev1.BulkPublishResponse, error) {
	return a.BulkPublishEvent(ctx, in)
}
