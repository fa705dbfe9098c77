package apierr

import (
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
)

// CodeInvokeOutputBinding is Dapr's code for every failed output binding
// call (unknown binding, unsupported operation, backend error).
const CodeInvokeOutputBinding = "ERR_INVOKE_OUTPUT_BINDING"

// InvokeOutputBinding is a failed output binding call (500), in daprd's
// words, as its HTTP API answers it: no details.
func InvokeOutputBinding(name string, err error) *Error {
	return &Error{
		Code:       CodeInvokeOutputBinding,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.Internal,
		Message:    fmt.Sprintf("error invoking output binding %s: %v", name, err),
	}
}

// InvokeOutputBindingRich is InvokeOutputBinding as daprd's gRPC API
// answers it: with google.rpc.ErrorInfo.
func InvokeOutputBindingRich(name string, err error) *Error {
	return InvokeOutputBinding(name, err).withErrorInfo(CodeInvokeOutputBinding, nil)
}
