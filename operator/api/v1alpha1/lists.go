package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ComponentList is a list of Components.
type ComponentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Component `json:"items"`
}

// ConfigurationList is a list of Configurations.
type ConfigurationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Configuration `json:"items"`
}

// ResiliencyList is a list of Resiliencies.
type ResiliencyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Resiliency `json:"items"`
}

// SubscriptionList is a list of v1alpha1 Subscriptions.
type SubscriptionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Subscription `json:"items"`
}

// HTTPEndpointList is a list of HTTPEndpoints.
type HTTPEndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HTTPEndpoint `json:"items"`
}

// copyItems deep-copies a list's items with copyOne.
func copyItems[T any](in []T, copyOne func(*T) *T) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i := range in {
		out[i] = *copyOne(&in[i])
	}
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *ComponentList) DeepCopyObject() runtime.Object {
	return &ComponentList{TypeMeta: l.TypeMeta, ListMeta: *l.ListMeta.DeepCopy(), Items: copyItems(l.Items, (*Component).DeepCopy)}
}

// DeepCopyObject implements runtime.Object.
func (l *ConfigurationList) DeepCopyObject() runtime.Object {
	return &ConfigurationList{TypeMeta: l.TypeMeta, ListMeta: *l.ListMeta.DeepCopy(), Items: copyItems(l.Items, (*Configuration).DeepCopy)}
}

// DeepCopyObject implements runtime.Object.
func (l *ResiliencyList) DeepCopyObject() runtime.Object {
	return &ResiliencyList{TypeMeta: l.TypeMeta, ListMeta: *l.ListMeta.DeepCopy(), Items: copyItems(l.Items, (*Resiliency).DeepCopy)}
}

// DeepCopyObject implements runtime.Object.
func (l *SubscriptionList) DeepCopyObject() runtime.Object {
	return &SubscriptionList{TypeMeta: l.TypeMeta, ListMeta: *l.ListMeta.DeepCopy(), Items: copyItems(l.Items, (*Subscription).DeepCopy)}
}

// DeepCopyObject implements runtime.Object.
func (l *HTTPEndpointList) DeepCopyObject() runtime.Object {
	return &HTTPEndpointList{TypeMeta: l.TypeMeta, ListMeta: *l.ListMeta.DeepCopy(), Items: copyItems(l.Items, (*HTTPEndpoint).DeepCopy)}
}
