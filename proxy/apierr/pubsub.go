package apierr

import (
	"fmt"
	"maps"
	"net/http"

	"google.golang.org/grpc/codes"
)

// Dapr's pub/sub error codes (dapr/dapr pkg/api/errors/pubsub.go).
const (
	CodePubSubNotConfigured   = "ERR_PUBSUB_NOT_CONFIGURED"
	CodePubSubEmpty           = "ERR_PUBSUB_EMPTY"
	CodePubSubNotFound        = "ERR_PUBSUB_NOT_FOUND"
	CodeTopicEmpty            = "ERR_TOPIC_NAME_EMPTY"
	CodePubSubRequestMetadata = "ERR_PUBSUB_REQUEST_METADATA"
	CodePubSubPublishMessage  = "ERR_PUBSUB_PUBLISH_MESSAGE"
	CodePubSubCloudEventsSer  = "ERR_PUBSUB_CLOUD_EVENTS_SER"
	CodePubSubEventsSer       = "ERR_PUBSUB_EVENTS_SER"
	CodePubSubForbidden       = "ERR_PUBSUB_FORBIDDEN"
	CodePublishOutbox         = "ERR_PUBLISH_OUTBOX"
	// CodePubSubNotReady has no Dapr equivalent (daprd does not start with
	// a broken component): the component is loaded but its broker is not
	// reachable yet.
	CodePubSubNotReady = "ERR_PUBSUB_NOT_READY"
)

// The ErrorInfo reasons of Dapr's pub/sub errors.
const (
	ReasonPubSubNotConfigured   = "DAPR_PUBSUB_NOT_CONFIGURED"
	ReasonPubSubNameEmpty       = "DAPR_PUBSUB_NAME_EMPTY"
	ReasonPubSubNotFound        = "DAPR_PUBSUB_NOT_FOUND"
	ReasonPubSubTopicNameEmpty  = "DAPR_PUBSUB_TOPIC_NAME_EMPTY"
	ReasonPubSubMetadata        = "DAPR_PUBSUB_METADATA_DESERIALIZATION"
	ReasonPubSubPublishMessage  = "DAPR_PUBSUB_PUBLISH_MESSAGE"
	ReasonPubSubCloudEvent      = "DAPR_PUBSUB_CLOUD_EVENT_CREATION"
	ReasonPubSubUnmarshalEvents = "DAPR_PUBSUB_UNMARSHAL_EVENTS"
	ReasonPubSubMarshalEvents   = "DAPR_PUBSUB_MARSHAL_EVENTS"
	ReasonPubSubForbidden       = "DAPR_PUBSUB_FORBIDDEN"
	ReasonPubSubOutbox          = "DAPR_PUBSUB_OUTBOX"
)

// pubsubError is one of daprd's rich pub/sub errors: ResourceInfo naming
// the component (unless name is ""), then ErrorInfo with reason and md.
func pubsubError(code string, httpStatus int, grpcCode codes.Code, msg, name, reason string, md map[string]string) *Error {
	e := &Error{Code: code, HTTPStatus: httpStatus, GRPCCode: grpcCode, Message: msg}
	if name != "" {
		e.Details = append(e.Details, resourceInfo("pubsub", name, msg))
	}
	return e.withErrorInfo(reason, md)
}

// PubSubOutbox: a state transaction on a store with an outbox could not
// publish its internal outbox message, so nothing was written (Dapr: 500,
// Internal, no ResourceInfo).
func PubSubOutbox(appID string, err error) *Error {
	return pubsubError(CodePublishOutbox, http.StatusInternalServerError, codes.Internal,
		fmt.Sprintf("error while publishing outbox message: %s", err), "", ReasonPubSubOutbox,
		map[string]string{"appID": appID, "error": err.Error()})
}

// PubSubNotConfigured: no pub/sub component is loaded at all; name is the
// one the request asked for.
func PubSubNotConfigured(name string) *Error {
	return pubsubError(CodePubSubNotConfigured, http.StatusBadRequest, codes.FailedPrecondition,
		fmt.Sprintf("pubsub %s is not configured", name), "", ReasonPubSubNotConfigured, nil).
		withHint("https://docs.dapr.io/reference/components-reference/supported-pubsub/", "Add a pubsub component to a --resources-path folder")
}

// PubSubEmpty: no pub/sub name in the request. daprd adds a ResourceInfo
// with the empty name.
func PubSubEmpty() *Error {
	e := &Error{Code: CodePubSubEmpty, HTTPStatus: http.StatusNotFound, GRPCCode: codes.InvalidArgument, Message: "pubsub name is empty"}
	e.Details = append(e.Details, resourceInfo("pubsub", "", e.Message))
	return e.withErrorInfo(ReasonPubSubNameEmpty, nil)
}

