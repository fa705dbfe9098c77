// Package builtin lists the pub/sub brokers compiled into the sidecar, by
// Dapr component type (spec.type of a Component resource). cmd/tandemd
// builds the list once and passes it to the component loader.
package builtin

import (
	"log/slog"
	"slices"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/inmemory"
	"github.com/tandemrun/tandem/components/pubsub/jetstream"
	"github.com/tandemrun/tandem/components/pubsub/kafka"
	"github.com/tandemrun/tandem/components/pubsub/mqtt3"
	"github.com/tandemrun/tandem/components/pubsub/rabbitmq"
	"github.com/tandemrun/tandem/components/pubsub/redis"
	"github.com/tandemrun/tandem/components/pubsub/sqlite"
)

// Factories returns a new map from Dapr component type ("pubsub.redis", ...)
// to a constructor of an uninitialised broker that logs to log (with a
// component_type key). log may be nil.
func Factories(log *slog.Logger) map[string]func() pubsub.PubSub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	with := func(typ string) *slog.Logger { return log.With("component_type", typ) }
	return map[string]func() pubsub.PubSub{
		inmemory.Type:  func() pubsub.PubSub { return inmemory.New(with(inmemory.Type)) },
		redis.Type:     func() pubsub.PubSub { return redis.New(with(redis.Type)) },
		jetstream.Type: func() pubsub.PubSub { return jetstream.New(with(jetstream.Type)) },
		kafka.Type:     func() pubsub.PubSub { return kafka.New(with(kafka.Type)) },
		rabbitmq.Type:  func() pubsub.PubSub { return rabbitmq.New(with(rabbitmq.Type)) },
		mqtt3.Type:     func() pubsub.PubSub { return mqtt3.New(with(mqtt3.Type)) },
		sqlite.Type:    func() pubsub.PubSub { return sqlite.New(with(sqlite.Type)) },
	}
}

// Kind is the pub/sub kind with the built-in brokers, for
// components.NewManager.
func Kind(log *slog.Logger) components.Kind[pubsub.PubSub] {
	f := Factories(log)
	types := make([]string, 0, len(f))
	for typ := range f {
		types = append(types, typ)
	}
	slices.Sort(types)
	return pubsub.Kind(func(typ string) (pubsub.PubSub, bool) {
		newPS, ok := f[typ]
		if !ok {
			return nil, false
		}
		return newPS(), true
	}, types)
}
