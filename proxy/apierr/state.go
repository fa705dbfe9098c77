package apierr

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"google.golang.org/grpc/codes"
)

// Dapr's state and secrets error codes (pkg/messages/errorcodes), plus the
// two "not ready" codes Tandem adds for components still initialising.
const (
	CodeStateStoreNotFound         = "ERR_STATE_STORE_NOT_FOUND"
	CodeStateStoreNotConfigured    = "ERR_STATE_STORE_NOT_CONFIGURED"
	CodeStateStoreNotSupported     = "ERR_STATE_STORE_NOT_SUPPORTED"
	CodeStateStoreTooManyOps       = "ERR_STATE_STORE_TOO_MANY_TRANSACTIONS"
	CodeStateGet                   = "ERR_STATE_GET"
	CodeStateSave                  = "ERR_STATE_SAVE"
	CodeStateDelete                = "ERR_STATE_DELETE"
	CodeStateBulkGet               = "ERR_STATE_BULK_GET"
	CodeStateBulkDelete            = "ERR_STATE_BULK_DELETE"
	CodeStateTransaction           = "ERR_STATE_TRANSACTION"
	CodeStateQuery                 = "ERR_STATE_QUERY"
	CodeStateOperationNotSupported = "ERR_NOT_SUPPORTED_STATE_OPERATION"
	CodeSecretStoresNotConfigured  = "ERR_SECRET_STORES_NOT_CONFIGURED"
	CodeSecretStoreNotFound        = "ERR_SECRET_STORE_NOT_FOUND"
	CodeSecretGet                  = "ERR_SECRET_GET"
	CodeStateStoreNotReady         = "ERR_STATE_STORE_NOT_READY"
	CodeSecretStoreNotReady        = "ERR_SECRET_STORE_NOT_READY"
)

// The ErrorInfo reasons of Dapr's rich state errors (pkg/api/errors).
const (
	ReasonStateNotFound                 = "DAPR_STATE_NOT_FOUND"
	ReasonStateNotConfigured            = "DAPR_STATE_NOT_CONFIGURED"
	ReasonStateIllegalKey               = "DAPR_STATE_ILLEGAL_KEY"
	ReasonStateTransactionsNotSupported = "DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED"
	ReasonStateTooManyTransactions      = "DAPR_STATE_TOO_MANY_TRANSACTIONS"
	ReasonStateQueryingNotSupported     = "DAPR_STATE_QUERYING_NOT_SUPPORTED"
	ReasonStateQueryFailed              = "DAPR_STATE_QUERY_FAILED"
)

const stateStoresDocs = "https://docs.dapr.io/reference/components-reference/supported-state-stores/"

// appIDMetadata is the ErrorInfo metadata daprd's HTTP API gives its
// store lookup errors; its gRPC API (appID "") gives none.
func appIDMetadata(appID string) map[string]string {
	if appID == "" {
		return nil
	}
	return map[string]string{"appID": appID}
}

// StateStoreNotFound is a request naming a state store that is not loaded
// (400, InvalidArgument; ErrorInfo DAPR_STATE_NOT_FOUND with the appID in
// its metadata when appID is not empty, as daprd's HTTP API sends it).
func StateStoreNotFound(name, appID string) *Error {
	e := &Error{
		Code:       CodeStateStoreNotFound,
		HTTPStatus: http.StatusBadRequest,
		GRPCCode:   codes.InvalidArgument,
		Message:    fmt.Sprintf("state store %s is not found", name),
	}
	return e.withErrorInfo(ReasonStateNotFound, appIDMetadata(appID))
}

// StateStoreNotConfigured is a state request when no state store is loaded
// at all (500, FailedPrecondition; ErrorInfo DAPR_STATE_NOT_CONFIGURED, its
// metadata as StateStoreNotFound's).
func StateStoreNotConfigured(name, appID string) *Error {
	e := &Error{
		Code:       CodeStateStoreNotConfigured,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.FailedPrecondition,
		Message:    fmt.Sprintf("state store %s is not configured", name),
	}
	return e.withErrorInfo(ReasonStateNotConfigured, appIDMetadata(appID))
}

// StateStoreNotReady is a request to a state store that is loaded but
// still initialising or retrying (daprd never serves before its components
// are up, so it has no such error). It is 503 / Unavailable so that
// clients and resiliency policies treat it as transient; err says why
// (the component's last init error, which never holds secret values).
func StateStoreNotReady(name string, err error) *Error {
	return &Error{
		Code:       CodeStateStoreNotReady,
		HTTPStatus: http.StatusServiceUnavailable,
		GRPCCode:   codes.Unavailable,
		Message:    fmt.Sprintf("state store %s is not ready yet, retry later: %v", name, err),
	}
}

