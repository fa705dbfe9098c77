package server

import (
	"context"
	"fmt"

	operatorv1 "github.com/dapr/dapr/pkg/proto/operator/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Dapr's annotations read to find the Configuration an app uses.
const (
	annotationEnabled = "dapr.io/enabled"
	annotationAppID   = "dapr.io/app-id"
	annotationConfig  = "dapr.io/config"
)

// streamUpdates sends the changes of k in namespace that concern the
// calling app until the stream ends. keep, if set, further limits which
// resources are sent.
func (s *Server) streamUpdates(ctx context.Context, k *kind, namespace string, keep func(client.Object) bool,
	send func(b []byte, typ operatorv1.ResourceEventType) error,
) error {
	app, err := caller(ctx, namespace)
	if err != nil {
		return err
	}
	sub, cancel := s.hub.subscribe(k.name, namespace, app.AppID)
	defer cancel()
	s.log.Debug("sidecar connected for updates", "kind", k.name, "namespace", namespace, "app_id", app.AppID)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.ch:
			if !ok {
				return status.Errorf(codes.Unavailable, "the %s update stream of app %s fell behind; reconnect and list again", k.name, app.AppID)
			}
			if keep != nil && !keep(ev.obj) {
				continue
			}
			b, err := k.encode(ctx, s.api, ev.obj)
			if err != nil {
				s.log.Warn("cannot send resource update", "kind", k.name, "namespace", namespace, "name", ev.obj.GetName(), "app_id", app.AppID, "error", err)
				continue
			}
			if err := send(b, ev.typ); err != nil {
				return err
			}
			s.sent(k.name)
		}
	}
}

// ComponentUpdate implements operatorv1.OperatorServer.
func (s *Server) ComponentUpdate(in *operatorv1.ComponentUpdateRequest, srv operatorv1.Operator_ComponentUpdateServer) error {
	return s.streamUpdates(srv.Context(), &components, in.GetNamespace(), nil, func(b []byte, t operatorv1.ResourceEventType) error {
		return srv.Send(&operatorv1.ComponentUpdateEvent{Component: b, Type: t})
	})
}

// SubscriptionUpdate implements operatorv1.OperatorServer.
func (s *Server) SubscriptionUpdate(in *operatorv1.SubscriptionUpdateRequest, srv operatorv1.Operator_SubscriptionUpdateServer) error {
	return s.streamUpdates(srv.Context(), &subscriptions, in.GetNamespace(), nil, func(b []byte, t operatorv1.ResourceEventType) error {
		return srv.Send(&operatorv1.SubscriptionUpdateEvent{Subscription: b, Type: t})
	})
}

// HTTPEndpointUpdate implements operatorv1.OperatorServer.
func (s *Server) HTTPEndpointUpdate(in *operatorv1.HTTPEndpointUpdateRequest, srv operatorv1.Operator_HTTPEndpointUpdateServer) error {
	return s.streamUpdates(srv.Context(), &httpEndpoints, in.GetNamespace(), nil, func(b []byte, t operatorv1.ResourceEventType) error {
		return srv.Send(&operatorv1.HTTPEndpointUpdateEvent{HttpEndpoints: b, Type: t})
	})
}

// MCPServerUpdate implements operatorv1.OperatorServer.
func (s *Server) MCPServerUpdate(in *operatorv1.MCPServerUpdateRequest, srv operatorv1.Operator_MCPServerUpdateServer) error {
	return s.streamUpdates(srv.Context(), &mcpServers, in.GetNamespace(), nil, func(b []byte, t operatorv1.ResourceEventType) error {
		return srv.Send(&operatorv1.MCPServerUpdateEvent{McpServer: b, Type: t})
	})
}

// WorkflowAccessPolicyUpdate implements operatorv1.OperatorServer.
func (s *Server) WorkflowAccessPolicyUpdate(in *operatorv1.WorkflowAccessPolicyUpdateRequest, srv operatorv1.Operator_WorkflowAccessPolicyUpdateServer) error {
	return s.streamUpdates(srv.Context(), &workflowAccessPolicies, in.GetNamespace(), nil, func(b []byte, t operatorv1.ResourceEventType) error {
		return srv.Send(&operatorv1.WorkflowAccessPolicyUpdateEvent{Policy: b, Type: t})
	})
}

// ResiliencyUpdate implements operatorv1.OperatorServer.
func (s *Server) ResiliencyUpdate(in *operatorv1.ResiliencyUpdateRequest, srv operatorv1.Operator_ResiliencyUpdateServer) error {
	return s.streamUpdates(srv.Context(), &resiliencies, in.GetNamespace(), nil, func(b []byte, t operatorv1.ResourceEventType) error {
		return srv.Send(&operatorv1.ResiliencyUpdateEvent{Resiliency: b, Type: t})
	})
}

// ConfigurationUpdate implements operatorv1.OperatorServer: only the
// Configuration the app's pods name in dapr.io/config is streamed.
func (s *Server) ConfigurationUpdate(in *operatorv1.ConfigurationUpdateRequest, srv operatorv1.Operator_ConfigurationUpdateServer) error {
	ctx := srv.Context()
	app, err := caller(ctx, in.GetNamespace())
	if err != nil {
		return err
	}
	assigned, err := s.assignedConfiguration(ctx, in.GetNamespace(), app.AppID)
	if err != nil {
		return status.Errorf(codes.Internal, "failed to resolve assigned configuration for app %s in namespace %s: %v", app.AppID, in.GetNamespace(), err)
	}
	keep := func(obj client.Object) bool { return assigned != "" && obj.GetName() == assigned }
	return s.streamUpdates(ctx, &configurations, in.GetNamespace(), keep, func(b []byte, t operatorv1.ResourceEventType) error {
		return srv.Send(&operatorv1.ConfigurationUpdateEvent{Configuration: b, Type: t})
	})
}

// assignedConfiguration is the dapr.io/config of the app's pods in
// namespace ("" if none names one).
func (s *Server) assignedConfiguration(ctx context.Context, namespace, appID string) (string, error) {
	var pods metav1.PartialObjectMetadataList
	pods.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "PodList"})
	// Listed across the cluster and selected by namespace, as Dapr's
	// operator lists them (its pod cache is cluster-wide): the same pods,
	// and an API server that serves only the cluster-wide list answers too.
	if err := s.api.List(ctx, &pods, client.MatchingFields{"metadata.namespace": namespace}); err != nil {
		return "", fmt.Errorf("list pods: %w", err)
	}
	for _, p := range pods.Items {
		if p.GetNamespace() != namespace {
			continue
		}
		a := p.GetAnnotations()
		id := a[annotationAppID]
		if id == "" {
			id = p.GetName()
		}
		if a[annotationEnabled] == "true" && id == appID && a[annotationConfig] != "" {
			return a[annotationConfig], nil
		}
	}
	return "", nil
}
