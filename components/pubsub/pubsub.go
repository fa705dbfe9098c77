package pubsub

import (
	"context"
	"slices"

	"github.com/tandemrun/tandem/components"
)

// PubSub is a message broker. Implementations are safe for concurrent use
// after Init.
type PubSub interface {
	// Init connects to the broker with the component's metadata. An error
	// means the component is not ready (the loader retries with backoff).
	Init(ctx context.Context, md components.Metadata) error
	// Publish sends one message. It returns nil only once the broker has
	// accepted the message (for brokers with confirmations, once confirmed).
	Publish(ctx context.Context, req *PublishRequest) error
	// Subscribe starts delivering messages of req.Topic to h. It returns once
	// the subscription is established; deliveries continue in the background
	// until ctx ends or Close is called. A message is acknowledged only after
	// h returned nil.
	Subscribe(ctx context.Context, req SubscribeRequest, h Handler) error
	// Features lists the optional behaviour the broker has.
	Features() []Feature
	// Close stops pulling messages, waits for running handlers, leaves
	// unacknowledged messages for redelivery and releases the connection.
	Close() error
}

// Handler processes one delivered message. Returning nil acknowledges it;
// returning an error makes the broker redeliver it later.
//
// The context passed to a Handler is not cancelled when the subscription
// stops, so a handler that already started can finish and have its result
// acknowledged; bound the work with your own timeouts.
type Handler func(ctx context.Context, msg *Message) error

// PublishRequest is one message to publish.
type PublishRequest struct {
	// Topic is the topic (stream, subject, exchange) to publish to.
	Topic string
	// Data is the payload, usually a CloudEvents JSON envelope.
	Data []byte
	// ContentType is the payload's media type, e.g.
	// "application/cloudevents+json". Brokers that carry headers keep it.
	ContentType string
	// Metadata holds per-request options such as MetadataTTLInSeconds; brokers
	// that carry headers deliver them with the message.
	Metadata map[string]string
}

// Message is one delivered message.
type Message struct {
	// Topic the message was published to.
	Topic string
	// Data is the payload as published.
	Data []byte
	// ContentType as published, where the broker carries it ("" otherwise).
	ContentType string
	// Metadata as published, where the broker carries it (see
	// FeatureMessageMetadata), plus broker-specific entries.
	Metadata map[string]string
	// ID is the broker's identifier of the message (stream entry ID, stream
	// sequence, ...), "" where there is none. Redeliveries keep the ID.
	ID string
	// Redelivered is true when the broker says this is not the first
	// delivery (where it says so).
	Redelivered bool
}

// SubscribeRequest describes one subscription.
type SubscribeRequest struct {
	// Topic to subscribe to.
	Topic string
	// Metadata holds per-subscription broker options (e.g. RabbitMQ's
	// "queueName").
	Metadata map[string]string
	// MaxConcurrency limits how many messages of this subscription are
	// handled (and buffered for handling) at once; 0 takes the broker's
	// default (its "concurrency" metadata or DefaultConcurrency).
	MaxConcurrency int
	// OrderingKey, when set, names a message metadata entry (for example
	// "partitionKey"): messages with the same value of that entry are handed
	// to the Handler one at a time, in the order the broker delivered them.
	// A message whose handler fails is retried in place a few times before
	// later messages with the same key; if it still fails it goes back to the
	// broker and may then arrive after them. Messages without the entry are
	// not ordered. Needs a broker that carries metadata
	// (FeatureMessageMetadata).
	OrderingKey string
}

// Feature is an optional broker behaviour, listed by Features and reported
// in the metadata API.
type Feature string

const (
	// FeatureMessageTTL: the broker itself expires messages published with
	// MetadataTTLInSeconds (others rely on the CloudEvent "expiration").
	FeatureMessageTTL Feature = "MESSAGE_TTL"
	// FeatureMessageMetadata: PublishRequest.Metadata (and ContentType where
	// the broker has it) arrive with the Message.
	FeatureMessageMetadata Feature = "MESSAGE_METADATA"
	// FeatureDurable: messages published while no subscriber runs, and
	// messages a stopped subscriber had not acknowledged, are delivered to
	// the next subscriber with the same consumer ID.
	FeatureDurable Feature = "DURABLE"
	// FeatureConsumerGroups: subscribers with the same consumer ID share a
	// topic's messages instead of each getting all of them.
	FeatureConsumerGroups Feature = "CONSUMER_GROUPS"
	// FeatureSubscribeWildcards: a subscription's topic may be a pattern
	// (the broker's own syntax) matching several topics.
	FeatureSubscribeWildcards Feature = "SUBSCRIBE_WILDCARDS"
	// FeatureBulkSubscribeImmediate: a bulk subscription's messages go to
	// the app at once, each in a batch of its own, instead of waiting for
	// a batch to fill (the broker batches itself).
	FeatureBulkSubscribeImmediate Feature = "BULK_SUBSCRIBE_IMMEDIATE"
)

// daprFeatures are the features daprd's metadata API can list for a
// pub/sub; the others are Tandem's own and stay internal.
var daprFeatures = []Feature{FeatureMessageTTL, FeatureSubscribeWildcards, "BULK_PUBSUB", FeatureBulkSubscribeImmediate}

// Capabilities lists a broker's features as daprd's metadata API does:
// only those daprd knows, in the broker's order.
func Capabilities(fs []Feature) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		if slices.Contains(daprFeatures, f) {
			out = append(out, string(f))
		}
	}
	return out
}

// Well-known request metadata keys.
const (
	// MetadataTTLInSeconds is the per-message time to live in seconds.
	MetadataTTLInSeconds = "ttlInSeconds"
	// MetadataConsumerID overrides the consumer ID of a subscription or
	// component (Dapr's "consumerID").
	MetadataConsumerID = "consumerID"
)

// DefaultConcurrency is how many messages of one subscription are handled
// at once when neither the request nor the component says.
const DefaultConcurrency = 10

// HasFeature reports whether ps lists f.
func HasFeature(ps PubSub, f Feature) bool {
	for _, g := range ps.Features() {
		if g == f {
			return true
		}
	}
	return false
}
