package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is dapr.io/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: "dapr.io", Version: "v1alpha1"}

// AddToScheme registers this version's kinds and lists in s.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&Component{}, &ComponentList{},
		&Configuration{}, &ConfigurationList{},
		&Resiliency{}, &ResiliencyList{},
		&Subscription{}, &SubscriptionList{},
		&HTTPEndpoint{}, &HTTPEndpointList{},
		&MCPServer{}, &MCPServerList{},
		&WorkflowAccessPolicy{}, &WorkflowAccessPolicyList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
