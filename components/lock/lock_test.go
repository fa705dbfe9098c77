package lock

import (
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

func TestKeyOf(t *testing.T) {
	for _, c := range []struct {
		prefix, appID, want string
	}{
		{"", "app", "lock||app||r"},
		{"appid", "app", "lock||app||r"},
		{"appid", "", "lock||r"},
		{"name", "app", "lock||store||r"},
		{"none", "app", "lock||r"},
		{"custom", "app", "lock||custom||r"},
	} {
		p, err := PrefixOf(components.Metadata{Name: "store", Properties: map[string]string{"keyPrefix": c.prefix}})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := p.KeyOf("r", "store", c.appID); err != nil || got != c.want {
			t.Errorf("keyPrefix %q, app %q: %q, %v; want %q", c.prefix, c.appID, got, err, c.want)
		}
	}
	if _, err := Prefix("appid").KeyOf("a||b", "s", "app"); err == nil {
		t.Error("a resource ID with || was accepted")
	}
	if _, err := PrefixOf(components.Metadata{Name: "s", Properties: map[string]string{"keyPrefix": "a||b"}}); err == nil {
		t.Error("a keyPrefix with || was accepted")
	}
}

// FuzzPrefixOf: see metadatafuzz.Run.
func FuzzPrefixOf(f *testing.F) {
	seeds := []map[string]string{{"keyPrefix": "appid"}, {"keyPrefix": "name"}, {"keyPrefix": "a||b"}}
	metadatafuzz.Run(f, "fuzzed", []string{"keyPrefix"}, seeds, func(p map[string]string) (Prefix, error) {
		return PrefixOf(components.Metadata{Name: "fuzzed", Properties: p})
	}, nil)
}
