package components

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Parse reads the resources of one file (any number of YAML documents).
// source names the file in errors. Resources scoped away from appID are
// left out. Problems are collected in Set.Errors, never returned as the
// only result: a broken document does not hide the good ones beside it,
// but a file with broken YAML loads nothing.
func Parse(data []byte, source, appID string) *Set {
	s := &Set{}
	docs, err := splitDocuments(data)
	if err != nil {
		s.Errors = append(s.Errors, &ResourceError{File: source, Err: fmt.Errorf("invalid YAML: %w; fix the syntax (nothing in this file was loaded)", err)})
		return s
	}
	for _, root := range docs {
		s.addDocument(root, source, appID)
	}
	return s
}

// splitDocuments decodes every non-empty document of data.
func splitDocuments(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		root := &doc
		if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
			root = root.Content[0]
		}
		if root.Kind == 0 || root.Kind == yaml.DocumentNode || (root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
			continue // empty document, e.g. after a trailing "---"
		}
		out = append(out, root)
	}
}

type rawMeta struct {
	Name      string `yaml:"name"`
	Namespace string `yaml:"namespace"`
}

type rawHeader struct {
	APIVersion string    `yaml:"apiVersion"`
	Kind       string    `yaml:"kind"`
	Metadata   rawMeta   `yaml:"metadata"`
	Scopes     []string  `yaml:"scopes"`
	Spec       yaml.Node `yaml:"spec"`
}

func (s *Set) addDocument(root *yaml.Node, source, appID string) {
	if root.Kind != yaml.MappingNode {
		s.Errors = append(s.Errors, &ResourceError{File: source, Line: root.Line, Kind: "document",
			Err: errors.New("a resource must be a YAML mapping with apiVersion, kind, metadata and spec")})
		return
	}
	dedupeKeys(root)
	canonicalKeys(root, headerKeys)
	var h rawHeader
	if err := root.Decode(&h); err != nil {
		s.Errors = append(s.Errors, &ResourceError{File: source, Line: root.Line, Kind: "document",
			Name: safeName(root), Err: typeErr(err)})
		return
	}
	rerr := func(field string, err error) *ResourceError {
		kind := h.Kind
		if kind == "" {
			kind = "document"
		}
		return &ResourceError{File: source, Line: root.Line, Kind: kind, Name: h.Metadata.Name, Field: field, Err: err}
	}
	switch {
	case h.Kind == KindComponent:
		if !inScope(h.Scopes, appID) {
			return
		}
		c, errs := parseComponent(root, h, source)
		s.Errors = append(s.Errors, errs...)
		if len(errs) == 0 {
			s.Components = append(s.Components, c)
		}
	case h.Kind == KindSubscription:
		if !inScope(h.Scopes, appID) {
			return
		}
		sub, errs := parseSubscription(root, h, source)
		s.Errors = append(s.Errors, errs...)
		if len(errs) == 0 {
			s.Subscriptions = append(s.Subscriptions, sub)
		}
	case h.Kind == KindHTTPEndpoint && strings.HasPrefix(h.APIVersion, "dapr.io/"):
		if !inScope(h.Scopes, appID) {
			return
		}
		e, errs := parseHTTPEndpoint(root, h, source)
		s.Errors = append(s.Errors, errs...)
		if len(errs) == 0 {
			s.HTTPEndpoints = append(s.HTTPEndpoints, e)
		}
	case h.Kind == "" && h.APIVersion == "":
		if h.Spec.Kind != 0 {
			s.Errors = append(s.Errors, rerr("kind", errors.New("missing; add kind: Component (or Subscription, Resiliency, ...) and apiVersion: dapr.io/v1alpha1")))
		}
		// Anything else without kind or apiVersion is not ours: ignore it.
	case h.Kind == "":
		s.Errors = append(s.Errors, rerr("kind", errors.New("missing; add kind: Component (or Subscription, Resiliency, ...)")))
	case !strings.HasPrefix(h.APIVersion, "dapr.io/"):
		// A Kubernetes manifest (Deployment, Secret, ...) living in the same
		// folder; Dapr ignores those too.
	default:
		if h.Metadata.Name == "" && h.Kind != KindConfiguration {
			s.Errors = append(s.Errors, rerr("metadata.name", errors.New("missing; give the resource a name")))
			return
		}
		if !inScope(h.Scopes, appID) {
			return
		}
		raw, err := marshalNode(root)
		if err != nil {
			s.Errors = append(s.Errors, rerr("", err))
			return
		}
		s.Documents = append(s.Documents, Document{APIVersion: h.APIVersion, Kind: h.Kind, Name: h.Metadata.Name,
			Namespace: h.Metadata.Namespace, Scopes: h.Scopes, Raw: raw, Source: source, Line: root.Line})
	}
}

