package builtin

import (
	"context"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
)

func TestStores(t *testing.T) {
	stores := Stores(nil)
	for _, typ := range []string{"state.in-memory", "state.sqlite", "state.redis", "state.postgresql", "state.mysql", "state.etcd"} {
		newStore, ok := stores[typ]
		if !ok {
			t.Errorf("%s is not registered", typ)
			continue
		}
		a, b := newStore(), newStore()
		if a == b {
			t.Errorf("%s: constructor returned the same store twice", typ)
		}
		if !state.HasFeature(a.Features(), state.FeatureETag) {
			t.Errorf("%s: features %v lack ETAG", typ, a.Features())
		}
	}
	if want := 6 + len(tagged(nil)); len(stores) != want {
		t.Errorf("%d stores, want %d", len(stores), want)
	}
}

func TestInitErrorsNameTheComponent(t *testing.T) {
	for typ, newStore := range Stores(nil) {
		if _, test := tagged(nil)[typ]; typ == "state.in-memory" || test {
			continue // no metadata to get wrong
		}
		err := newStore().Init(context.Background(), components.Metadata{Name: "mystore", Type: typ})
		if err == nil {
			t.Errorf("%s: Init without metadata succeeded", typ)
			continue
		}
		if got := err.Error(); !contains(got, `"mystore"`) {
			t.Errorf("%s: error %q does not name the component", typ, got)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
