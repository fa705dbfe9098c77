package builtin_test

import (
	"context"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub/builtin"
)

func TestFactories(t *testing.T) {
	f := builtin.Factories(nil)
	for _, typ := range []string{"pubsub.in-memory", "pubsub.redis", "pubsub.jetstream", "pubsub.kafka", "pubsub.rabbitmq", "pubsub.mqtt3", "pubsub.sqlite"} {
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
	if len(f) != 7 {
		t.Errorf("%d factories, want 7", len(f))
	}
}

func TestKind(t *testing.T) {
	k := builtin.Kind(nil)
	if k.Category != "pubsub" || len(k.Types) != 7 {
		t.Fatalf("Kind = %q with types %v", k.Category, k.Types)
	}
	if _, ok := k.New("pubsub.pulsar"); ok {
		t.Error("New accepted an unknown type")
	}
	ps, ok := k.New("pubsub.in-memory")
	if !ok {
		t.Fatal("New(pubsub.in-memory) failed")
	}
	if err := k.Init(context.Background(), ps, components.Metadata{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	if caps := k.Capabilities(ps); len(caps) != 1 || caps[0] != "SUBSCRIBE_WILDCARDS" { // daprd's in-memory capabilities
		t.Errorf("Capabilities = %v", caps)
	}
	// Bad metadata is permanent: the manager must not retry it forever.
	bad, _ := k.New("pubsub.redis")
	err := k.Init(context.Background(), bad, components.Metadata{Name: "r"})
	if err == nil || !components.IsPermanent(err) {
		t.Errorf("Init with no consumerID = %v, want a permanent error", err)
	}
	if err := k.Close(ps); err != nil {
		t.Error(err)
	}
}
