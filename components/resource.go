package components

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

// API versions and kinds of the resources found in --resources-path folders.
const (
	APIVersionV1Alpha1 = "dapr.io/v1alpha1"
	APIVersionV2Alpha1 = "dapr.io/v2alpha1"

	KindComponent     = "Component"
	KindSubscription  = "Subscription"
	KindResiliency    = "Resiliency"
	KindConfiguration = "Configuration"
	KindHTTPEndpoint  = "HTTPEndpoint"
)

// DefaultInitTimeout is how long one Init attempt may take when
// spec.initTimeout is unset (Dapr's default).
const DefaultInitTimeout = 5 * time.Second

// Component is one Component resource as written in its file. Metadata
// values are not resolved yet; see Env.Resolve.
type Component struct {
	APIVersion string
	Name       string
	Namespace  string
	// SecretStore is auth.secretStore: the secret store component that
	// resolves secretKeyRef entries.
	SecretStore string
	// Type is spec.type, e.g. "state.redis".
	Type string
	// Version is spec.version as written ("v1"; may be empty).
	Version string
	// InitTimeout is spec.initTimeout, DefaultInitTimeout when unset.
	InitTimeout time.Duration
	// IgnoreErrors is spec.ignoreErrors. Without it, a component that
	// cannot work as written stops the sidecar (ManagerOptions.Fatal), as
	// in daprd; one whose server is down is retried either way.
	IgnoreErrors bool
	Metadata     []MetadataItem
	// Scopes lists the app IDs allowed to load the component; empty means
	// every app.
	Scopes []string

	// Source is the file the component came from and Line its line there.
	Source string
	Line   int
}

// MetadataItem is one entry of spec.metadata.
type MetadataItem struct {
	Name string
	// Value is the value as text: a YAML scalar as written, a mapping or
	// list as compact JSON (Dapr accepts JSON objects as values).
	Value string
	// HasValue tells an empty value from an absent one (envRef applies
	// only when there is no value, as in Dapr).
	HasValue bool
	// SecretKeyRef, when set, names a secret in the auth.secretStore store.
	SecretKeyRef *SecretKeyRef
	// EnvRef names an environment variable of the sidecar.
	EnvRef string
}

// SecretKeyRef points at one key of one secret. An empty Key means the key
// named like the secret (Dapr's rule).
type SecretKeyRef struct {
	Name string
	Key  string
}

// Category is the part of spec.type before the first dot: "state",
// "pubsub", "secretstores", "bindings", ...
func (c Component) Category() string {
	cat, _, _ := strings.Cut(c.Type, ".")
	return cat
}

// LogName is how daprd names the component in its logs and errors:
// "name (type/version)".
func (c Component) LogName() string {
	return fmt.Sprintf("%s (%s/%s)", c.Name, c.Type, c.Version)
}

// InScope reports whether appID may load the component.
func (c Component) InScope(appID string) bool {
	return inScope(c.Scopes, appID)
}

// Same reports whether two components are the same resource with the same
// settings, wherever they were read from. A changed component is
// re-initialised; an unchanged one is left alone.
func (c Component) Same(o Component) bool {
	return c.APIVersion == o.APIVersion && c.Name == o.Name && c.Namespace == o.Namespace &&
		c.SecretStore == o.SecretStore && c.Type == o.Type && c.Version == o.Version &&
		c.InitTimeout == o.InitTimeout && c.IgnoreErrors == o.IgnoreErrors &&
		slices.Equal(c.Scopes, o.Scopes) && slices.EqualFunc(c.Metadata, o.Metadata, MetadataItem.same)
}

func (m MetadataItem) same(o MetadataItem) bool {
	if (m.SecretKeyRef == nil) != (o.SecretKeyRef == nil) {
		return false
	}
	if m.SecretKeyRef != nil && *m.SecretKeyRef != *o.SecretKeyRef {
		return false
	}
	return m.Name == o.Name && m.Value == o.Value && m.HasValue == o.HasValue && m.EnvRef == o.EnvRef
}

// Same reports whether two subscriptions are the same resource with the
// same settings, wherever they were read from.
func (s Subscription) Same(o Subscription) bool {
	s.Source, s.Line, o.Source, o.Line = "", 0, "", 0
	return reflect.DeepEqual(s, o)
}

// InDaprdOrder returns next's subscriptions in the order daprd lists them
// after a reload: those unchanged since prev first, in their previous
// order, then the changed and new ones in load order (daprd removes a
// changed subscription and adds it again).
func InDaprdOrder(prev, next []Subscription) []Subscription {
	byName := make(map[string]Subscription, len(next))
	for _, s := range next {
		byName[s.Name] = s
	}
	out := make([]Subscription, 0, len(next))
	kept := map[string]bool{}
	for _, p := range prev {
		if n, ok := byName[p.Name]; ok && !kept[p.Name] && n.Same(p) {
			out = append(out, n)
			kept[p.Name] = true
		}
	}
	for _, n := range next {
		if !kept[n.Name] {
			out = append(out, n)
		}
	}
	return out
}

// Subscription is a declarative Subscription resource. Both
// dapr.io/v2alpha1 and the older dapr.io/v1alpha1 (spec.route) are read
// into this shape; for v1alpha1, Routes.Default holds spec.route.
type Subscription struct {
	APIVersion      string
	Name            string
	Namespace       string
	PubsubName      string
	Topic           string
	Routes          Routes
	DeadLetterTopic string
	BulkSubscribe   BulkSubscribe
	Metadata        map[string]string
	Scopes          []string

	Source string
	Line   int
}

// Routes are the routing rules of a subscription. Rules are tried in order;
// the first whose CEL Match is true wins, else Default.
type Routes struct {
	Rules   []Rule
	Default string
}

// Rule is one routing rule.
type Rule struct {
	Match string
	Path  string
}

// BulkSubscribe is spec.bulkSubscribe.
type BulkSubscribe struct {
	Enabled            bool
	MaxMessagesCount   int32
	MaxAwaitDurationMs int32
}

// Document is any other resource (Resiliency, Configuration, HTTPEndpoint,
// or a kind this package does not know), handed out raw for the package
// that owns that kind to parse.
type Document struct {
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	Scopes     []string
	// Raw is the document alone, as YAML.
	Raw []byte

	Source string
	Line   int
}

func inScope(scopes []string, appID string) bool {
	return len(scopes) == 0 || slices.Contains(scopes, appID)
}