// safeName returns metadata.name if it can be read as text.
func safeName(root *yaml.Node) string {
	m := mapValue(root, "metadata")
	if m == nil {
		return ""
	}
	if n := mapValue(m, "name"); n != nil && n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func marshalNode(n *yaml.Node) (raw []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot re-encode the document: %v", r)
		}
	}()
	return yaml.Marshal(n)
}

type rawComponent struct {
	Auth struct {
		SecretStore string `yaml:"secretStore"`
	} `yaml:"auth"`
	Spec struct {
		Type         string    `yaml:"type"`
		Version      string    `yaml:"version"`
		InitTimeout  string    `yaml:"initTimeout"`
		IgnoreErrors bool      `yaml:"ignoreErrors"`
		Metadata     []rawItem `yaml:"metadata"`
	} `yaml:"spec"`
}

type rawItem struct {
	Name         string           `yaml:"name"`
	Value        yaml.Node        `yaml:"value"`
	SecretKeyRef *rawSecretKeyRef `yaml:"secretKeyRef"`
	EnvRef       string           `yaml:"envRef"`
}

// rawSecretKeyRef is a secretKeyRef as written in a resource: Component
// metadata, HTTPEndpoint headers and TLS documents.
type rawSecretKeyRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

func parseComponent(root *yaml.Node, h rawHeader, source string) (Component, []*ResourceError) {
	var errs []*ResourceError
	add := func(field string, err error) {
		errs = append(errs, &ResourceError{File: source, Line: root.Line, Kind: KindComponent, Name: h.Metadata.Name, Field: field, Err: err})
	}
	canonicalKeys(mapValue(root, "spec"), componentSpecKeys)
	var r rawComponent
	if err := root.Decode(&r); err != nil {
		add("", typeErr(err))
		return Component{}, errs
	}
	c := Component{
		APIVersion:   h.APIVersion,
		Name:         h.Metadata.Name,
		Namespace:    h.Metadata.Namespace,
		SecretStore:  strings.TrimSpace(r.Auth.SecretStore),
		Type:         strings.TrimSpace(r.Spec.Type),
		Version:      strings.TrimSpace(r.Spec.Version),
		InitTimeout:  DefaultInitTimeout,
		IgnoreErrors: r.Spec.IgnoreErrors,
		Scopes:       h.Scopes,
		Source:       source,
		Line:         root.Line,
	}
	switch h.APIVersion {
	case APIVersionV1Alpha1:
	case "":
		add("apiVersion", fmt.Errorf("missing; add apiVersion: %s", APIVersionV1Alpha1))
	default:
		add("apiVersion", fmt.Errorf("%q is not supported for a Component; use %s", h.APIVersion, APIVersionV1Alpha1))
	}
	if err := checkName(c.Name); err != nil {
		add("metadata.name", err)
	}
	switch {
	case c.Type == "":
		msg := "missing; set it to the component type, e.g. state.redis"
		if g := guessType(c.Name, r.Spec.Metadata); g != "" {
			msg = "missing; it looks like " + g
		}
		add("spec.type", errors.New(msg))
	case !strings.Contains(c.Type, ".") || strings.HasPrefix(c.Type, ".") || strings.HasSuffix(c.Type, ".") || strings.ContainsAny(c.Type, " \t/"):
		add("spec.type", fmt.Errorf("%q is not a component type; types look like state.redis or pubsub.jetstream", c.Type))
	}
	if t := strings.TrimSpace(r.Spec.InitTimeout); t != "" {
		d, err := time.ParseDuration(t)
		switch {
		case err != nil:
			add("spec.initTimeout", fmt.Errorf("%q is not a duration; write it like 5s or 1m", t))
		case d <= 0:
			add("spec.initTimeout", fmt.Errorf("%q must be positive", t))
		default:
			c.InitTimeout = d
		}
	}
	for i, it := range r.Spec.Metadata {
		field := fmt.Sprintf("spec.metadata[%d]", i)
		if it.Name == "" {
			add(field+".name", errors.New("missing; every metadata entry needs a name"))
			continue
		}
		// A name written twice: the last entry wins, as in Dapr.
		field = fmt.Sprintf("spec.metadata[%d] (%s)", i, it.Name)
		item := MetadataItem{Name: it.Name, EnvRef: strings.TrimSpace(it.EnvRef)}
		v, has, err := valueText(&it.Value)
		if err != nil {
			add(field+".value", err)
			continue
		}
		item.Value, item.HasValue = v, has
		// An empty secretKeyRef ({"name":"","key":""}, as Go clients
		// serialise Dapr's struct) is no reference, as in Dapr.
		if ref := it.SecretKeyRef; ref != nil && (ref.Name != "" || ref.Key != "") {
			if ref.Name == "" {
				add(field+".secretKeyRef.name", errors.New("missing; name the secret to read"))
				continue
			}
			item.SecretKeyRef = &SecretKeyRef{Name: ref.Name, Key: ref.Key}
		}
		c.Metadata = append(c.Metadata, item)
	}
	return c, errs
}

