package builtin_test

import (
	"testing"

	"github.com/tandemrun/tandem/components/pubsub/builtin"
)

func TestFactories(t *testing.T) {
	f := builtin.Factories(nil)
	for _, typ := range []string{"pubsub.in-memory", "pubsub.redis", "pubsub.jetstream", "pubsub.rabbitmq", "pubsub.mqtt3"} {
		t.Run(typ, func(t *testing.T) {
			newPS, ok := f[typ]
			if !ok {
				t.Fatalf("%s missing", typ)
			}
			a, b := newPS(), newPS()
			if a == nil || a == b {
				t.Fatalf("factory must return a new broker each call")
			}
			// Uninitialised brokers close cleanly (the loader may give up
			// before Init succeeds).
			if err := a.Close(); err != nil {
				t.Errorf("Close before Init: %v", err)
			}
		})
	}
	if len(f) != 5 {
		t.Errorf("%d factories, want 5", len(f))
	}
}
