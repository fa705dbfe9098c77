package resiliency

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// StatusError tells Do what an attempt's outcome was in protocol terms, so
// matching rules can decide whether to retry and breakers whether it counts. Set HTTP
// for an HTTP status, or leave it 0 and set GRPC for a gRPC code.
//
// An op that got a response it must pass on (say a 503 with a body) returns
// the response together with a StatusError; if Do gives up, the caller gets
// that last response and the error, and can relay the response as is.
type StatusError struct {
	HTTP int
	GRPC codes.Code
	Err  error // optional cause
}

func (e *StatusError) Error() string {
	var s string
	if e.HTTP != 0 {
		s = fmt.Sprintf("HTTP status %d", e.HTTP)
	} else {
		s = "gRPC status " + e.GRPC.String()
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *StatusError) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying; Do returns it unwrapped
// (errors.Is and errors.As still see through it).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// ErrBreakerOpen matches (errors.Is) the error Do returns when a circuit
// breaker rejects a call without running it.
var ErrBreakerOpen = errors.New("circuit breaker open")

// BreakerOpenError says which breaker rejected a call and when it will let
// a trial call through.
type BreakerOpenError struct {
	Target   string    // e.g. app "orders"
	Policy   string    // the circuitBreakers entry
	HalfOpen bool      // true: half-open and its trial calls are in flight
	RetryAt  time.Time // when the open breaker turns half-open
}

func (e *BreakerOpenError) Error() string {
	if e.HalfOpen {
		return fmt.Sprintf("circuit breaker %q for %s is half-open and its trial calls are in flight; failing fast, try again shortly", e.Policy, e.Target)
	}
	return fmt.Sprintf("circuit breaker %q for %s is open; failing fast until %s (in %s), then a trial call is let through",
		e.Policy, e.Target, e.RetryAt.UTC().Format(time.RFC3339), time.Until(e.RetryAt).Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrBreakerOpen) true.
func (e *BreakerOpenError) Is(target error) bool { return target == ErrBreakerOpen }

// httpClientError reports 4xx statuses that say the request itself is wrong
// (not 408 Request Timeout or 429 Too Many Requests): repeating it cannot
// help, and the callee is healthy.
func httpClientError(code int) bool {
	return code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
}

// grpcClientError is the gRPC counterpart of httpClientError: codes that map
// to such 4xx statuses.
func grpcClientError(c codes.Code) bool {
	switch c {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied,
		codes.FailedPrecondition, codes.OutOfRange, codes.Unimplemented, codes.Unauthenticated,
		codes.Canceled:
		return true
	}
	return false
}

// statusOf finds an outcome's HTTP status or gRPC code in err: a
// StatusError, or an error carrying a gRPC status.
func statusOf(err error) (httpCode int, grpcCode codes.Code, ok bool) {
	var se *StatusError
	if errors.As(err, &se) {
		return se.HTTP, se.GRPC, true
	}
	var gs interface{ GRPCStatus() *status.Status }
	if errors.As(err, &gs) {
		return 0, gs.GRPCStatus().Code(), true
	}
	return 0, 0, false
}

// Retryable reports whether an attempt that failed with err may be retried
// under m. As in daprd, a matching list, when set, decides for outcomes
// with a status of its protocol; without one, every failure is retried,
// 4xx answers and gRPC client-error codes included. Errors without a status
// (connection refused, attempt timeout) are retried. Permanent errors, open
// breakers and the caller's own cancellation are never retried.
func Retryable(err error, m Matching) bool {
	if err == nil {
		return false
	}
	var pe *permanentError
	if errors.As(err, &pe) || errors.Is(err, ErrBreakerOpen) || errors.Is(err, context.Canceled) {
		return false
	}
	h, g, ok := statusOf(err)
	switch {
	case !ok:
		return true
	case h != 0:
		return m.HTTP == nil || inRanges(h, m.HTTP)
	default:
		return m.GRPC == nil || inRanges(int(g), m.GRPC)
	}
}

// targetFault reports whether err counts against the target's health (for
// breakers and ejection): client errors and the caller's cancellation
// do not.
func targetFault(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if h, g, ok := statusOf(err); ok {
		if h != 0 {
			return !httpClientError(h)
		}
		return !grpcClientError(g)
	}
	return true
}
