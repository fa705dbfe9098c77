package localfile

import (
	"reflect"
	"testing"
)

// FuzzParse checks the secrets file parser on any document and separator:
// it is deterministic; single-valued, every secret is {name: value}; and a
// document that parses single-valued also parses multi-valued, each secret
// of which is the same flattening one level down (name+sep+key, or the
// name alone for a top-level value; an empty name adds no prefix).
func FuzzParse(f *testing.F) {
	for _, c := range layoutCases {
		f.Add(c.json, c.props["nestedSeparator"])
	}
	for _, c := range initErrorCases {
		f.Add(c.json, ":")
	}
	f.Fuzz(func(t *testing.T, data, sep string) {
		if sep == "" {
			sep = ":"
		}
		single, err := parse([]byte(data), sep, false)
		again, err2 := parse([]byte(data), sep, false)
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(single, again) {
			t.Fatalf("two parses differ: %v / %v", err, err2)
		}
		if err != nil {
			return
		}
		for name, secret := range single {
			if _, ok := secret[name]; !ok || len(secret) != 1 {
				t.Fatalf("secret %q is %q, want one value under its own name", name, secret)
			}
		}
		multi, err := parse([]byte(data), sep, true)
		if err != nil {
			t.Fatalf("parses single-valued but not multi-valued: %v", err)
		}
		values := 0
		for name, secret := range multi {
			for key, v := range secret {
				has := func(k string) bool { s, ok := single[k]; return ok && s[k] == v }
				nested := name + sep + key
				if name == "" { // an empty name adds no prefix
					nested = key
				}
				if !has(nested) && (key != name || !has(name)) {
					t.Fatalf("multi-valued %q/%q = %q has no single-valued counterpart", name, key, v)
				}
				values++
			}
		}
		if values != len(single) {
			t.Fatalf("multi-valued holds %d values, single-valued %d", values, len(single))
		}
	})
}