// checkName rejects names that cannot be one segment of an API path, with
// daprd's rule (Kubernetes' IsValidPathSegmentName): not "." or "..", no
// '/' or '%'. Spaces, '?' and '#' are fine: callers escape them in URLs.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("missing; give the component a name (the apps use it in API calls)")
	case name == "." || name == "..":
		return fmt.Errorf("%q cannot be a component name (it is a path segment in URLs)", name)
	case strings.ContainsAny(name, "/%"):
		return fmt.Errorf("%q cannot contain '/' or '%%' (it is a path segment in URLs)", name)
	case strings.Contains(name, "||"):
		return fmt.Errorf("%q cannot contain \"||\" (it separates key parts)", name)
	}
	return nil
}

// valueText turns a metadata value into text: scalars as written, mappings
// and lists as compact JSON (Dapr's DynamicValue), null as absent.
func valueText(n *yaml.Node) (string, bool, error) {
	for range 8 {
		if n.Kind != yaml.AliasNode || n.Alias == nil {
			break
		}
		n = n.Alias
	}
	switch n.Kind {
	case 0:
		return "", false, nil
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "", false, nil
		}
		return n.Value, true, nil
	case yaml.MappingNode, yaml.SequenceNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return "", false, fmt.Errorf("%w; write the value as text or a JSON-compatible object", err)
		}
		j, err := toJSON(v, 0)
		if err != nil {
			return "", false, fmt.Errorf("%w; write the value as text or a JSON-compatible object", err)
		}
		b, err := json.Marshal(j)
		if err != nil {
			return "", false, fmt.Errorf("%w; write the value as text or a JSON-compatible object", err)
		}
		return string(b), true, nil
	}
	return "", false, errors.New("unsupported value; write it as text")
}

// toJSON converts what yaml.v3 decodes into values encoding/json accepts.
func toJSON(v any, depth int) (any, error) {
	if depth > 100 {
		return nil, errors.New("value nested too deeply")
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := toJSON(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := toJSON(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = c
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := toJSON(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%v is not a JSON number", x)
		}
		return x, nil
	case string, bool, nil, int, int64, uint64:
		return x, nil
	default:
		return fmt.Sprint(x), nil
	}
}

// guessType suggests a spec.type from well-known metadata names, for the
// "spec.type: missing" message. Empty when unsure.
func guessType(name string, items []rawItem) string {
	keys := map[string]string{}
	for _, it := range items {
		v, _, _ := valueText(&it.Value)
		keys[strings.ToLower(it.Name)] = strings.ToLower(v)
	}
	has := func(k string) bool { _, ok := keys[k]; return ok }
	lname := strings.ToLower(name)
	pubsubish := strings.Contains(lname, "pub") || strings.Contains(lname, "broker") || strings.Contains(lname, "queue") ||
		has("consumerid") || has("maxlenapprox") || has("concurrency")
	cs := keys["connectionstring"]
	switch {
	case has("secretsfile"):
		return "secretstores.local.file"
	case has("natsurl") || has("jwt") && has("seedkey"):
		return "pubsub.jetstream"
	case strings.HasPrefix(keys["host"], "amqp") || strings.HasPrefix(cs, "amqp"):
		return "pubsub.rabbitmq"
	case strings.HasPrefix(keys["url"], "tcp://") || strings.HasPrefix(keys["url"], "mqtt") || strings.HasPrefix(keys["url"], "ssl://"):
		return "pubsub.mqtt3"
	case has("redishost"):
		if pubsubish {
			return "pubsub.redis"
		}
		return "state.redis"
	case strings.Contains(cs, "postgres") || strings.Contains(cs, "host=") && strings.Contains(cs, "dbname="):
		return "state.postgresql"
	case strings.HasSuffix(cs, ".db") || strings.HasPrefix(cs, "file:"):
		return "state.sqlite"
	}
	return ""
}

// typeErr flattens yaml.v3's multi-line "unmarshal errors" message.
func typeErr(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n")
	lines := strings.Split(msg, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return fmt.Errorf("%s; fix the field's type", strings.Join(lines, "; "))
}
