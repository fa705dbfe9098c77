// Package v2alpha1 is the typed Go API of Dapr's dapr.io/v2alpha1
// Subscription: a topic routed to the app's paths by CEL rules. It is the
// version the Subscription CRD stores, so every Subscription, whichever
// version it was written in, is read here.
package v2alpha1

import (
	"maps"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/tandemrun/tandem/operator/api/v1alpha1"
)

// GroupVersion is dapr.io/v2alpha1.
var GroupVersion = schema.GroupVersion{Group: "dapr.io", Version: "v2alpha1"}

// Subscription is a declarative pub/sub subscription.
type Subscription struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              SubscriptionSpec `json:"spec"`
	Scopes            []string         `json:"scopes,omitempty"`
}

// SubscriptionSpec is the topic and where its events go.
type SubscriptionSpec struct {
	Pubsubname string `json:"pubsubname"`
	Topic      string `json:"topic"`
	Routes     Routes `json:"routes"`
	// Route is kept by the CRD when a v1alpha1 Subscription is stored at
	// this version; see Normalize.
	Route           string                 `json:"route,omitempty"`
	Metadata        map[string]string      `json:"metadata,omitempty"`
	DeadLetterTopic string                 `json:"deadLetterTopic,omitempty"`
	BulkSubscribe   v1alpha1.BulkSubscribe `json:"bulkSubscribe"`
}

// Routes are tried in order; Default takes the events no rule matches.
type Routes struct {
	Rules   []Rule `json:"rules,omitempty"`
	Default string `json:"default,omitempty"`
}

// Rule sends the events its CEL expression matches to Path.
type Rule struct {
	Match string `json:"match"`
	Path  string `json:"path"`
}

// Normalize turns a Subscription written as v1alpha1 (spec.route and no
// routes) into its v2alpha1 form (routes.default), which is what Dapr's
// conversion webhook would have stored.
func (s *Subscription) Normalize() {
	if s.Spec.Route != "" && s.Spec.Routes.Default == "" && len(s.Spec.Routes.Rules) == 0 {
		s.Spec.Routes.Default = s.Spec.Route
	}
	s.Spec.Route = ""
}

// AppliesTo reports whether the app may use the subscription.
func (s *Subscription) AppliesTo(appID string) bool {
	return len(s.Scopes) == 0 || slices.Contains(s.Scopes, appID)
}

// DeepCopy returns a copy of s that shares no memory with it.
func (s *Subscription) DeepCopy() *Subscription {
	out := *s
	s.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Scopes = slices.Clone(s.Scopes)
	out.Spec.Routes.Rules = slices.Clone(s.Spec.Routes.Rules)
	out.Spec.Metadata = maps.Clone(s.Spec.Metadata)
	return &out
}

// DeepCopyObject implements runtime.Object.
func (s *Subscription) DeepCopyObject() runtime.Object { return s.DeepCopy() }

// SubscriptionList is a list of Subscriptions.
type SubscriptionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Subscription `json:"items"`
}

// DeepCopyObject implements runtime.Object.
func (l *SubscriptionList) DeepCopyObject() runtime.Object {
	out := &SubscriptionList{TypeMeta: l.TypeMeta, ListMeta: *l.ListMeta.DeepCopy()}
	if l.Items != nil {
		out.Items = make([]Subscription, len(l.Items))
		for i := range l.Items {
			out.Items[i] = *l.Items[i].DeepCopy()
		}
	}
	return out
}

// AddToScheme registers Subscription and SubscriptionList in s.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Subscription{}, &SubscriptionList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
