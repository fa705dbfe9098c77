package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tandemrun/tandem/operator/api/v1alpha1"
)

// The kinds whose spec the operator passes on as stored still hold secret
// references it resolves: an MCPServer's headers or environment, and a
// Configuration's exporter headers. Their specs are edited as JSON maps so
// that every field the operator does not know reaches the sidecar
// unchanged.

// decodeObject reads a JSON object, numbers kept as written.
func decodeObject(b []byte) (map[string]any, error) {
	out := map[string]any{}
	if len(bytes.TrimSpace(b)) == 0 {
		return out, nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// object returns m[key] if it is a JSON object.
func object(m map[string]any, key string) (map[string]any, bool) {
	o, ok := m[key].(map[string]any)
	return o, ok
}

// secretRef returns the secretKeyRef of a name/value pair, if it names a
// secret.
func secretRef(pair map[string]any) (v1alpha1.SecretKeyRef, bool) {
	ref, ok := object(pair, "secretKeyRef")
	if !ok {
		return v1alpha1.SecretKeyRef{}, false
	}
	name, _ := ref["name"].(string)
	key, _ := ref["key"].(string)
	return v1alpha1.SecretKeyRef{Name: name, Key: key}, name != ""
}

// resolveMCPServer fills the secret values of m's endpoint in place (m must
// be a copy): the headers of a streamable HTTP or SSE endpoint whose
// auth.secretStore is empty or "kubernetes", or the environment of a stdio
// one. As in Dapr's operator, a value is sent as a JSON string holding the
// base64 of the secret's bytes, which the sidecar decodes.
func resolveMCPServer(ctx context.Context, r client.Reader, m *v1alpha1.MCPServer) error {
	spec, err := decodeObject(m.Spec)
	if err != nil {
		return fmt.Errorf("MCPServer %s/%s: spec: %w", m.Namespace, m.Name, err)
	}
	endpoint, _ := object(spec, "endpoint")
	var pairs []any
	var field string
	for _, t := range []struct{ transport, list, desc string }{
		{"streamableHTTP", "headers", "streamableHTTP header"},
		{"sse", "headers", "sse header"},
		{"stdio", "env", "stdio env"},
	} {
		tr, ok := object(endpoint, t.transport)
		if !ok {
			continue
		}
		if auth, ok := object(tr, "auth"); ok {
			if store, _ := auth["secretStore"].(string); store != "" && store != kubernetesSecretStore {
				return nil // the sidecar resolves them from that store
			}
		}
		pairs, _ = tr[t.list].([]any)
		field = t.desc
		break
	}
	s := newSecretResolver(r, m.Namespace)
	changed := false
	for _, p := range pairs {
		pair, ok := p.(map[string]any)
		if !ok {
			continue
		}
		ref, ok := secretRef(pair)
		if !ok {
			continue
		}
		v, found, err := s.value(ctx, ref)
		if err != nil {
			return fmt.Errorf("error resolving %s secret for MCPServer %q: %w", field, m.Name, err)
		}
		if found {
			pair["value"] = json.RawMessage(v)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("MCPServer %s/%s: %w", m.Namespace, m.Name, err)
	}
	m.Spec = b
	return nil
}

// resolveConfiguration fills the secret values of c's OpenTelemetry
// exporter headers in place (c must be a copy). As in Dapr's operator the
// key must be given, a missing key is an error, and the value is sent as
// the secret's text.
func resolveConfiguration(ctx context.Context, r client.Reader, c *v1alpha1.Configuration) error {
	spec, err := decodeObject(c.Spec)
	if err != nil {
		return fmt.Errorf("configuration %s/%s: spec: %w", c.Namespace, c.Name, err)
	}
	tracing, _ := object(spec, "tracing")
	otel, _ := object(tracing, "otel")
	headers, _ := otel["headers"].([]any)
	s := newSecretResolver(r, c.Namespace)
	changed := false
	for _, h := range headers {
		pair, ok := h.(map[string]any)
		if !ok {
			continue
		}
		ref, ok := secretRef(pair)
		if !ok {
			continue
		}
		name, _ := pair["name"].(string)
		if ref.Key == "" {
			return fmt.Errorf("secret key is required for header %s", name)
		}
		sec, err := s.secret(ctx, ref.Name)
		if err != nil {
			return fmt.Errorf("failed to get secret %s for header %s: %w", ref.Name, name, err)
		}
		val, ok := sec.Data[ref.Key]
		if !ok {
			return fmt.Errorf("key %s not found in secret %s", ref.Key, ref.Name)
		}
		pair["value"] = string(val)
		changed = true
	}
	if !changed {
		return nil
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("configuration %s/%s: %w", c.Namespace, c.Name, err)
	}
	c.Spec = b
	return nil
}
