package apierr

import (
	"errors"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// kitError recognises an error a pluggable component sent in Dapr's own
// shape (dapr/dapr pkg/components/pluggable StatusFromKitError: one
// ErrorInfo whose metadata has kit_error "true", http_code and tag) and
// returns it as daprd answers it: the component's gRPC code and message,
// its HTTP status, the tag as error code, and the ErrorInfo's reason and
// domain.
func kitError(err error) (*Error, bool) {
	if err == nil {
		return nil, false
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return nil, false
	}
	st := se.GRPCStatus()
	d := st.Details()
	if len(d) != 1 {
		return nil, false
	}
	info, ok := d[0].(*errdetails.ErrorInfo)
	if !ok || info.GetMetadata()["kit_error"] != "true" {
		return nil, false
	}
	hc, err := strconv.Atoi(info.GetMetadata()["http_code"])
	if err != nil {
		return nil, false
	}
	return &Error{
		Code: info.GetMetadata()["tag"], HTTPStatus: hc, GRPCCode: st.Code(), Message: st.Message(),
		Category: "pluggable",
		Details:  []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: info.GetReason(), Domain: info.GetDomain()}},
	}, true
}

// StateQueryError is a failed query: the store's own error if it sent one
// in Dapr's shape, else StateQueryFailed.
func StateQueryError(store string, err error) *Error {
	if k, ok := kitError(err); ok {
		return k
	}
	return StateQueryFailed(store, err.Error())
}
