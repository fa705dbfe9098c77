package server

import (
	"context"

	operatorv1 "github.com/dapr/dapr/pkg/proto/operator/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// listFor returns the encoded resources of k in namespace that apply to
// the calling app.
func (s *Server) listFor(ctx context.Context, k *kind, namespace string) ([][]byte, error) {
	app, err := caller(ctx, namespace)
	if err != nil {
		return nil, err
	}
	out := [][]byte{}
	if s.absent[k.name] {
		return out, nil
	}
	list := k.list()
	if err := s.cache.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, status.Errorf(codes.Internal, "error getting %s: %v", k.name, err)
	}
	for _, obj := range k.items(list) {
		if !appliesTo(obj, app.AppID) {
			continue
		}
		b, err := k.encode(ctx, s.api, obj)
		if err != nil {
			s.log.Warn("cannot serve resource", "kind", k.name, "namespace", namespace, "name", obj.GetName(), "app_id", app.AppID, "error", err)
			return nil, status.Errorf(codes.Internal, "error processing %s %s in namespace %s: %v", k.name, obj.GetName(), namespace, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// getFor returns one encoded resource of k by name, if it applies to the
// calling app.
func (s *Server) getFor(ctx context.Context, k *kind, namespace, name string) ([]byte, error) {
	app, err := caller(ctx, namespace)
	if err != nil {
		return nil, err
	}
	obj := k.object()
	if err := s.cache.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, obj); err != nil {
		code := codes.Internal
		if apierrors.IsNotFound(err) {
			code = codes.NotFound
		}
		return nil, status.Errorf(code, "error getting %s %s/%s: %v", k.name, namespace, name, err)
	}
	if !appliesTo(obj, app.AppID) {
		return nil, status.Errorf(codes.NotFound, "%s %s/%s is not scoped to app %s", k.name, namespace, name, app.AppID)
	}
	b, err := k.encode(ctx, s.api, obj)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "error processing %s %s/%s: %v", k.name, namespace, name, err)
	}
	return b, nil
}

// ListComponents implements operatorv1.OperatorServer.
func (s *Server) ListComponents(ctx context.Context, in *operatorv1.ListComponentsRequest) (*operatorv1.ListComponentResponse, error) {
	items, err := s.listFor(ctx, &components, in.GetNamespace())
	if err != nil {
		return nil, err
	}
	return &operatorv1.ListComponentResponse{Components: items}, nil
}

// GetConfiguration implements operatorv1.OperatorServer.
func (s *Server) GetConfiguration(ctx context.Context, in *operatorv1.GetConfigurationRequest) (*operatorv1.GetConfigurationResponse, error) {
	b, err := s.getFor(ctx, &configurations, in.GetNamespace(), in.GetName())
	if err != nil {
		return nil, err
	}
	return &operatorv1.GetConfigurationResponse{Configuration: b}, nil
}

// ListSubscriptions implements operatorv1.OperatorServer. Its request has no
// namespace, so, as with Dapr's operator, it fails the namespace check for
// every caller (PermissionDenied); sidecars use ListSubscriptionsV2.
func (s *Server) ListSubscriptions(ctx context.Context, _ *emptypb.Empty) (*operatorv1.ListSubscriptionsResponse, error) {
	if _, err := caller(ctx, ""); err != nil {
		return nil, err
	}
	return nil, status.Error(codes.Unimplemented, "ListSubscriptions has no namespace: use ListSubscriptionsV2")
}

// ListSubscriptionsV2 implements operatorv1.OperatorServer.
func (s *Server) ListSubscriptionsV2(ctx context.Context, in *operatorv1.ListSubscriptionsRequest) (*operatorv1.ListSubscriptionsResponse, error) {
	items, err := s.listFor(ctx, &subscriptions, in.GetNamespace())
	if err != nil {
		return nil, err
	}
	return &operatorv1.ListSubscriptionsResponse{Subscriptions: items}, nil
}

// GetResiliency implements operatorv1.OperatorServer.
func (s *Server) GetResiliency(ctx context.Context, in *operatorv1.GetResiliencyRequest) (*operatorv1.GetResiliencyResponse, error) {
	b, err := s.getFor(ctx, &resiliencies, in.GetNamespace(), in.GetName())
	if err != nil {
		return nil, err
	}
	return &operatorv1.GetResiliencyResponse{Resiliency: b}, nil
}

// ListResiliency implements operatorv1.OperatorServer.
func (s *Server) ListResiliency(ctx context.Context, in *operatorv1.ListResiliencyRequest) (*operatorv1.ListResiliencyResponse, error) {
	items, err := s.listFor(ctx, &resiliencies, in.GetNamespace())
	if err != nil {
		return nil, err
	}
	return &operatorv1.ListResiliencyResponse{Resiliencies: items}, nil
}

// ListHTTPEndpoints implements operatorv1.OperatorServer.
func (s *Server) ListHTTPEndpoints(ctx context.Context, in *operatorv1.ListHTTPEndpointsRequest) (*operatorv1.ListHTTPEndpointsResponse, error) {
	items, err := s.listFor(ctx, &httpEndpoints, in.GetNamespace())
	if err != nil {
		return nil, err
	}
	return &operatorv1.ListHTTPEndpointsResponse{HttpEndpoints: items}, nil
}

// ListMCPServers implements operatorv1.OperatorServer.
func (s *Server) ListMCPServers(ctx context.Context, in *operatorv1.ListMCPServersRequest) (*operatorv1.ListMCPServersResponse, error) {
	items, err := s.listFor(ctx, &mcpServers, in.GetNamespace())
	if err != nil {
		return nil, err
	}
	return &operatorv1.ListMCPServersResponse{McpServers: items}, nil
}

// ListWorkflowAccessPolicy implements operatorv1.OperatorServer.
func (s *Server) ListWorkflowAccessPolicy(ctx context.Context, in *operatorv1.ListWorkflowAccessPolicyRequest) (*operatorv1.ListWorkflowAccessPolicyResponse, error) {
	items, err := s.listFor(ctx, &workflowAccessPolicies, in.GetNamespace())
	if err != nil {
		return nil, err
	}
	return &operatorv1.ListWorkflowAccessPolicyResponse{Policies: items}, nil
}
