package subscriptions

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/proxy/cloudevents"
)

// Kind is where a subscription came from.
type Kind int

const (
	// Programmatic: returned by the app (GET /dapr/subscribe,
	// ListTopicSubscriptions).
	Programmatic Kind = iota + 1
	// Declarative: a Subscription resource.
	Declarative
	// Streaming: a SubscribeTopicEventsAlpha1 stream.
	Streaming
)

func (k Kind) String() string {
	switch k {
	case Programmatic:
		return "programmatic"
	case Declarative:
		return "declarative"
	case Streaming:
		return "streaming"
	}
	return "unknown"
}

// Subscription metadata keys Tandem reads itself (Dapr has no equivalent;
// the other entries go to the broker as they are).
const (
	// MetadataMaxConcurrency limits how many messages of the subscription
	// are delivered to the app at once (pubsub.SubscribeRequest.MaxConcurrency).
	MetadataMaxConcurrency = "maxConcurrency"
	// MetadataOrderingKey names a message metadata entry (e.g.
	// "partitionKey"): messages with the same value are delivered one at a
	// time, in order (pubsub.SubscribeRequest.OrderingKey).
	MetadataOrderingKey = "orderingKey"
)

// Subscription is one topic subscription, whatever its source.
type Subscription struct {
	Kind Kind
	// Name is the Subscription resource's name (declarative only).
	Name       string
	PubsubName string
	Topic      string
	// Metadata is the subscription's metadata (rawPayload, broker options,
	// MetadataMaxConcurrency, MetadataOrderingKey).
	Metadata map[string]string
	// Rules are tried in order; a rule without Match always matches (the
	// default route is the last rule). No rule matching means the event is
	// not for this app.
	Rules           []*Rule
	DeadLetterTopic string
	BulkSubscribe   components.BulkSubscribe
}

// Key identifies the subscription's topic: one subscription per pub/sub
// and topic is active at a time.
func (s *Subscription) Key() string { return s.PubsubName + "||" + s.Topic }

// RawPayload reports metadata rawPayload=true: messages are published
// without an envelope and wrapped on delivery.
func (s *Subscription) RawPayload() bool {
	b, _ := strconv.ParseBool(s.Metadata[cloudevents.MetadataRawPayload])
	return b
}

// MaxConcurrency is metadata maxConcurrency (0: the broker's default).
func (s *Subscription) MaxConcurrency() (int, error) {
	v, ok := s.Metadata[MetadataMaxConcurrency]
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("subscription %s: metadata %s=%q must be a positive integer", s.Key(), MetadataMaxConcurrency, v)
	}
	return n, nil
}

// Equal reports whether two subscriptions would behave the same.
func (s *Subscription) Equal(o *Subscription) bool {
	return s.Kind == o.Kind && s.Name == o.Name && s.PubsubName == o.PubsubName && s.Topic == o.Topic &&
		maps.Equal(s.Metadata, o.Metadata) && s.DeadLetterTopic == o.DeadLetterTopic &&
		s.BulkSubscribe == o.BulkSubscribe &&
		slices.EqualFunc(s.Rules, o.Rules, func(a, b *Rule) bool { return a.Match == b.Match && a.Path == b.Path })
}

// build compiles the rules of routes plus a default path into s.Rules.
func (s *Subscription) build(rules []components.Rule, def string) error {
	for _, r := range rules {
		rule, err := NewRule(r.Match, r.Path)
		if err != nil {
			return fmt.Errorf("subscription to %q on %q: %w", s.Topic, s.PubsubName, err)
		}
		s.Rules = append(s.Rules, rule)
	}
	if def != "" {
		s.Rules = append(s.Rules, &Rule{Path: def})
	}
	return nil
}

// FromDeclarative converts a Subscription resource.
func FromDeclarative(c components.Subscription) (*Subscription, error) {
	s := &Subscription{
		Kind:            Declarative,
		Name:            c.Name,
		PubsubName:      c.PubsubName,
		Topic:           c.Topic,
		Metadata:        c.Metadata,
		DeadLetterTopic: c.DeadLetterTopic,
		BulkSubscribe:   c.BulkSubscribe,
	}
	if err := s.build(c.Routes.Rules, c.Routes.Default); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Source, err)
	}
	return s, nil
}
