package apierr

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/tandemrun/tandem/actors"
	"github.com/tandemrun/tandem/actors/placement"
)

// ActorOp is the actor API operation an error happened in; it picks the
// code of failures that have no code of their own, as daprd does.
type ActorOp int

// The actor API's operations.
const (
	ActorInvoke ActorOp = iota
	ActorStateGet
	ActorStateTransaction
	ActorTimerCreate
	ActorReminderCreate
	ActorReminderGet
	ActorReminderDelete
)

func actorErr(code string, httpStatus int, grpc codes.Code, msg string) *Error {
	return &Error{Code: code, HTTPStatus: httpStatus, GRPCCode: grpc, Message: msg}
}

// Actor maps an error of the actor runtime to Dapr's error.
func Actor(op ActorOp, err error) *Error {
	var e *Error
	var fe *actors.FieldError
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, actors.ErrNoPlacement):
		return actorErr("ERR_ACTOR_NO_PLACEMENT", http.StatusBadRequest, codes.Unavailable, "placement service is not configured")
	case errors.Is(err, actors.ErrNoStateStore):
		return actorErr("ERR_ACTOR_RUNTIME_NOT_FOUND", http.StatusInternalServerError, codes.Internal, err.Error())
	case errors.Is(err, actors.ErrMaxStackDepth):
		return actorErr("ERR_ACTOR_STACK_DEPTH", http.StatusInternalServerError, codes.ResourceExhausted, "maximum stack depth exceeded")
	case errors.Is(err, actors.ErrInstanceMissing):
		return actorErr("ERR_ACTOR_INSTANCE_MISSING", http.StatusBadRequest, codes.Internal, "actor instance is missing")
	case errors.Is(err, actors.ErrNoApp):
		return actorErr("ERR_ACTOR_NO_APP_CHANNEL", http.StatusBadRequest, codes.Unavailable, "app channel is not initialized")
	case errors.Is(err, placement.ErrNoAddress):
		return actorErr("ERR_ACTOR_NO_ADDRESS", http.StatusNotFound, codes.FailedPrecondition,
			strings.Replace(err.Error(), placement.ErrNoAddress.Error(), "did not find address for actor", 1)+
				": no host has registered this actor type (is an app hosting it running?)")
	case errors.Is(err, actors.ErrReminderNotHosted):
		return actorErr("ERR_ACTOR_REMINDER_NON_HOSTED", http.StatusForbidden, codes.PermissionDenied, err.Error())
	case errors.Is(err, actors.ErrReminderExists):
		return actorErr("ERR_ACTOR_REMINDER_ALREADY_EXISTS", http.StatusConflict, codes.AlreadyExists, err.Error())
	case errors.Is(err, actors.ErrReminderNotFound):
		return actorErr("ERR_ACTOR_REMINDER_NOT_FOUND", http.StatusNotFound, codes.NotFound, err.Error())
	case op == ActorReminderCreate && errors.As(err, &fe):
		// daprd answers 500; a malformed field is the caller's error.
		return actorErr("ERR_ACTOR_REMINDER_CREATE", http.StatusBadRequest, codes.InvalidArgument, "error creating actor reminder: "+err.Error()).
			withFieldViolation(fe.Field, fe.Err.Error())
	case op == ActorTimerCreate && errors.As(err, &fe):
		// daprd answers 500; a malformed field is the caller's error.
		return actorErr("ERR_ACTOR_TIMER_CREATE", http.StatusBadRequest, codes.InvalidArgument, "error creating actor timer: "+err.Error()).
			withFieldViolation(fe.Field, fe.Err.Error())
	}
	switch op {
	case ActorStateGet:
		return actorErr("ERR_ACTOR_STATE_GET", http.StatusInternalServerError, codes.Internal, "error getting actor state: "+err.Error())
	case ActorStateTransaction:
		return actorErr("ERR_ACTOR_STATE_TRANSACTION_SAVE", http.StatusInternalServerError, codes.Internal, "error saving actor transaction state: "+err.Error())
	case ActorTimerCreate:
		return actorErr("ERR_ACTOR_TIMER_CREATE", http.StatusInternalServerError, codes.Internal, "error creating actor timer: "+err.Error())
	case ActorReminderCreate:
		return actorErr("ERR_ACTOR_REMINDER_CREATE", http.StatusInternalServerError, codes.Internal, "error creating actor reminder: "+err.Error())
	case ActorReminderGet:
		return actorErr("ERR_ACTOR_REMINDER_GET", http.StatusInternalServerError, codes.Internal, "error getting actor reminder: "+err.Error())
	case ActorReminderDelete:
		return actorErr("ERR_ACTOR_REMINDER_DELETE", http.StatusInternalServerError, codes.Internal, "error deleting actor reminder: "+err.Error())
	}
	return actorErr("ERR_ACTOR_INVOKE_METHOD", http.StatusInternalServerError, codes.Internal, "error invoke actor method: "+err.Error())
}

// ReservedActorType is daprd's refusal of the generic actor APIs (state,
// timers, reminders; not invocation, which the workflow access policy
// guards) for the sidecar's own actor types (dapr.internal.*: workflows,
// activities, ...), whose state and reminders only the runtime may touch;
// nil for another type.
func ReservedActorType(actorType string) *Error {
	if !strings.HasPrefix(actorType, "dapr.internal.") {
		return nil
	}
	return actorErr("ERR_ACTOR_TYPE_RESERVED", http.StatusForbidden, codes.PermissionDenied,
		fmt.Sprintf("actor type %q is reserved for the Dapr workflow runtime; direct actor API access is not permitted", actorType))
}
