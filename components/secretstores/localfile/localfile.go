// Package localfile is the secretstores.local.file secret store: secrets
// read once, at Init, from a JSON file (for development, as in Dapr).
//
// Metadata: secretsFile (required) is the JSON file; nestedSeparator
// (default ":") joins the keys of nested objects and list indexes;
// multiValued (default false).
//
// With multiValued false every leaf is its own secret, named by its
// flattened path, holding one key of the same name:
//
//	{"redisPassword": "x", "db": {"user": "u"}}  ->  "redisPassword" {redisPassword: x}, "db:user" {db:user: u}
//
// With multiValued true every top-level key is a secret; a nested object
// becomes that secret's keys, flattened below that level:
//
//	-> "redisPassword" {redisPassword: x}, "db" {user: u}
//
// Numbers keep their JSON text, booleans are "true"/"false" and null is ""
// (Dapr prints those with Go's %s verb, which mangles them).
package localfile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"sync"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
)

// Type is the component type.
const Type = "secretstores.local.file"

// Store is the local file secret store.
type Store struct {
	mu      sync.RWMutex
	secrets map[string]map[string]string
	multi   bool
}

var _ secretstores.SecretStore = (*Store)(nil)

// New returns an uninitialised store.
func New() *Store { return &Store{} }

// Init reads the secrets file.
func (s *Store) Init(_ context.Context, md components.Metadata) error {
	path := md.String("secretsFile", "")
	if path == "" {
		return components.Permanent(fmt.Errorf("component %q: metadata secretsFile is missing; set it to the path of a JSON file", md.Name))
	}
	sep := md.String("nestedSeparator", ":")
	multi, err := md.Bool("multiValued", false)
	if err != nil {
		return components.Permanent(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read secrets file: %w", err)
	}
	secrets, err := parse(data, sep, multi)
	if err != nil {
		return fmt.Errorf("secrets file %s: %w", path, err)
	}
	s.mu.Lock()
	s.secrets, s.multi = secrets, multi
	s.mu.Unlock()
	return nil
}

// parse flattens the JSON document. Errors never quote the file's content.
func parse(data []byte, sep string, multi bool) (map[string]map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("invalid JSON at byte %d; fix the file", se.Offset)
		}
		return nil, errors.New("invalid JSON; fix the file")
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value; the file must hold one object")
	}
	obj, ok := root.(map[string]any)
	if !ok {
		return nil, errors.New("the file must hold a JSON object of secrets")
	}
	out := map[string]map[string]string{}
	if !multi {
		flat := map[string]string{}
		if err := flatten(flat, "", obj, sep); err != nil {
			return nil, err
		}
		for k, v := range flat {
			out[k] = map[string]string{k: v}
		}
		return out, nil
	}
	for name, v := range obj {
		switch v.(type) {
		case map[string]any, []any:
			flat := map[string]string{}
			if err := flatten(flat, "", v, sep); err != nil {
				return nil, fmt.Errorf("secret %q: %w", name, err)
			}
			out[name] = flat
		default:
			out[name] = map[string]string{name: leaf(v)}
		}
	}
	return out, nil
}

func flatten(out map[string]string, prefix string, v any, sep string) error {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + sep + k
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if err := flatten(out, join(k), e, sep); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := flatten(out, join(strconv.Itoa(i)), e, sep); err != nil {
				return err
			}
		}
	default:
		if _, dup := out[prefix]; dup {
			return fmt.Errorf("key %q appears twice once nested keys are joined with %q; rename one", prefix, sep)
		}
		out[prefix] = leaf(x)
	}
	return nil
}

func leaf(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// GetSecret returns one secret.
func (s *Store) GetSecret(_ context.Context, req secretstores.GetRequest) (map[string]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.secrets[req.Name]
	if !ok {
		return nil, secretstores.NotFound(req.Name)
	}
	return maps.Clone(v), nil
}

// BulkGetSecret returns every secret.
func (s *Store) BulkGetSecret(_ context.Context, _ secretstores.BulkGetRequest) (map[string]map[string]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]map[string]string, len(s.secrets))
	for k, v := range s.secrets {
		out[k] = maps.Clone(v)
	}
	return out, nil
}

// Features reports MULTIPLE_KEY_VALUES_PER_SECRET when multiValued is on.
func (s *Store) Features() []secretstores.Feature {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.multi {
		return []secretstores.Feature{secretstores.FeatureMultipleKeyValuesPerSecret}
	}
	return []secretstores.Feature{}
}

// Close forgets the secrets.
func (s *Store) Close() error {
	s.mu.Lock()
	s.secrets = nil
	s.mu.Unlock()
	return nil
}
