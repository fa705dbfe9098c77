package apierr

import (
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/invoke/resolve"
)

// Dapr's error codes (dapr/dapr pkg/messages/errorcodes) that Tandem returns.
const (
	CodeDirectInvoke           = "ERR_DIRECT_INVOKE"
	CodeMalformedRequest       = "ERR_MALFORMED_REQUEST"
	CodeBadRequest             = "ERR_BAD_REQUEST"
	CodeBodyRead               = "ERR_BODY_READ"
	CodeInternal               = "ERR_INTERNAL"
	CodeMalformedResponse      = "ERR_MALFORMED_RESPONSE"
	CodeHealthNotReady         = "ERR_HEALTH_NOT_READY"
	CodeOutboundHealthNotReady = "ERR_OUTBOUND_HEALTH_NOT_READY"
	CodeHealthAppIDNotMatch    = "ERR_HEALTH_APPID_NOT_MATCH"
	CodeAPIUnimplemented       = "ERR_API_UNIMPLEMENTED"
	CodePermissionDenied       = "ERR_PERMISSION_DENIED"
	// CodeBodyTooLarge has no Dapr equivalent: daprd cuts an oversized body
	// mid-stream; Tandem answers 413 with this code before calling anyone.
	CodeBodyTooLarge = "ERR_BODY_TOO_LARGE"
)

// DirectInvoke is a failed service invocation of appID (500, Internal). When
// the callee's access policy refused it, HTTP answers 403 while gRPC keeps
// codes.Internal with the callee's PermissionDenied in the message, as daprd
// does. An unknown app gets a message that says how to fix it.
func DirectInvoke(appID string, err error) *Error {
	e := &Error{
		Code:       CodeDirectInvoke,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.Internal,
	}
	switch {
	case errors.Is(err, resolve.ErrNotFound):
		err = fmt.Errorf("app %q is not running or not registered with name resolution: start it with tandem run, or check --app-id and the name resolution configuration (%w)", appID, err)
	case status.Code(err) == codes.PermissionDenied:
		e.HTTPStatus = http.StatusForbidden
	}
	e.Message = fmt.Sprintf("failed to invoke, id: %s, err: %v", appID, err)
	return e
}

// DirectInvokeNoAppID is Dapr's 404 for an invocation without a target.
func DirectInvokeNoAppID() *Error {
	return &Error{
		Code:       CodeDirectInvoke,
		HTTPStatus: http.StatusNotFound,
		GRPCCode:   codes.NotFound,
		Message:    "failed getting app id either from the URL path or the header dapr-app-id",
	}
}

// DirectInvokeNotReady means the invocation API is not wired yet.
func DirectInvokeNotReady() *Error {
	return &Error{
		Code:       CodeDirectInvoke,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.Internal,
		Message:    "invoke API is not ready",
	}
}

// MalformedRequest is a request whose body or fields cannot be decoded.
func MalformedRequest(format string, a ...any) *Error {
	return &Error{
		Code:       CodeMalformedRequest,
		HTTPStatus: http.StatusBadRequest,
		GRPCCode:   codes.InvalidArgument,
		Message:    fmt.Sprintf(format, a...),
	}
}

// BadRequest is an invalid request.
func BadRequest(format string, a ...any) *Error {
	return &Error{
		Code:       CodeBadRequest,
		HTTPStatus: http.StatusBadRequest,
		GRPCCode:   codes.InvalidArgument,
		Message:    "invalid request: " + fmt.Sprintf(format, a...),
	}
}

// BodyRead is a request body that could not be read.
func BodyRead(err error) *Error {
	return &Error{
		Code:       CodeBodyRead,
		HTTPStatus: http.StatusBadRequest,
		GRPCCode:   codes.InvalidArgument,
		Message:    fmt.Sprintf("failed to read request body: %v", err),
	}
}

// BodyTooLarge is a request body over the --dapr-http-max-request-size
// limit of limit bytes.
func BodyTooLarge(limit int64) *Error {
	return &Error{
		Code:       CodeBodyTooLarge,
		HTTPStatus: http.StatusRequestEntityTooLarge,
		GRPCCode:   codes.ResourceExhausted,
		Message:    fmt.Sprintf("request body is larger than the limit of %d bytes: send less, or raise --dapr-http-max-request-size (MB)", limit),
	}
}

// Internal is an unexpected failure.
func Internal(err error) *Error {
	return &Error{
		Code:       CodeInternal,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.Internal,
		Message:    err.Error(),
	}
}

// MalformedResponse is an app response that cannot be re-encoded.
func MalformedResponse(err error) *Error {
	return &Error{
		Code:       CodeMalformedResponse,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.Internal,
		Message:    err.Error(),
	}
}

// HealthNotReady is /v1.0/healthz before the sidecar is ready; reason says
// what it still waits for.
func HealthNotReady(reason string) *Error {
	return &Error{
		Code:       CodeHealthNotReady,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.Internal,
		Message:    "dapr is not ready: " + reason,
	}
}

// OutboundHealthNotReady is /v1.0/healthz/outbound before the outbound
// APIs are up.
func OutboundHealthNotReady() *Error {
	return &Error{
		Code:       CodeOutboundHealthNotReady,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.Internal,
		Message:    "dapr outbound is not ready",
	}
}

// HealthAppIDNotMatch is /v1.0/healthz?appid=X on a sidecar of another app.
func HealthAppIDNotMatch() *Error {
	return &Error{
		Code:       CodeHealthAppIDNotMatch,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.Internal,
		Message:    "dapr app-id does not match",
	}
}

// APIUnimplemented is an API Tandem does not offer (yet).
func APIUnimplemented() *Error {
	return &Error{
		Code:       CodeAPIUnimplemented,
		HTTPStatus: http.StatusNotImplemented,
		GRPCCode:   codes.Unimplemented,
		Message:    "this API is currently not implemented",
	}
}

// PermissionDenied is a request refused by policy.
func PermissionDenied(format string, a ...any) *Error {
	return &Error{
		Code:       CodePermissionDenied,
		HTTPStatus: http.StatusForbidden,
		GRPCCode:   codes.PermissionDenied,
		Message:    fmt.Sprintf(format, a...),
	}
}
