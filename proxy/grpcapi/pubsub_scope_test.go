package grpcapi

import (
	"context"
	"testing"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/codes"

	"github.com/tandemrun/tandem/components"
)

// TestGRPCTopicScopes: PublishEvent, BulkPublishEvent and a topic event
// stream on topics the component's scoping denies fail with
// PermissionDenied.
func TestGRPCTopicScopes(t *testing.T) {
	c := pubsubClient(t,
		components.MetadataItem{Name: "allowedTopics", Value: "orders,audit", HasValue: true},
		components.MetadataItem{Name: "subscriptionScopes", Value: "myapp=orders", HasValue: true})
	ctx := context.Background()
	_, err := c.PublishEvent(ctx, &runtimev1.PublishEventRequest{PubsubName: "ps", Topic: "other", Data: []byte("x")})
	wantCode(t, err, codes.PermissionDenied, "topic other is not allowed for app id myapp")
	_, err = c.BulkPublishEvent(ctx, &runtimev1.BulkPublishRequest{PubsubName: "ps", Topic: "other", Entries: []*runtimev1.BulkPublishRequestEntry{
		{EntryId: "1", Event: []byte("a"), ContentType: "text/plain"},
	}})
	wantCode(t, err, codes.PermissionDenied, "allowedTopics")

	s, err := c.SubscribeTopicEventsAlpha1(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&runtimev1.SubscribeTopicEventsRequestAlpha1{SubscribeTopicEventsRequestType: &runtimev1.SubscribeTopicEventsRequestAlpha1_InitialRequest{
		InitialRequest: &runtimev1.SubscribeTopicEventsRequestInitialAlpha1{PubsubName: "ps", Topic: "audit"},
	}}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Recv()
	wantCode(t, err, codes.PermissionDenied, "subscriptionScopes")
}
