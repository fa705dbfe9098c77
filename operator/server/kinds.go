package server

import (
	"context"
	"encoding/json"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tandemrun/tandem/operator/api/v1alpha1"
	"github.com/tandemrun/tandem/operator/api/v2alpha1"
)

// kind is one resource type the operator serves.
type kind struct {
	name   string
	object func() client.Object
	list   func() client.ObjectList
	items  func(client.ObjectList) []client.Object
	// prepare returns the copy of obj a sidecar receives, secrets resolved.
	// Its kind and apiVersion are left as the cache has them, as Dapr's
	// operator leaves them: set on what is listed or read, empty on what a
	// watch event brought (the API client's decoder clears them).
	prepare func(ctx context.Context, secrets client.Reader, obj client.Object) (client.Object, error)
	// optional kinds are new in Dapr 1.18: a cluster whose CRDs predate
	// them still gets an operator, which serves them as empty.
	optional bool
}

// scoped is what every served resource implements.
type scoped interface {
	client.Object
	AppliesTo(appID string) bool
}

func itemsOf[T any, PT interface {
	*T
	client.Object
}](items []T) []client.Object {
	out := make([]client.Object, len(items))
	for i := range items {
		out[i] = PT(&items[i])
	}
	return out
}

var (
	components = kind{
		name:   "components",
		object: func() client.Object { return &v1alpha1.Component{} },
		list:   func() client.ObjectList { return &v1alpha1.ComponentList{} },
		items:  func(l client.ObjectList) []client.Object { return itemsOf(l.(*v1alpha1.ComponentList).Items) },
		prepare: func(ctx context.Context, secrets client.Reader, obj client.Object) (client.Object, error) {
			c := obj.(*v1alpha1.Component).DeepCopy()
			return c, resolveComponent(ctx, secrets, c)
		},
	}
	configurations = kind{
		name:   "configurations",
		object: func() client.Object { return &v1alpha1.Configuration{} },
		list:   func() client.ObjectList { return &v1alpha1.ConfigurationList{} },
		items:  func(l client.ObjectList) []client.Object { return itemsOf(l.(*v1alpha1.ConfigurationList).Items) },
		prepare: func(ctx context.Context, secrets client.Reader, obj client.Object) (client.Object, error) {
			c := obj.(*v1alpha1.Configuration).DeepCopy()
			return c, resolveConfiguration(ctx, secrets, c)
		},
	}
	resiliencies = kind{
		name:    "resiliencies",
		object:  func() client.Object { return &v1alpha1.Resiliency{} },
		list:    func() client.ObjectList { return &v1alpha1.ResiliencyList{} },
		items:   func(l client.ObjectList) []client.Object { return itemsOf(l.(*v1alpha1.ResiliencyList).Items) },
		prepare: asStored,
	}
	subscriptions = kind{
		name:   "subscriptions",
		object: func() client.Object { return &v2alpha1.Subscription{} },
		list:   func() client.ObjectList { return &v2alpha1.SubscriptionList{} },
		items:  func(l client.ObjectList) []client.Object { return itemsOf(l.(*v2alpha1.SubscriptionList).Items) },
		prepare: func(_ context.Context, _ client.Reader, obj client.Object) (client.Object, error) {
			s := obj.(*v2alpha1.Subscription).DeepCopy()
			s.Normalize()
			return s, nil
		},
	}
	httpEndpoints = kind{
		name:   "httpendpoints",
		object: func() client.Object { return &v1alpha1.HTTPEndpoint{} },
		list:   func() client.ObjectList { return &v1alpha1.HTTPEndpointList{} },
		items:  func(l client.ObjectList) []client.Object { return itemsOf(l.(*v1alpha1.HTTPEndpointList).Items) },
		prepare: func(ctx context.Context, secrets client.Reader, obj client.Object) (client.Object, error) {
			h := obj.(*v1alpha1.HTTPEndpoint).DeepCopy()
			return h, resolveHTTPEndpoint(ctx, secrets, h)
		},
	}
	mcpServers = kind{
		name:   "mcpservers",
		object: func() client.Object { return &v1alpha1.MCPServer{} },
		list:   func() client.ObjectList { return &v1alpha1.MCPServerList{} },
		items:  func(l client.ObjectList) []client.Object { return itemsOf(l.(*v1alpha1.MCPServerList).Items) },
		prepare: func(ctx context.Context, secrets client.Reader, obj client.Object) (client.Object, error) {
			m := obj.(*v1alpha1.MCPServer).DeepCopy()
			return m, resolveMCPServer(ctx, secrets, m)
		},
		optional: true,
	}
	workflowAccessPolicies = kind{
		name:   "workflowaccesspolicies",
		object: func() client.Object { return &v1alpha1.WorkflowAccessPolicy{} },
		list:   func() client.ObjectList { return &v1alpha1.WorkflowAccessPolicyList{} },
		items: func(l client.ObjectList) []client.Object {
			return itemsOf(l.(*v1alpha1.WorkflowAccessPolicyList).Items)
		},
		prepare:  asStored,
		optional: true,
	}
	allKinds = []*kind{&components, &configurations, &resiliencies, &subscriptions, &httpEndpoints, &mcpServers, &workflowAccessPolicies}
)

// asStored is the prepare of kinds that reach the sidecar as the cache has
// them.
func asStored(_ context.Context, _ client.Reader, obj client.Object) (client.Object, error) {
	return obj, nil
}

// appliesTo reports whether obj is for the app.
func appliesTo(obj client.Object, appID string) bool {
	s, ok := obj.(scoped)
	return ok && s.AppliesTo(appID)
}

// encode prepares obj for a sidecar and marshals it.
func (k *kind) encode(ctx context.Context, secrets client.Reader, obj client.Object) ([]byte, error) {
	out, err := k.prepare(ctx, secrets, obj)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(out)
	if ts := out.GetCreationTimestamp(); err == nil && ts.IsZero() {
		b, err = nullCreationTimestamp(b)
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s %s/%s: %w", k.name, obj.GetNamespace(), obj.GetName(), err)
	}
	return b, nil
}

// nullCreationTimestamp writes an unset metadata.creationTimestamp as null,
// as Dapr's operator does: it is built with a Kubernetes API library
// (apimachinery v0.33) whose ObjectMeta writes the zero time as null, where
// ours (v0.37) leaves it out. Dapr's suite compares the JSON.
func nullCreationTimestamp(b []byte) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, err
	}
	meta := map[string]json.RawMessage{}
	if m, ok := top["metadata"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, err
		}
	}
	meta["creationTimestamp"] = json.RawMessage("null")
	m, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	top["metadata"] = m
	return json.Marshal(top)
}
