// Package components loads Dapr Component resources (apiVersion
// dapr.io/v1alpha1, kind Component) from resource folders, resolves their
// metadata (value, secretKeyRef, envRef), initialises them in the background
// with retries, and swaps them on hot reload.
//
// It knows nothing of the kinds: components/state, components/pubsub and
// components/secretstores define their interfaces and backends, and import
// this package only for Metadata, Kind and Registry.
//
// Typical use, in cmd only:
//
//	set, err := components.Load(opts.ResourcesPaths, opts.AppID) // err: log each, keep going
//	env := components.Env{AppID: id, Namespace: ns, PodName: pod, Getenv: os.Getenv}
//	secrets := components.NewManager(secretbuiltin.Kind(), components.ManagerOptions{Resolve: env.Resolve, Log: log})
//	env.Secret = secretstores.Resolver(secrets.Registry())
//	states := components.NewManager(stateKind, components.ManagerOptions{Resolve: env.Resolve, Log: log}) // see FactoryFromMap
//	secrets.Apply(set.Components); states.Apply(set.Components)
//	for ch := range components.Watch(ctx, opts.ResourcesPaths, id, time.Second, set) {
//		secrets.Apply(ch.Set.Components); states.Apply(ch.Set.Components)
//	}
//
// The API layer calls Registry.Ready or Acquire per request, and answers
// ErrNotFound / ErrNotReady with the kind's Dapr error code.
package components

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Metadata is what a component's Init receives: its name and its resolved
// spec.metadata properties (secrets and env references already replaced).
type Metadata struct {
	// Name is metadata.name of the Component resource.
	Name string
	// Type is spec.type, e.g. "state.redis".
	Type string
	// Version is spec.version, e.g. "v1".
	Version string
	// Properties are spec.metadata as name -> value.
	Properties map[string]string
	// SecretRefs name the secret each property read through secretKeyRef
	// (property name -> secretKeyRef.name); state encryption records the
	// key's name with every value.
	SecretRefs map[string]string
	// AppID and Namespace are the sidecar's, for key prefixes and consumer
	// groups.
	AppID     string
	Namespace string
}

// Get returns a property by name, case-insensitively (Dapr's metadata names
// are matched without regard to case).
func (m Metadata) Get(name string) (string, bool) {
	if v, ok := m.Properties[name]; ok {
		return v, true
	}
	for k, v := range m.Properties {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// String returns a property or def when it is missing or empty.
func (m Metadata) String(name, def string) string {
	if v, ok := m.Get(name); ok && v != "" {
		return v
	}
	return def
}

// Int returns an integer property or def; a malformed value is an error
// naming the component and the property.
func (m Metadata) Int(name string, def int) (int, error) {
	v, ok := m.Get(name)
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("component %q: metadata %q: %q is not an integer", m.Name, name, v)
	}
	return n, nil
}

// Bool returns a boolean property or def.
func (m Metadata) Bool(name string, def bool) (bool, error) {
	v, ok := m.Get(name)
	if !ok || v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return false, fmt.Errorf("component %q: metadata %q: %q is not true or false", m.Name, name, v)
	}
	return b, nil
}

// Duration returns a duration property or def. Like Dapr it accepts Go
// durations ("5s") and bare integers, which are taken as seconds.
func (m Metadata) Duration(name string, def time.Duration) (time.Duration, error) {
	v, ok := m.Get(name)
	if !ok || v == "" {
		return def, nil
	}
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("component %q: metadata %q: %q is not a duration like 5s", m.Name, name, v)
	}
	return d, nil
}
