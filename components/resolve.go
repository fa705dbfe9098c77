package components

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// SecretFunc reads one key of one secret from the secret store component
// named store. It is how secretKeyRef entries are resolved; the secret
// stores package provides one over its registry.
type SecretFunc func(ctx context.Context, store, name, key string) (string, error)

// Env is what resolving a component's metadata needs from the sidecar.
type Env struct {
	AppID     string
	Namespace string
	// PodName fills {podName}; a component that uses {podName} fails to
	// resolve without it (as in Dapr).
	PodName string
	// Getenv reads envRef variables; nil means no variables.
	Getenv func(string) string
	// Secret resolves secretKeyRef entries; nil makes them an error.
	Secret SecretFunc
	// DefaultSecretStore is used for secretKeyRef when auth.secretStore is
	// empty: "kubernetes" in Kubernetes mode, "" (an error) in self-hosted
	// mode, as in Dapr.
	DefaultSecretStore string
	// Prefilled names the secret store whose secretKeyRef values the
	// resource already holds: in Kubernetes mode the operator reads the
	// Secrets for store "kubernetes" and sends each value base64-encoded in
	// the item's value, which is decoded instead of asking the store, as
	// daprd does.
	Prefilled string
	// NewUUID fills each {uuid}; nil uses random version 4 UUIDs.
	NewUUID func() string
}

// Resolve turns a component's spec.metadata into the Metadata its Init
// receives: envRef entries without a value read the environment (Dapr's
// deny list applies: APP_API_TOKEN and DAPR_* are never read),
// secretKeyRef entries read auth.secretStore, then the templates {uuid},
// {podName}, {namespace} (namespace.appID, as Dapr writes it) and {appID}
// are filled in.
//
// Errors name the file, component and field, never a secret value. A
// configuration error (no secret store named, {podName} without a pod
// name) is marked Permanent; a secret store that is not ready yet is not.
func (e Env) Resolve(ctx context.Context, c Component) (Metadata, error) {
	md := Metadata{Name: c.Name, Type: c.Type, Version: c.Version, AppID: e.AppID, Namespace: e.Namespace,
		Properties: make(map[string]string, len(c.Metadata))}
	fail := func(i int, it MetadataItem, sub string, err error) error {
		return &ResourceError{File: c.Source, Line: c.Line, Kind: KindComponent, Name: c.Name,
			Field: fmt.Sprintf("spec.metadata[%d] (%s)%s", i, it.Name, sub), Err: err}
	}
	for i, it := range c.Metadata {
		val, sub, err := e.value(ctx, c.SecretStore, it)
		if err != nil {
			return Metadata{}, fail(i, it, sub, err)
		}
		if it.SecretKeyRef != nil {
			if md.SecretRefs == nil {
				md.SecretRefs = map[string]string{}
			}
			md.SecretRefs[it.Name] = it.SecretKeyRef.Name
		}
		v, err := e.expand(val)
		if err != nil {
			return Metadata{}, Permanent(fail(i, it, "", err))
		}
		md.Properties[it.Name] = v
	}
	return md, nil
}

// value resolves one item's value: an envRef without a value reads the
// environment (Dapr's deny list applies: APP_API_TOKEN and DAPR_* are
// never read), a secretKeyRef reads store (or DefaultSecretStore). sub
// names the part of the item at fault.
func (e Env) value(ctx context.Context, store string, it MetadataItem) (val, sub string, err error) {
	switch {
	case !it.HasValue && it.EnvRef != "":
		if !envAllowed(it.EnvRef) {
			return "", ".envRef", Permanent(fmt.Errorf("variable %q may not be read by components (APP_API_TOKEN and DAPR_* are reserved)", it.EnvRef))
		}
		if e.Getenv != nil {
			return e.Getenv(it.EnvRef), "", nil
		}
		return "", "", nil
	case it.SecretKeyRef != nil:
		v, err := e.secret(ctx, store, *it.SecretKeyRef, it.Value, it.HasValue)
		return v, ".secretKeyRef", err
	}
	return it.Value, "", nil
}

// secret reads one secretKeyRef from store (or DefaultSecretStore), or
// decodes the value the operator filled in (value, has) when that store is
// Prefilled. A missing store is Permanent; a failing read is not (the
// store may not be ready yet).
func (e Env) secret(ctx context.Context, store string, ref SecretKeyRef, value string, has bool) (string, error) {
	if store == "" {
		store = e.DefaultSecretStore
	}
	if store != "" && store == e.Prefilled {
		return prefilled(store, ref, value, has)
	}
	if store == "" {
		return "", Permanent(errors.New("no secret store to read it from; add auth.secretStore: <name of a secret store component> to the resource"))
	}
	if e.Secret == nil {
		return "", Permanent(errors.New("secret references are not available in this sidecar"))
	}
	key := ref.Key
	if key == "" {
		key = ref.Name
	}
	v, err := e.Secret(ctx, store, ref.Name, key)
	if err != nil {
		return "", fmt.Errorf("secret %q key %q from secret store %q: %w", ref.Name, key, store, err)
	}
	return v, nil
}

// prefilled decodes a secret value the operator sent (base64).
func prefilled(store string, ref SecretKeyRef, value string, has bool) (string, error) {
	key := ref.Key
	if key == "" {
		key = ref.Name
	}
	if !has {
		return "", Permanent(fmt.Errorf("secret %q key %q from secret store %q: the operator sent no value; check that the Secret exists in the namespace and has that key", ref.Name, key, store))
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	if err != nil {
		return "", Permanent(fmt.Errorf("secret %q key %q from secret store %q: the operator's value is not base64: %w", ref.Name, key, store, err))
	}
	return string(b), nil
}

// expand fills the templates of one value.
func (e Env) expand(val string) (string, error) {
	if !strings.Contains(val, "{") {
		return val, nil
	}
	for strings.Contains(val, "{uuid}") {
		val = strings.Replace(val, "{uuid}", e.uuid(), 1)
	}
	if strings.Contains(val, "{podName}") {
		if e.PodName == "" {
			return "", errors.New("uses {podName} but the pod name is unknown; set the POD_NAME environment variable of the sidecar")
		}
		val = strings.ReplaceAll(val, "{podName}", e.PodName)
	}
	val = strings.ReplaceAll(val, "{namespace}", e.Namespace+"."+e.AppID)
	val = strings.ReplaceAll(val, "{appID}", e.AppID)
	return val, nil
}

func (e Env) uuid() string {
	if e.NewUUID != nil {
		return e.NewUUID()
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// envAllowed is Dapr's deny list for envRef.
func envAllowed(name string) bool {
	up := strings.ToUpper(name)
	return up != "" && up != "APP_API_TOKEN" && !strings.HasPrefix(up, "DAPR_") && !strings.Contains(up, " ")
}
