package apierr

import (
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
)

// Dapr's pub/sub error codes (dapr/dapr pkg/api/errors/pubsub.go).
const (
	CodePubSubNotConfigured   = "ERR_PUBSUB_NOT_CONFIGURED"
	CodePubSubEmpty           = "ERR_PUBSUB_EMPTY"
	CodePubSubNotFound        = "ERR_PUBSUB_NOT_FOUND"
	CodeTopicEmpty            = "ERR_TOPIC_EMPTY"
	CodePubSubRequestMetadata = "ERR_PUBSUB_REQUEST_METADATA"
	CodePubSubPublishMessage  = "ERR_PUBSUB_PUBLISH_MESSAGE"
	CodePubSubCloudEventsSer  = "ERR_PUBSUB_CLOUD_EVENTS_SER"
	CodePubSubEventsSer       = "ERR_PUBSUB_EVENTS_SER"
	CodePubSubForbidden       = "ERR_PUBSUB_FORBIDDEN"
	// CodePubSubNotReady has no Dapr equivalent (daprd does not start with
	// a broken component): the component is loaded but its broker is not
	// reachable yet.
	CodePubSubNotReady = "ERR_PUBSUB_NOT_READY"
)

// PubSubNotConfigured: no pub/sub component is loaded at all.
func PubSubNotConfigured() *Error {
	return &Error{Code: CodePubSubNotConfigured, HTTPStatus: http.StatusBadRequest, GRPCCode: codes.FailedPrecondition,
		Message: "pubsub is not configured: add a pubsub component to a --resources-path folder"}
}

// PubSubEmpty: no pub/sub name in the request.
func PubSubEmpty() *Error {
	return &Error{Code: CodePubSubEmpty, HTTPStatus: http.StatusNotFound, GRPCCode: codes.InvalidArgument,
		Message: "pubsub name is empty"}
}

// PubSubNotFound: no pub/sub component of that name is loaded.
func PubSubNotFound(name string) *Error {
	return &Error{Code: CodePubSubNotFound, HTTPStatus: http.StatusNotFound, GRPCCode: codes.InvalidArgument,
		Message: fmt.Sprintf("pubsub %s not found", name)}
}

// PubSubNotReady: the component is loaded but cannot serve yet; err says
// why (its last initialisation error).
func PubSubNotReady(name string, err error) *Error {
	return &Error{Code: CodePubSubNotReady, HTTPStatus: http.StatusServiceUnavailable, GRPCCode: codes.Unavailable,
		Message: fmt.Sprintf("pubsub %s is not ready: %v", name, err)}
}

// TopicEmpty: no topic in the request.
func TopicEmpty(pubsubName string) *Error {
	return &Error{Code: CodeTopicEmpty, HTTPStatus: http.StatusNotFound, GRPCCode: codes.InvalidArgument,
		Message: fmt.Sprintf("topic is empty in pubsub %s", pubsubName)}
}

// PubSubRequestMetadata: request metadata that cannot be read (e.g.
// rawPayload that is not a boolean).
func PubSubRequestMetadata(err error) *Error {
	return &Error{Code: CodePubSubRequestMetadata, HTTPStatus: http.StatusBadRequest, GRPCCode: codes.InvalidArgument,
		Message: fmt.Sprintf("failed deserializing metadata. Error: %v", err)}
}

// PubSubPublishMessage: the broker did not accept the message.
func PubSubPublishMessage(pubsubName, topic string, err error) *Error {
	return &Error{Code: CodePubSubPublishMessage, HTTPStatus: http.StatusInternalServerError, GRPCCode: codes.Internal,
		Message: fmt.Sprintf("error when publishing to topic %s in pubsub %s: %v", topic, pubsubName, err)}
}

// PubSubCloudEvent: the envelope could not be built, e.g. a caller's
// application/cloudevents+json body that is not a JSON object (Dapr: 500,
// InvalidArgument).
func PubSubCloudEvent(err error) *Error {
	return &Error{Code: CodePubSubCloudEventsSer, HTTPStatus: http.StatusInternalServerError, GRPCCode: codes.InvalidArgument,
		Message: fmt.Sprintf("cannot create cloudevent: %v", err)}
}

// PubSubEvents: a bulk publish body or entry that cannot be read.
func PubSubEvents(pubsubName, topic string, err error) *Error {
	return &Error{Code: CodePubSubEventsSer, HTTPStatus: http.StatusBadRequest, GRPCCode: codes.InvalidArgument,
		Message: fmt.Sprintf("error when unmarshaling the request for topic %s pubsub %s: %v", topic, pubsubName, err)}
}

// PubSubForbidden: the component's topic scoping (publishingScopes,
// subscriptionScopes, allowedTopics, protectedTopics) does not let appID use
// topic; reason says which field to change. Dapr's wording, then the reason.
func PubSubForbidden(topic, appID, reason string) *Error {
	return &Error{Code: CodePubSubForbidden, HTTPStatus: http.StatusForbidden, GRPCCode: codes.PermissionDenied,
		Message: fmt.Sprintf("topic %s is not allowed for app id %s: %s", topic, appID, reason)}
}
