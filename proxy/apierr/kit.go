package apierr

import (
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// kit is an error a pluggable component sent in Dapr's own shape (dapr/dapr
// pkg/components/pluggable StatusFromKitError: a status whose one detail is
// an ErrorInfo with metadata kit_error "true", http_code and tag), as daprd
// rebuilds it: the component's code and message, its HTTP status, the tag
// as error code, and an ErrorInfo with the reason and domain only.
type kit struct {
	status     *status.Status
	httpStatus int
	tag        string
}

// kitOf finds a kit error in err's chain.
func kitOf(err error) (kit, bool) {
	if err == nil {
		return kit{}, false
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return kit{}, false
	}
	st := se.GRPCStatus()
	d := st.Details()
	if len(d) != 1 {
		return kit{}, false
	}
	info, ok := d[0].(*errdetails.ErrorInfo)
	if !ok || info.GetMetadata()["kit_error"] != "true" {
		return kit{}, false
	}
	hc, err := strconv.Atoi(info.GetMetadata()["http_code"])
	if err != nil {
		return kit{}, false
	}
	clean, err := status.New(st.Code(), st.Message()).WithDetails(&errdetails.ErrorInfo{Reason: info.GetReason(), Domain: info.GetDomain()})
	if err != nil {
		return kit{}, false
	}
	return kit{status: clean, httpStatus: hc, tag: info.GetMetadata()["tag"]}, true
}

// String is the text daprd gives the error inside its own messages.
func (k kit) String() string {
	return fmt.Sprintf("api error: code = %s desc = %s", k.status.Code(), k.status.Message())
}

// asError is the component's error as the API's own, over HTTP and gRPC.
func (k kit) asError() *Error {
	return &Error{
		Code: k.tag, HTTPStatus: k.httpStatus, GRPCCode: k.status.Code(), Message: k.status.Message(),
		Category: "pluggable", Details: []protoadapt.MessageV1{k.status.Details()[0].(*errdetails.ErrorInfo)},
	}
}

// wrapped is daprd's own error code around the component's error: over
// HTTP code and message (which quotes the component's) with the
// component's HTTP status, over gRPC the component's status as it came.
func (k kit) wrapped(code, message string) *Error {
	return &Error{
		Code: code, HTTPStatus: k.httpStatus, GRPCCode: k.status.Code(), Message: message,
		passThrough: k.status,
	}
}

// errText is err as daprd quotes it in its messages: a kit error in
// daprd's format, anything else as its Error.
func errText(err error) string {
	if k, ok := kitOf(err); ok {
		return k.String()
	}
	return err.Error()
}

// StateQueryError is a failed query: the store's own error if it sent one
// in Dapr's shape, else StateQueryFailed.
func StateQueryError(store string, err error) *Error {
	if k, ok := kitOf(err); ok {
		return k.asError()
	}
	return StateQueryFailed(store, err.Error())
}
