// Package cloudevents builds and reads the CloudEvents 1.0 JSON envelopes
// Dapr wraps published messages in, field for field as daprd writes them
// (components-contrib pubsub/envelope.go and dapr pkg/runtime/pubsub), so
// messages published through Tandem and through Dapr are interchangeable on
// the broker.
//
// Publishing: Wrap turns a request body and its content type into an
// envelope (or completes an envelope the caller sent as
// application/cloudevents+json) and Marshal encodes it. Subscribing: Parse
// decodes one, Expired checks the "expiration" extension and FromRawPayload
// wraps a message that was published without an envelope.
//
// The package imports nothing of Tandem's.
package cloudevents
