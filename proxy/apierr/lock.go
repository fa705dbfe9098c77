package apierr

import (
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
)

// Dapr's distributed lock error codes.
const (
	CodeLockStoreNotConfigured = "ERR_LOCK_STORE_NOT_CONFIGURED"
	CodeLockStoreNotFound      = "ERR_LOCK_STORE_NOT_FOUND"
	CodeTryLock                = "ERR_TRY_LOCK"
	CodeUnlock                 = "ERR_UNLOCK"
)

func lockErr(code string, httpStatus int, grpcCode codes.Code, msg string) *Error {
	return &Error{Code: code, HTTPStatus: httpStatus, GRPCCode: grpcCode, Message: msg}
}

// LockStoresNotConfigured: no lock store is loaded.
func LockStoresNotConfigured() *Error {
	return lockErr(CodeLockStoreNotConfigured, http.StatusInternalServerError, codes.FailedPrecondition, "lock store is not configured")
}

// LockStoreNotFound: no lock store by that name.
func LockStoreNotFound(store string) *Error {
	return lockErr(CodeLockStoreNotFound, http.StatusBadRequest, codes.InvalidArgument, fmt.Sprintf("lock store %s not found", store))
}

// LockRequestField is a lock request without a required field (ResourceId,
// LockOwner) or with a non-positive ExpiryInSeconds, in daprd's words.
func LockRequestField(format, store string) *Error {
	return lockErr(CodeMalformedRequest, http.StatusBadRequest, codes.InvalidArgument, fmt.Sprintf(format, store))
}

// TryLock is a failed TryLock.
func TryLock(err error) *Error {
	return lockErr(CodeTryLock, http.StatusInternalServerError, codes.Internal, fmt.Sprintf("failed to try acquiring lock: %v", err))
}

// Unlock is a failed Unlock.
func Unlock(err error) *Error {
	return lockErr(CodeUnlock, http.StatusInternalServerError, codes.Internal, fmt.Sprintf("failed to release lock: %v", err))
}
