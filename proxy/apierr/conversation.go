package apierr

import (
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
)

// Dapr's conversation error codes ("PARMS" is daprd's spelling).
const (
	CodeConversationNotFound      = "ERR_CONVERSATION_NOT_FOUND"
	CodeConversationInvalidParams = "ERR_CONVERSATION_INVALID_PARMS"
	CodeConversationInvoke        = "ERR_CONVERSATION_INVOKE"
	CodeConversationMissingInputs = "ERR_CONVERSATION_MISSING_INPUTS"
)

// ConversationNotFound: no conversation component by that name.
func ConversationNotFound(name string) *Error {
	return &Error{Code: CodeConversationNotFound, HTTPStatus: http.StatusBadRequest, GRPCCode: codes.InvalidArgument,
		Message: fmt.Sprintf("failed finding conversation component %s", name)}
}

// ConversationInvalidParams is a request the API refuses; why says what
// to fix.
func ConversationInvalidParams(name, why string) *Error {
	return &Error{Code: CodeConversationInvalidParams, HTTPStatus: http.StatusBadRequest, GRPCCode: codes.InvalidArgument,
		Message: fmt.Sprintf("failed conversing with component %s: invalid params: %s", name, why)}
}

// ConversationMissingInputs is a request with no inputs.
func ConversationMissingInputs(name string) *Error {
	return &Error{Code: CodeConversationMissingInputs, HTTPStatus: http.StatusBadRequest, GRPCCode: codes.InvalidArgument,
		Message: fmt.Sprintf("failed conversing with component %s: missing inputs in request", name)}
}

// ConversationInvoke is a component that failed to answer.
func ConversationInvoke(name string, err error) *Error {
	return &Error{Code: CodeConversationInvoke, HTTPStatus: http.StatusInternalServerError, GRPCCode: codes.Internal,
		Message: fmt.Sprintf("failed conversing with component %s: %v", name, err)}
}
