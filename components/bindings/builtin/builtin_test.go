package builtin_test

import (
	"testing"

	"github.com/tandemrun/tandem/components/bindings/builtin"
)

func TestFactories(t *testing.T) {
	f := builtin.Factories(nil)
	for _, typ := range []string{"bindings.cron", "bindings.http", "bindings.localstorage", "bindings.postgresql", "bindings.redis", "bindings.rabbitmq", "bindings.kafka", "bindings.mqtt3", "bindings.wasm"} {
		newB, ok := f[typ]
		if !ok {
			t.Fatalf("%s missing", typ)
		}
		a, b := newB(), newB()
		if a == nil || a == b {
			t.Fatalf("%s: factory must return a new binding each call", typ)
		}
		if err := a.Close(); err != nil {
			t.Errorf("%s: Close before Init: %v", typ, err)
		}
	}
	if k := builtin.Kind(nil); k.Category != "bindings" || len(k.Types) != len(f) {
		t.Errorf("Kind = %q with %v", k.Category, k.Types)
	}
}
