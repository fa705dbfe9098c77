package inmemory_test

import (
	"context"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/inmemory"
	"github.com/tandemrun/tandem/components/pubsub/pubsubtest"
)

func TestContract(t *testing.T) {
	pubsubtest.Run(t, func(t *testing.T) pubsub.PubSub {
		ps := inmemory.New(nil)
		if err := ps.Init(context.Background(), components.Metadata{Name: "mem", Type: inmemory.Type}); err != nil {
			t.Fatal(err)
		}
		return ps
	})
}
