package v1alpha1

import (
	"bytes"
	"encoding/json"
)

// RawJSON is a JSON value kept as its bytes: a metadata value of any JSON
// type, or a part of a resource the operator passes on without reading it.
type RawJSON []byte

// MarshalJSON implements json.Marshaler; an empty RawJSON is null.
func (r RawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

// UnmarshalJSON implements json.Unmarshaler; null is kept as empty.
func (r *RawJSON) UnmarshalJSON(data []byte) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		*r = nil
		return nil
	}
	*r = append((*r)[:0], data...)
	return nil
}

// String returns a JSON string's text, or the JSON itself for other types
// (a number or a boolean as written), the way Dapr reads metadata values.
func (r RawJSON) String() string {
	var s string
	if err := json.Unmarshal(r, &s); err == nil {
		return s
	}
	return string(r)
}

// DeepCopy returns a copy that shares no memory with r.
func (r RawJSON) DeepCopy() RawJSON {
	if r == nil {
		return nil
	}
	return append(RawJSON(nil), r...)
}

// JSONString returns s as a RawJSON string value.
func JSONString(s string) RawJSON {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// SecretKeyRef names a key of a secret in the resource's secret store.
type SecretKeyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// NameValuePair is one metadata item or header: a value, an environment
// variable of the sidecar, or a secret reference. As in Dapr's operator,
// value (null when not given) and secretKeyRef are always written.
type NameValuePair struct {
	Name         string       `json:"name"`
	Value        RawJSON      `json:"value"`
	SecretKeyRef SecretKeyRef `json:"secretKeyRef"`
	EnvRef       string       `json:"envRef,omitempty"`
}

// Auth names the secret store that resolves a resource's secretKeyRefs.
type Auth struct {
	SecretStore string `json:"secretStore"`
}

func copyPairs(in []NameValuePair) []NameValuePair {
	if in == nil {
		return nil
	}
	out := make([]NameValuePair, len(in))
	for i, p := range in {
		out[i] = p
		out[i].Value = p.Value.DeepCopy()
	}
	return out
}

// RawObject is a JSON object kept as its bytes; an empty RawObject is {}.
type RawObject []byte

// MarshalJSON implements json.Marshaler.
func (r RawObject) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("{}"), nil
	}
	return r, nil
}

// UnmarshalJSON implements json.Unmarshaler; null is kept as empty.
func (r *RawObject) UnmarshalJSON(data []byte) error {
	return (*RawJSON)(r).UnmarshalJSON(data)
}

// DeepCopy returns a copy that shares no memory with r.
func (r RawObject) DeepCopy() RawObject { return RawObject(RawJSON(r).DeepCopy()) }
