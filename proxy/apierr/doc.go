// Package apierr is Tandem's copy of Dapr's API error table: every error the
// public HTTP and gRPC APIs return is an *Error carrying Dapr's errorCode,
// HTTP status and gRPC code, so SDKs that branch on them behave as with
// daprd.
//
// Handlers build errors with the constructors (DirectInvoke, HealthNotReady,
// ...) and write them once, at the edge, with WriteHTTP or GRPC. Messages
// keep Dapr's wording where clients may match on it and add what to do next.
//
// The package imports nothing of Tandem's but invoke/resolve (to recognise
// an unknown app ID).
package apierr
