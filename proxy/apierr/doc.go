// Package apierr is Tandem's copy of Dapr's API error table: every error the
// public HTTP and gRPC APIs return is an *Error carrying Dapr's errorCode,
// HTTP status and gRPC code, so SDKs that branch on them behave as with
// daprd.
//
// Handlers build errors with the constructors (DirectInvoke, HealthNotReady,
// ...) and write them once, at the edge, with WriteHTTP or GRPC. Errors
// that daprd 1.18 sends in its rich error model carry the same
// google.rpc.Status details (ErrorInfo with reason and domain "dapr.io",
// ResourceInfo, BadRequest, Help), in the gRPC status and in the "details"
// of the JSON body. Messages are daprd's, word for word; Tandem's advice
// goes in a google.rpc.Help detail. WriteHTTP also reports each error's code
// and category to the writer (ErrorRecorder) for dapr_error_code_total.
//
// The package imports nothing of Tandem's but invoke/resolve (to recognise
// an unknown app ID).
package apierr
