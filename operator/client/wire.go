package client

import (
	"context"
	"fmt"
	"strings"

	operatorv1 "github.com/dapr/dapr/pkg/proto/operator/v1"
	"google.golang.org/grpc/status"
)

// list makes one List call for kind and returns the raw resources.
func (c *Client) list(ctx context.Context, kind Kind) ([][]byte, error) {
	ns := c.cfg.Namespace
	switch kind {
	case Components:
		resp, err := c.op.ListComponents(ctx, &operatorv1.ListComponentsRequest{Namespace: ns})
		return resp.GetComponents(), err
	case Subscriptions:
		resp, err := c.op.ListSubscriptionsV2(ctx, &operatorv1.ListSubscriptionsRequest{Namespace: ns})
		// An old operator fails to encode an empty list this way; daprd
		// takes it as no subscriptions.
		if s, ok := status.FromError(err); ok && err != nil && strings.HasSuffix(s.Message(), "Marshal called with nil") {
			return nil, nil
		}
		return resp.GetSubscriptions(), err
	case Resiliencies:
		resp, err := c.op.ListResiliency(ctx, &operatorv1.ListResiliencyRequest{Namespace: ns})
		return resp.GetResiliencies(), err
	case HTTPEndpoints:
		resp, err := c.op.ListHTTPEndpoints(ctx, &operatorv1.ListHTTPEndpointsRequest{Namespace: ns})
		return resp.GetHttpEndpoints(), err
	case MCPServers:
		resp, err := c.op.ListMCPServers(ctx, &operatorv1.ListMCPServersRequest{Namespace: ns})
		return resp.GetMcpServers(), err
	}
	return nil, fmt.Errorf("operator client: %s cannot be listed", kind)
}

// recvFunc receives the next raw event of an open stream.
type recvFunc func() (raw []byte, typ operatorv1.ResourceEventType, err error)

// open opens the update stream of kind.
func (c *Client) open(ctx context.Context, kind Kind) (recvFunc, error) {
	ns := c.cfg.Namespace
	switch kind {
	case Components:
		s, err := c.op.ComponentUpdate(ctx, &operatorv1.ComponentUpdateRequest{Namespace: ns})
		if err != nil {
			return nil, err
		}
		return func() ([]byte, operatorv1.ResourceEventType, error) {
			ev, err := s.Recv()
			return ev.GetComponent(), ev.GetType(), err
		}, nil
	case Subscriptions:
		s, err := c.op.SubscriptionUpdate(ctx, &operatorv1.SubscriptionUpdateRequest{Namespace: ns})
		if err != nil {
			return nil, err
		}
		return func() ([]byte, operatorv1.ResourceEventType, error) {
			ev, err := s.Recv()
			return ev.GetSubscription(), ev.GetType(), err
		}, nil
	case Resiliencies:
		s, err := c.op.ResiliencyUpdate(ctx, &operatorv1.ResiliencyUpdateRequest{Namespace: ns})
		if err != nil {
			return nil, err
		}
		return func() ([]byte, operatorv1.ResourceEventType, error) {
			ev, err := s.Recv()
			return ev.GetResiliency(), ev.GetType(), err
		}, nil
	case HTTPEndpoints:
		s, err := c.op.HTTPEndpointUpdate(ctx, &operatorv1.HTTPEndpointUpdateRequest{Namespace: ns})
		if err != nil {
			return nil, err
		}
		return func() ([]byte, operatorv1.ResourceEventType, error) {
			ev, err := s.Recv()
			return ev.GetHttpEndpoints(), ev.GetType(), err
		}, nil
	case MCPServers:
		s, err := c.op.MCPServerUpdate(ctx, &operatorv1.MCPServerUpdateRequest{Namespace: ns})
		if err != nil {
			return nil, err
		}
		return func() ([]byte, operatorv1.ResourceEventType, error) {
			ev, err := s.Recv()
			return ev.GetMcpServer(), ev.GetType(), err
		}, nil
	case Configurations:
		s, err := c.op.ConfigurationUpdate(ctx, &operatorv1.ConfigurationUpdateRequest{Namespace: ns})
		if err != nil {
			return nil, err
		}
		return func() ([]byte, operatorv1.ResourceEventType, error) {
			ev, err := s.Recv()
			return ev.GetConfiguration(), ev.GetType(), err
		}, nil
	}
	return nil, fmt.Errorf("operator client: %s has no update stream", kind)
}

func eventType(t operatorv1.ResourceEventType) EventType {
	switch t {
	case operatorv1.ResourceEventType_CREATED:
		return Created
	case operatorv1.ResourceEventType_UPDATED:
		return Updated
	case operatorv1.ResourceEventType_DELETED:
		return Deleted
	}
	return 0
}
