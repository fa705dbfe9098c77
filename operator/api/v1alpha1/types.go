package v1alpha1

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Component is a building block's backend (dapr.io/v1alpha1 Component).
type Component struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ComponentSpec `json:"spec"`
	Auth              Auth          `json:"auth"`
	Scopes            []string      `json:"scopes,omitempty"`
}

// ComponentSpec is a Component's backend type and metadata. Every field is
// written, empty or not, as Dapr's operator writes it.
type ComponentSpec struct {
	Type         string          `json:"type"`
	Version      string          `json:"version"`
	IgnoreErrors bool            `json:"ignoreErrors"`
	Metadata     []NameValuePair `json:"metadata"`
	InitTimeout  string          `json:"initTimeout"`
}

// Configuration is a sidecar's configuration (dapr.io/v1alpha1
// Configuration). Its spec is passed on as stored; an empty one is written
// as {}, as Dapr's operator writes it.
type Configuration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RawObject `json:"spec"`
}

// Resiliency is a set of retry, timeout and circuit-breaker policies and
// the targets they apply to (dapr.io/v1alpha1 Resiliency).
type Resiliency struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ResiliencySpec `json:"spec"`
	Scopes            []string       `json:"scopes,omitempty"`
}

// ResiliencySpec holds the policies and the targets they apply to
// (resiliency.go).
type ResiliencySpec struct {
	Policies Policies `json:"policies"`
	Targets  Targets  `json:"targets"`
}

// Subscription is a declarative pub/sub subscription with one route
// (dapr.io/v1alpha1 Subscription).
type Subscription struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              SubscriptionSpec `json:"spec"`
	Scopes            []string         `json:"scopes,omitempty"`
}

// SubscriptionSpec is a v1alpha1 Subscription's topic and route.
type SubscriptionSpec struct {
	Pubsubname      string            `json:"pubsubname"`
	Topic           string            `json:"topic"`
	Route           string            `json:"route"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	DeadLetterTopic string            `json:"deadLetterTopic,omitempty"`
	BulkSubscribe   *BulkSubscribe    `json:"bulkSubscribe,omitempty"`
}

// BulkSubscribe turns on delivery of messages in batches.
type BulkSubscribe struct {
	Enabled            bool  `json:"enabled"`
	MaxMessagesCount   int32 `json:"maxMessagesCount,omitempty"`
	MaxAwaitDurationMs int32 `json:"maxAwaitDurationMs,omitempty"`
}

// HTTPEndpoint is a non-Dapr HTTP service the sidecar may invoke by name
// (dapr.io/v1alpha1 HTTPEndpoint).
type HTTPEndpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              HTTPEndpointSpec `json:"spec"`
	Auth              Auth             `json:"auth"`
	Scopes            []string         `json:"scopes,omitempty"`
}

// HTTPEndpointSpec is the endpoint's base URL, headers and client TLS.
type HTTPEndpointSpec struct {
	BaseURL   string          `json:"baseUrl"`
	Headers   []NameValuePair `json:"headers"`
	ClientTLS *ClientTLS      `json:"clientTLS,omitempty"`
}

// ClientTLS is the TLS the sidecar uses towards an HTTPEndpoint; a part
// not given is written as null, as Dapr's operator writes it.
type ClientTLS struct {
	RootCA        *TLSDocument `json:"rootCA"`
	Certificate   *TLSDocument `json:"certificate"`
	PrivateKey    *TLSDocument `json:"privateKey"`
	Renegotiation *string      `json:"renegotiation"`
}

// TLSDocument is a PEM document given inline or read from a secret.
type TLSDocument struct {
	Value        RawJSON       `json:"value,omitempty"`
	SecretKeyRef *SecretKeyRef `json:"secretKeyRef,omitempty"`
}

// Scoped is a resource that may be limited to some app IDs.
type Scoped interface {
	// AppliesTo reports whether the app may load the resource: its scopes
	// are empty or name it.
	AppliesTo(appID string) bool
}

func inScopes(scopes []string, appID string) bool {
	return len(scopes) == 0 || slices.Contains(scopes, appID)
}

// AppliesTo implements Scoped.
func (c *Component) AppliesTo(appID string) bool { return inScopes(c.Scopes, appID) }

// AppliesTo implements Scoped.
func (r *Resiliency) AppliesTo(appID string) bool { return inScopes(r.Scopes, appID) }

// AppliesTo implements Scoped.
func (s *Subscription) AppliesTo(appID string) bool { return inScopes(s.Scopes, appID) }

// AppliesTo implements Scoped.
func (h *HTTPEndpoint) AppliesTo(appID string) bool { return inScopes(h.Scopes, appID) }

// AppliesTo implements Scoped: a Configuration is chosen by name, never by
// scope.
func (c *Configuration) AppliesTo(string) bool { return true }

var (
	_ runtime.Object = (*Component)(nil)
	_ runtime.Object = (*Configuration)(nil)
	_ runtime.Object = (*Resiliency)(nil)
	_ runtime.Object = (*Subscription)(nil)
	_ runtime.Object = (*HTTPEndpoint)(nil)
)
