// Package conf reads typed values out of a name resolver's
// spec.nameResolution.configuration map, the way Dapr decodes component
// metadata: durations as Go duration strings or whole seconds, booleans and
// numbers also as strings. Errors name the key so the user can fix it.
package conf

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Map is a decoded configuration map. Keys are matched case-insensitively,
// like Dapr's metadata decoder.
type Map map[string]any

// lookup returns the first of keys present (aliases allowed).
func (m Map) lookup(keys ...string) (string, any, bool) {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return k, v, true
		}
		for mk, v := range m {
			if strings.EqualFold(mk, k) {
				return mk, v, true
			}
		}
	}
	return "", nil, false
}

// Has reports whether any of keys is set.
func (m Map) Has(keys ...string) bool {
	_, _, ok := m.lookup(keys...)
	return ok
}

// Raw returns the value under the first of keys present.
func (m Map) Raw(keys ...string) (any, bool) {
	_, v, ok := m.lookup(keys...)
	return v, ok
}

// String returns a string value, def when absent.
func (m Map) String(def string, keys ...string) (string, error) {
	k, v, ok := m.lookup(keys...)
	if !ok || v == nil {
		return def, nil
	}
	switch t := v.(type) {
	case string:
		return t, nil
	case fmt.Stringer:
		return t.String(), nil
	case int, int64, float64, bool:
		return fmt.Sprint(t), nil
	}
	return "", fmt.Errorf("configuration %q: want a string, got %T", k, v)
}

// Bool returns a boolean value ("true", "1", true...), def when absent.
func (m Map) Bool(def bool, keys ...string) (bool, error) {
	k, v, ok := m.lookup(keys...)
	if !ok || v == nil {
		return def, nil
	}
	switch t := v.(type) {
	case bool:
		return t, nil
	case string:
		if t == "" {
			return def, nil
		}
		b, err := strconv.ParseBool(t)
		if err != nil {
			return false, fmt.Errorf("configuration %q: want true or false, got %q", k, t)
		}
		return b, nil
	}
	return false, fmt.Errorf("configuration %q: want a boolean, got %T", k, v)
}

// Duration returns a duration: a Go duration string ("5s", "1m30s") or a
// number of seconds (5, "5"), def when absent or empty.
func (m Map) Duration(def time.Duration, keys ...string) (time.Duration, error) {
	k, v, ok := m.lookup(keys...)
	if !ok || v == nil {
		return def, nil
	}
	bad := func() error {
		return fmt.Errorf("configuration %q: want a duration like \"5s\" or a number of seconds, got %v", k, v)
	}
	switch t := v.(type) {
	case time.Duration:
		return t, nil
	case int:
		return time.Duration(t) * time.Second, nil
	case int64:
		return time.Duration(t) * time.Second, nil
	case uint64:
		return time.Duration(t) * time.Second, nil
	case float64:
		return time.Duration(t * float64(time.Second)), nil
	case string:
		s := strings.TrimSpace(t)
		if s == "" {
			return def, nil
		}
		if d, err := time.ParseDuration(s); err == nil {
			return d, nil
		}
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return time.Duration(n * float64(time.Second)), nil
		}
		return 0, bad()
	}
	return 0, bad()
}