// StateIllegalKey is a key containing "||" in store (400,
// InvalidArgument, ERR_MALFORMED_REQUEST), with daprd's details: a
// BadRequest field violation, the store's ResourceInfo and ErrorInfo
// DAPR_STATE_ILLEGAL_KEY.
func StateIllegalKey(store, key string) *Error {
	msg := fmt.Sprintf("input key/keyPrefix '%s' can't contain '||'", key)
	e := &Error{
		Code:       CodeMalformedRequest,
		HTTPStatus: http.StatusBadRequest,
		GRPCCode:   codes.InvalidArgument,
		Message:    msg,
		Category:   CategoryState,
	}
	return e.withFieldViolation(key, msg).withResource("state", store).withErrorInfo(ReasonStateIllegalKey, nil)
}

// etagStatus returns the HTTP status and gRPC code of a store error: 409 /
// Aborted for an ETag mismatch, 400 / InvalidArgument for an invalid ETag,
// 500 / Internal otherwise, as Dapr's etagError and getStateErrorCode.
func etagStatus(mismatch, invalid bool) (int, codes.Code) {
	switch {
	case mismatch:
		return http.StatusConflict, codes.Aborted
	case invalid:
		return http.StatusBadRequest, codes.InvalidArgument
	}
	return http.StatusInternalServerError, codes.Internal
}

// StateETagKind tells the state error constructors whether a store error
// is an ETag failure; the api package fills it with errors.Is against the
// state package's sentinels (apierr does not import components).
type StateETagKind struct {
	Mismatch bool
	Invalid  bool
}

// StateGet is a failed read (500, Internal). A pluggable store's own
// error keeps its HTTP status and reaches gRPC callers as it came, as in
// daprd (kit.go).
func StateGet(key, store string, err error) *Error {
	msg := fmt.Sprintf("fail to get %s from state store %s: %s", key, store, errText(err))
	if k, ok := kitOf(err); ok {
		return k.wrapped(CodeStateGet, msg)
	}
	return &Error{
		Code:       CodeStateGet,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.Internal,
		Message:    msg,
	}
}

// StateSave is a failed write: 409 on an ETag mismatch, 400 on an invalid
// ETag, else 500.
func StateSave(store string, kind StateETagKind, err error) *Error {
	msg := fmt.Sprintf("failed saving state in state store %s: %s", store, errText(err))
	if k, ok := kitOf(err); ok {
		return k.wrapped(CodeStateSave, msg)
	}
	hs, gc := etagStatus(kind.Mismatch, kind.Invalid)
	return &Error{
		Code:       CodeStateSave,
		HTTPStatus: hs,
		GRPCCode:   gc,
		Message:    msg,
	}
}

// StateDelete is a failed delete, with StateSave's statuses.
func StateDelete(key string, kind StateETagKind, err error) *Error {
	msg := fmt.Sprintf("failed deleting state with key %s: %s", key, errText(err))
	if k, ok := kitOf(err); ok {
		return k.wrapped(CodeStateDelete, msg)
	}
	hs, gc := etagStatus(kind.Mismatch, kind.Invalid)
	return &Error{
		Code:       CodeStateDelete,
		HTTPStatus: hs,
		GRPCCode:   gc,
		Message:    msg,
	}
}

// StateBulkDelete is a failed gRPC DeleteBulkState, with StateSave's
// statuses.
func StateBulkDelete(store string, kind StateETagKind, err error) *Error {
	msg := fmt.Sprintf("failed deleting state in state store %s: %s", store, errText(err))
	if k, ok := kitOf(err); ok {
		return k.wrapped(CodeStateBulkDelete, msg)
	}
	hs, gc := etagStatus(kind.Mismatch, kind.Invalid)
	return &Error{
		Code:       CodeStateBulkDelete,
		HTTPStatus: hs,
		GRPCCode:   gc,
		Message:    msg,
	}
}

// StateBulkGet is a failed bulk read as a whole (500, Internal).
//
// A pluggable store's own error is answered as daprd answers it: its HTTP
// status with ERR_STATE_BULK_GET and its text alone, and over gRPC as it
// came.
func StateBulkGet(store string, err error) *Error {
	if k, ok := kitOf(err); ok {
		return k.wrapped(CodeStateBulkGet, k.String())
	}
	return &Error{
		Code:       CodeStateBulkGet,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.Internal,
		Message:    fmt.Sprintf("failed getting state in bulk from state store %s: %v", store, err),
	}
}

// StateTransactionsNotSupported is a transaction on a store without them
// (500, Unimplemented), with daprd's Help link, ResourceInfo and ErrorInfo
// DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED.
func StateTransactionsNotSupported(store string) *Error {
	e := &Error{
		Code:       CodeStateStoreNotSupported,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.Unimplemented,
		Message:    fmt.Sprintf("state store %s doesn't support transactions", store),
	}
	return e.withHelp(stateStoresDocs, "Check the list of state stores and the features they support").
		withResource("state", store).withErrorInfo(ReasonStateTransactionsNotSupported, nil)
}

