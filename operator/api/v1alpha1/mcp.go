package v1alpha1

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// MCPServer is a Model Context Protocol server whose tools the sidecar
// offers to workflows (dapr.io/v1alpha1 MCPServer, new in Dapr 1.18). The
// operator reads only the secret references of its endpoint; the rest of
// the spec is passed on as stored.
type MCPServer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RawObject `json:"spec"`
	Scopes            []string  `json:"scopes,omitempty"`
}

// MCPServerList is a list of MCPServers.
type MCPServerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MCPServer `json:"items"`
}

// WorkflowAccessPolicy says which app IDs may schedule, terminate, raise
// events on, or run which workflows and activities of the apps it is
// scoped to (dapr.io/v1alpha1 WorkflowAccessPolicy, new in Dapr 1.18). The
// operator passes its spec on as stored.
type WorkflowAccessPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RawObject `json:"spec"`
	Scopes            []string  `json:"scopes,omitempty"`
}

// WorkflowAccessPolicyList is a list of WorkflowAccessPolicies.
type WorkflowAccessPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WorkflowAccessPolicy `json:"items"`
}

// AppliesTo implements Scoped.
func (m *MCPServer) AppliesTo(appID string) bool { return inScopes(m.Scopes, appID) }

// AppliesTo implements Scoped.
func (w *WorkflowAccessPolicy) AppliesTo(appID string) bool { return inScopes(w.Scopes, appID) }

// DeepCopy returns a copy of m that shares no memory with it.
func (m *MCPServer) DeepCopy() *MCPServer {
	out := *m
	m.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec = m.Spec.DeepCopy()
	out.Scopes = slices.Clone(m.Scopes)
	return &out
}

// DeepCopyObject implements runtime.Object.
func (m *MCPServer) DeepCopyObject() runtime.Object { return m.DeepCopy() }

// DeepCopy returns a copy of w that shares no memory with it.
func (w *WorkflowAccessPolicy) DeepCopy() *WorkflowAccessPolicy {
	out := *w
	w.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec = w.Spec.DeepCopy()
	out.Scopes = slices.Clone(w.Scopes)
	return &out
}

// DeepCopyObject implements runtime.Object.
func (w *WorkflowAccessPolicy) DeepCopyObject() runtime.Object { return w.DeepCopy() }

// DeepCopyObject implements runtime.Object.
func (l *MCPServerList) DeepCopyObject() runtime.Object {
	return &MCPServerList{TypeMeta: l.TypeMeta, ListMeta: *l.ListMeta.DeepCopy(), Items: copyItems(l.Items, (*MCPServer).DeepCopy)}
}

// DeepCopyObject implements runtime.Object.
func (l *WorkflowAccessPolicyList) DeepCopyObject() runtime.Object {
	return &WorkflowAccessPolicyList{TypeMeta: l.TypeMeta, ListMeta: *l.ListMeta.DeepCopy(), Items: copyItems(l.Items, (*WorkflowAccessPolicy).DeepCopy)}
}
