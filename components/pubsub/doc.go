// Package pubsub defines the pub/sub building block's broker interface and
// the pieces every broker shares.
//
// A broker (components/pubsub/<name>) implements PubSub. Its contract is
// at-least-once delivery with nothing lost on our side:
//
//   - a message is acknowledged to the broker only after the Handler
//     returned nil;
//   - a Handler error leaves the message with the broker for redelivery
//     (nack/requeue, or no ack so a visibility timeout redelivers it);
//   - when the subscription's context ends or Close is called the broker
//     stops pulling new messages first, lets handlers already running
//     finish, and leaves every message that was not acknowledged to be
//     redelivered: nothing is acked or dead-lettered because we are stopping.
//
// Brokers hand each received message to a Dispatcher, which enforces
// SubscribeRequest.MaxConcurrency and the optional per-key ordering
// (SubscribeRequest.OrderingKey) the same way for every broker.
//
// The contract suite in components/pubsub/pubsubtest checks these
// properties against each broker's real server; components/pubsub/builtin
// lists the built-in brokers by Dapr component type.
//
// This package imports only components (for Metadata); the sidecar's
// publish API, CloudEvents and subscription routing live above it.
package pubsub
