package client

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Kind is a kind of resource the operator serves.
type Kind string

// The kinds a sidecar reads from the operator.
const (
	Components     Kind = "Component"
	Subscriptions  Kind = "Subscription"
	Resiliencies   Kind = "Resiliency"
	HTTPEndpoints  Kind = "HTTPEndpoint"
	MCPServers     Kind = "MCPServer"
	Configurations Kind = "Configuration"
)

// apiVersion is the version each kind is sent in (the operator converts
// Subscriptions to v2alpha1).
func (k Kind) apiVersion() string {
	if k == Subscriptions {
		return "dapr.io/v2alpha1"
	}
	return "dapr.io/v1alpha1"
}

// Resource is one resource the operator sent.
type Resource struct {
	Kind      Kind
	Name      string
	Namespace string
	// JSON is the resource in the shape of a resource file: kind and
	// apiVersion filled in when the operator left them out (it sends what
	// its Kubernetes client read, where they are often empty), and the
	// empty values Kubernetes' JSON encoding writes for unset fields
	// (null, a secretKeyRef with no name) removed.
	JSON []byte
}

// EventType is what happened to a resource.
type EventType int

// Event types, as the operator's ResourceEventType.
const (
	Created EventType = iota + 1
	Updated
	Deleted
)

func (t EventType) String() string {
	switch t {
	case Created:
		return "CREATED"
	case Updated:
		return "UPDATED"
	case Deleted:
		return "DELETED"
	}
	return "UNKNOWN"
}

// Event is one change streamed by the operator.
type Event struct {
	Type     EventType
	Resource Resource
}

// decode turns the operator's JSON for one resource of kind into a
// Resource.
func decode(kind Kind, raw []byte) (Resource, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // numbers stay as written
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return Resource{}, fmt.Errorf("%s from the operator is not a JSON object: %w", kind, err)
	}
	if doc == nil {
		return Resource{}, fmt.Errorf("%s from the operator is empty", kind)
	}
	if s, _ := doc["kind"].(string); s == "" {
		doc["kind"] = string(kind)
	}
	if s, _ := doc["apiVersion"].(string); s == "" {
		doc["apiVersion"] = kind.apiVersion()
	}
	prune(doc)
	md, _ := doc["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	ns, _ := md["namespace"].(string)
	out, err := json.Marshal(doc)
	if err != nil {
		return Resource{}, fmt.Errorf("%s %q: %w", kind, name, err)
	}
	return Resource{Kind: kind, Name: name, Namespace: ns, JSON: out}, nil
}

// prune removes, recursively, null values and secretKeyRef objects without
// a name: Kubernetes' JSON encoding writes them for unset fields, and a
// resource file would not have them.
func prune(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if x == nil {
				delete(v, k)
				continue
			}
			if ref, ok := x.(map[string]any); ok && k == "secretKeyRef" {
				if n, _ := ref["name"].(string); n == "" {
					delete(v, k)
					continue
				}
			}
			prune(x)
		}
	case []any:
		for _, x := range v {
			prune(x)
		}
	}
}