// StateTooManyTransactionalOps is a transaction over the store's limit
// (400, InvalidArgument), with ResourceInfo and ErrorInfo
// DAPR_STATE_TOO_MANY_TRANSACTIONS holding both counts.
func StateTooManyTransactionalOps(store string, count, limit int) *Error {
	e := &Error{
		Code:       CodeStateStoreTooManyOps,
		HTTPStatus: http.StatusBadRequest,
		GRPCCode:   codes.InvalidArgument,
		Message:    fmt.Sprintf("the transaction contains %d operations, which is more than what the state store supports: %d", count, limit),
	}
	return e.withResource("state", store).withErrorInfo(ReasonStateTooManyTransactions, map[string]string{
		"currentOpsTransaction": strconv.Itoa(count),
		"maxOpsPerTransaction":  strconv.Itoa(limit),
	})
}

// StateOperationNotSupported is a transaction operation other than upsert
// and delete: daprd answers 400 over HTTP and Unimplemented over gRPC.
func StateOperationNotSupported(op string) *Error {
	e := &Error{
		Code:       CodeStateOperationNotSupported,
		HTTPStatus: http.StatusBadRequest,
		GRPCCode:   codes.Unimplemented,
		Message:    fmt.Sprintf("operation type %s not supported", op),
	}
	return e.withHint("https://docs.dapr.io/reference/api/state_api/#state-transactions", "A transaction operation is upsert or delete")
}

// StateTransaction is a failed transaction (500, Internal; daprd does not
// single out ETag failures here).
func StateTransaction(err error) *Error {
	return &Error{
		Code:       CodeStateTransaction,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.Internal,
		Message:    fmt.Sprintf("error while executing state transaction: %s", errText(err)),
	}
}

// StateQueryUnsupported is a query to a store without the query API (500,
// Internal), with ResourceInfo and ErrorInfo
// DAPR_STATE_QUERYING_NOT_SUPPORTED.
func StateQueryUnsupported(store string) *Error {
	e := &Error{
		Code:       CodeStateStoreNotSupported,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.Internal,
		Message:    "state store does not support querying",
	}
	return e.withResource("state", store).withErrorInfo(ReasonStateQueryingNotSupported, nil)
}

// StateQueryFailed is a query that could not be parsed or run (500,
// Internal), with ResourceInfo and ErrorInfo DAPR_STATE_QUERY_FAILED.
func StateQueryFailed(store, detail string) *Error {
	e := &Error{
		Code:       CodeStateQuery,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.Internal,
		Message:    fmt.Sprintf("state store %s query failed: %s", store, detail),
	}
	return e.withResource("state", store).withErrorInfo(ReasonStateQueryFailed, nil)
}

// SecretStoresNotConfigured is a secrets request when no secret store is
// loaded (500, FailedPrecondition), with a Help detail saying how to add
// one.
func SecretStoresNotConfigured() *Error {
	e := &Error{
		Code:       CodeSecretStoresNotConfigured,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.FailedPrecondition,
		Message:    "secret store is not configured",
	}
	// No help link: daprd's body is exactly errorCode and message, and
	// clients match it whole (hotreload/selfhosted/secret).
	return e
}

// SecretStoreNotFound is a request naming an unknown secret store. daprd
// really answers 401 (and InvalidArgument over gRPC).
func SecretStoreNotFound(name string) *Error {
	return &Error{
		Code:       CodeSecretStoreNotFound,
		HTTPStatus: http.StatusUnauthorized,
		GRPCCode:   codes.InvalidArgument,
		Message:    fmt.Sprintf("failed finding secret store with key %s", name),
	}
}

// SecretStoreNotReady is StateStoreNotReady for secret stores.
func SecretStoreNotReady(name string, err error) *Error {
	return &Error{
		Code:       CodeSecretStoreNotReady,
		HTTPStatus: http.StatusServiceUnavailable,
		GRPCCode:   codes.Unavailable,
		Message:    fmt.Sprintf("secret store %s is not ready yet, retry later: %v", name, err),
	}
}

// SecretPermissionDenied is a secret refused by the Configuration's
// secrets.scopes (403, PermissionDenied).
func SecretPermissionDenied(key, store string) *Error {
	return &Error{
		Code:       CodePermissionDenied,
		HTTPStatus: http.StatusForbidden,
		GRPCCode:   codes.PermissionDenied,
		Message:    fmt.Sprintf("access denied by policy to get %q from %q", key, store),
	}
}

// SecretGet is a failed secret read (500, Internal). err comes from the
// store, whose errors never carry secret values.
func SecretGet(key, store string, err error) *Error {
	return &Error{
		Code:       CodeSecretGet,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.Internal,
		Message:    fmt.Sprintf("failed getting secret with key %s from secret store %s: %v", key, store, err),
	}
}

// SecretBulkGet is a failed bulk secret read (500, Internal).
func SecretBulkGet(store string, err error) *Error {
	return &Error{
		Code:       CodeSecretGet,
		HTTPStatus: http.StatusInternalServerError,
		GRPCCode:   codes.Internal,
		Message:    fmt.Sprintf("failed getting secrets from secret store %s: %v", store, err),
	}
}

// IsCode reports whether err is (or wraps) an *Error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
