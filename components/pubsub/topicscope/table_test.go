package topicscope

import (
	"context"
	"errors"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
)

// strictBroker records its Init metadata and, like a broker that
// validates its metadata, refuses names it does not know.
type strictBroker struct {
	pubsub.PubSub
	got    map[string]string
	closed bool
	down   bool
}

func (b *strictBroker) Init(_ context.Context, md components.Metadata) error {
	b.got = md.Properties
	for k := range md.Properties {
		if k != "host" {
			return components.Permanent(errors.New("unknown metadata " + k))
		}
	}
	if b.down {
		return errors.New("connection refused")
	}
	return nil
}

func (b *strictBroker) Close() error { b.closed = true; return nil }

func TestTableKind(t *testing.T) {
	tab := NewTable(nil)
	newFn, types := components.FactoryFromMap(map[string]func() pubsub.PubSub{
		"pubsub.strict": func() pubsub.PubSub { return &strictBroker{} },
	})
	k := tab.Kind(pubsub.Kind(newFn, types))
	ctx := context.Background()
	props := map[string]string{"host": "h", "publishingScopes": "app1=t1", "AllowedTopics": "t1,t2"}
	a, b, down := &strictBroker{}, &strictBroker{}, &strictBroker{down: true}

	if err := k.Init(ctx, a, components.Metadata{Name: "ps", Properties: props}); err != nil {
		t.Fatalf("Init: %v (the broker saw %v)", err, a.got)
	}
	if len(a.got) != 1 || a.got["host"] != "h" {
		t.Errorf("broker got %v, want only host", a.got)
	}
	if len(props) != 3 {
		t.Errorf("Init changed the caller's metadata: %v", props)
	}
	s := tab.Of(a)
	if s == nil || s.CanPublish("app1", "t2") || !s.CanPublish("app2", "t2") || s.CanSubscribe("app2", "t3") {
		t.Errorf("scopes of a = %+v", s)
	}

	if err := k.Init(ctx, b, components.Metadata{Name: "ps", Properties: map[string]string{"host": "h"}}); err != nil {
		t.Fatal(err)
	}
	if tab.Of(b) != nil {
		t.Error("an instance without scoping fields must have nil scopes")
	}
	if err := k.Init(ctx, down, components.Metadata{Name: "ps", Properties: props}); err == nil {
		t.Fatal("Init of a broker that is down succeeded")
	}
	if tab.Of(down) != nil {
		t.Error("scopes recorded for an instance that failed Init")
	}

	if err := k.Close(a); err != nil || !a.closed {
		t.Errorf("Close: %v, closed %v", err, a.closed)
	}
	if tab.Of(a) != nil {
		t.Error("scopes kept after Close")
	}
}
