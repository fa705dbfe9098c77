package apierr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is one Dapr API error: the errorCode of the JSON body, the HTTP
// status and the gRPC code used for the same failure.
type Error struct {
	Code       string
	HTTPStatus int
	GRPCCode   codes.Code
	Message    string
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// GRPCStatus lets status.FromError and status.Code see the gRPC code.
func (e *Error) GRPCStatus() *status.Status {
	return status.New(e.GRPCCode, e.Message)
}

// Is matches another *Error with the same code and statuses, ignoring the
// message, so errors.Is(err, apierr.DirectInvokeNoAppID()) works.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return e.Code == t.Code && e.HTTPStatus == t.HTTPStatus && e.GRPCCode == t.GRPCCode
}

// body is the legacy Dapr JSON error body.
type body struct {
	ErrorCode string `json:"errorCode"`
	Message   string `json:"message"`
}

// JSON returns the body Dapr writes for this error:
// {"errorCode":"...","message":"..."}.
func (e *Error) JSON() []byte {
	b, err := json.Marshal(body{ErrorCode: e.Code, Message: e.Message})
	if err != nil {
		// Marshalling two strings cannot fail.
		panic(err)
	}
	return b
}

// From returns err as an *Error; any other error becomes ERR_INTERNAL (500,
// codes.Internal) with err's text, so nothing leaves the API unmapped.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal(err)
}

// WriteHTTP writes err as Dapr's JSON error body with its HTTP status.
func WriteHTTP(w http.ResponseWriter, err error) {
	e := From(err)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(e.HTTPStatus)
	_, _ = w.Write(e.JSON())
}

// GRPC returns err as a gRPC status error with the code of its *Error (or
// codes.Internal). A status error that is not an *Error is returned as is.
func GRPC(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return status.Error(e.GRPCCode, e.Message)
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, err.Error())
}
