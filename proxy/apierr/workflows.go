package apierr

import (
	"errors"
	"fmt"
	"net/http"
	"unicode"

	"google.golang.org/grpc/codes"

	"github.com/tandemrun/tandem/workflow"
)

// WorkflowOp is the workflow API operation an error happened in; it picks
// daprd's code for failures that have none of their own.
type WorkflowOp int

// The workflow API's operations.
const (
	WorkflowStart WorkflowOp = iota
	WorkflowGet
	WorkflowTerminate
	WorkflowRaiseEvent
	WorkflowPause
	WorkflowResume
	WorkflowPurge
)

func workflowErr(code string, httpStatus int, grpc codes.Code, msg string) *Error {
	return &Error{Code: code, HTTPStatus: httpStatus, GRPCCode: grpc, Message: msg}
}

// WorkflowNameMissing: start without a workflow name.
func WorkflowNameMissing() *Error {
	return workflowErr("ERR_WORKFLOW_NAME_MISSING", http.StatusBadRequest, codes.InvalidArgument, "workflow name is not configured")
}

// WorkflowInstanceIDMissing: no instance ID.
func WorkflowInstanceIDMissing() *Error {
	return workflowErr("ERR_INSTANCE_ID_PROVIDED_MISSING", http.StatusBadRequest, codes.InvalidArgument, "no instance ID was provided")
}

// WorkflowInstanceIDTooLong: an instance ID over max characters.
func WorkflowInstanceIDTooLong(max int) *Error {
	return workflowErr("ERR_INSTANCE_ID_TOO_LONG", http.StatusBadRequest, codes.InvalidArgument, fmt.Sprintf("workflow instance ID exceeds the max length of %d characters", max))
}

// WorkflowInstanceIDInvalid: an instance ID with characters other than
// letters, digits, '-' and '_'.
func WorkflowInstanceIDInvalid(id string) *Error {
	return workflowErr("ERR_INSTANCE_ID_INVALID", http.StatusBadRequest, codes.InvalidArgument, fmt.Sprintf("workflow instance ID '%s' is invalid: only alphanumeric and underscore characters are allowed", id))
}

// WorkflowEventNameMissing: raise event without a name.
func WorkflowEventNameMissing() *Error {
	return workflowErr("ERR_WORKFLOW_EVENT_NAME_MISSING", http.StatusBadRequest, codes.InvalidArgument, "missing workflow event name")
}

// WorkflowNotFound: no instance with that ID.
func WorkflowNotFound(id string) *Error {
	return workflowErr("ERR_INSTANCE_ID_NOT_FOUND", http.StatusNotFound, codes.NotFound, "unable to find workflow with the provided instance ID: "+id)
}

// Workflow maps an engine error of op on instance id (the workflow name
// for start) to daprd's error.
func Workflow(op WorkflowOp, id string, err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, workflow.ErrNoActors):
		return workflowErr("ERR_ACTOR_RUNTIME_NOT_FOUND", http.StatusInternalServerError, codes.Internal, "actor runtime is not configured: "+err.Error())
	case errors.Is(err, workflow.ErrNotFound) && (op == WorkflowTerminate || op == WorkflowPurge || op == WorkflowGet):
		return WorkflowNotFound(id)
	}
	switch op {
	case WorkflowStart:
		return workflowErr("ERR_START_WORKFLOW", http.StatusInternalServerError, codes.Internal, fmt.Sprintf("error starting workflow '%s': %s", id, err))
	case WorkflowGet:
		return workflowErr("ERR_GET_WORKFLOW", http.StatusInternalServerError, codes.Internal, fmt.Sprintf("error while getting workflow info on instance '%s': %s", id, err))
	case WorkflowTerminate:
		return workflowErr("ERR_TERMINATE_WORKFLOW", http.StatusInternalServerError, codes.Internal, fmt.Sprintf("error terminating workflow '%s': %s", id, err))
	case WorkflowRaiseEvent:
		return workflowErr("ERR_RAISE_EVENT_WORKFLOW", http.StatusInternalServerError, codes.Internal, fmt.Sprintf("error raising event on workflow '%s': %s", id, err))
	case WorkflowPause:
		return workflowErr("ERR_PAUSE_WORKFLOW", http.StatusInternalServerError, codes.Internal, fmt.Sprintf("error pausing workflow %s: %s", id, err))
	case WorkflowResume:
		return workflowErr("ERR_RESUME_WORKFLOW", http.StatusInternalServerError, codes.Internal, fmt.Sprintf("error resuming workflow %s: %s", id, err))
	}
	return workflowErr("ERR_PURGE_WORKFLOW", http.StatusInternalServerError, codes.Internal, fmt.Sprintf("error purging workflow %s: %s", id, err))
}

// maxInstanceIDLength is daprd's limit for IDs given at start.
const maxInstanceIDLength = 64

// ValidateWorkflowInstanceID applies daprd's rules to an instance ID:
// present, and when creating at most 64 letters, digits, '-' and '_'.
func ValidateWorkflowInstanceID(id string, create bool) *Error {
	if id == "" {
		return WorkflowInstanceIDMissing()
	}
	if !create {
		return nil
	}
	if len(id) > maxInstanceIDLength {
		return WorkflowInstanceIDTooLong(maxInstanceIDLength)
	}
	for _, c := range id {
		if !unicode.IsLetter(c) && !unicode.IsDigit(c) && c != '-' && c != '_' {
			return WorkflowInstanceIDInvalid(id)
		}
	}
	return nil
}