// PubSubNotFound: no pub/sub component of that name is loaded.
func PubSubNotFound(name string) *Error {
	return pubsubError(CodePubSubNotFound, http.StatusNotFound, codes.InvalidArgument,
		fmt.Sprintf("pubsub %s is not found", name), "", ReasonPubSubNotFound, nil)
}

// PubSubNotReady: the component is loaded but cannot serve yet; err says
// why (its last initialisation error).
func PubSubNotReady(name string, err error) *Error {
	return &Error{Code: CodePubSubNotReady, HTTPStatus: http.StatusServiceUnavailable, GRPCCode: codes.Unavailable,
		Message: fmt.Sprintf("pubsub %s is not ready: %v", name, err)}
}

// TopicEmpty: no topic in the request.
func TopicEmpty(pubsubName string) *Error {
	return pubsubError(CodeTopicEmpty, http.StatusNotFound, codes.InvalidArgument,
		"topic is empty in pubsub "+pubsubName, pubsubName, ReasonPubSubTopicNameEmpty, nil)
}

// PubSubRequestMetadata: request metadata that cannot be read (e.g.
// rawPayload that is not a boolean). As daprd, ResourceInfo names the
// component and the ErrorInfo metadata is the request's, with the cause
// added as "error".
func PubSubRequestMetadata(pubsubName string, md map[string]string, err error) *Error {
	info := make(map[string]string, len(md)+1)
	maps.Copy(info, md)
	if _, ok := info["error"]; !ok {
		info["error"] = err.Error()
	}
	return pubsubError(CodePubSubRequestMetadata, http.StatusBadRequest, codes.InvalidArgument,
		fmt.Sprintf("failed deserializing metadata. Error: %v", err), pubsubName, ReasonPubSubMetadata, info)
}

// PubSubPublishMessage: the broker did not accept the message.
func PubSubPublishMessage(pubsubName, topic string, err error) *Error {
	return pubsubError(CodePubSubPublishMessage, http.StatusInternalServerError, codes.Internal,
		fmt.Sprintf("error when publishing to topic %s in pubsub %s: %v", topic, pubsubName, err), pubsubName,
		ReasonPubSubPublishMessage, map[string]string{"topic": topic, "error": err.Error()})
}

// PubSubCloudEvent: the envelope could not be built, e.g. a caller's
// application/cloudevents+json body that is not a JSON object (Dapr: 500,
// InvalidArgument). ResourceInfo names the component; the ErrorInfo
// metadata has the app ID and the cause, as daprd's.
func PubSubCloudEvent(pubsubName, appID string, err error) *Error {
	return pubsubError(CodePubSubCloudEventsSer, http.StatusInternalServerError, codes.InvalidArgument,
		"cannot create cloudevent", pubsubName, ReasonPubSubCloudEvent, map[string]string{"appID": appID, "error": err.Error()})
}

// PubSubEvents: a bulk publish body or entry that cannot be read.
func PubSubEvents(pubsubName, topic string, err error) *Error {
	return pubsubError(CodePubSubEventsSer, http.StatusBadRequest, codes.InvalidArgument,
		fmt.Sprintf("error when unmarshaling the request for topic %s pubsub %s: %v", topic, pubsubName, err), pubsubName,
		ReasonPubSubUnmarshalEvents, map[string]string{"topic": topic, "error": err.Error()})
}

// PubSubMarshalEvents: bulk publish entries that cannot be sent as they
// are (a missing or repeated entryId), as daprd reports it for both APIs.
func PubSubMarshalEvents(pubsubName, topic, appID string, err error) *Error {
	return pubsubError(CodePubSubEventsSer, http.StatusBadRequest, codes.InvalidArgument,
		fmt.Sprintf("error marshaling events to bytes for topic %s pubsub %s. error: %v", topic, pubsubName, err), pubsubName,
		ReasonPubSubMarshalEvents, map[string]string{"appID": appID, "error": err.Error()})
}

// PubSubForbidden: the component's topic scoping (publishingScopes,
// subscriptionScopes, allowedTopics, protectedTopics) does not let appID use
// topic. The message is daprd's; reason, which says which field to change,
// is the ErrorInfo metadata's "error", where daprd puts its cause.
func PubSubForbidden(topic, appID, reason string) *Error {
	return pubsubError(CodePubSubForbidden, http.StatusForbidden, codes.PermissionDenied,
		fmt.Sprintf("topic %s is not allowed for app id %s", topic, appID), "", ReasonPubSubForbidden,
		map[string]string{"topic": topic, "error": reason})
}
