package state

import "errors"

// Sentinel errors callers branch on; backends wrap them with context
// (fmt.Errorf("set %q: %w", key, ErrETagMismatch)) and callers test with
// errors.Is.
var (
	// ErrETagMismatch: the ETag did not match the stored one, the key does
	// not exist while an ETag was given, or first-write found an existing
	// key. Dapr answers 409 Conflict (HTTP) / Aborted (gRPC).
	ErrETagMismatch = errors.New("possible etag mismatch: the key was changed or deleted since it was read; read it again to get its current etag")
	// ErrETagInvalid: the ETag is not in the store's format (Redis and
	// PostgreSQL use integers). Dapr answers 400 Bad Request.
	ErrETagInvalid = errors.New("invalid etag value: pass the etag exactly as returned by a get")
	// ErrNotSupported: the store does not have the capability (transactions,
	// query). Dapr answers ERR_STATE_STORE_NOT_SUPPORTED.
	ErrNotSupported = errors.New("operation not supported by this state store")
)
