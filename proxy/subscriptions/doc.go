// Package subscriptions is the subscriber side of the pub/sub API: where
// subscriptions come from (the app's GET /dapr/subscribe or gRPC
// ListTopicSubscriptions, declarative Subscription resources), how an event
// picks its route (CEL match rules, evaluated with cel.dev/cel-go), how it
// is delivered to the app (HTTP POST of the CloudEvent, gRPC OnTopicEvent)
// and what the app's answer means (Dapr's reply rules: success acks, RETRY
// and errors go to the dead-letter topic when there is one and are
// redelivered otherwise, DROP and HTTP 404 dead-letter, gRPC Unimplemented
// drops).
//
// Processor.Handle is a components/pubsub Handler: it returns nil only when
// the message may be acknowledged to the broker, so nothing the app has not
// accepted (or explicitly dropped) is lost.
//
// proxy/api starts and stops subscriptions; this package only imports
// components, components/pubsub, proxy/cloudevents and proxy/appchannel.
package subscriptions
