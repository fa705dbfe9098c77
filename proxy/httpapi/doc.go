// Package httpapi serves Dapr's public HTTP API (daprd's port 3500) as an
// http.Handler: service invocation (/v1.0/invoke/{appId}/method/{method},
// the dapr-app-id header and Basic-auth forms), health, metadata and
// shutdown.
//
// Routing follows daprd: fixed routes match on the cleaned path; every
// other request falls back to service invocation, which answers 404
// ERR_DIRECT_INVOKE when no target app can be found. The invocation route is
// matched first, by prefix, because it is the hot path. Later building
// blocks add routes with Handler.Handle.
//
// The handler knows nothing of how invocations travel: it turns requests
// into invoke.Request for an Invoker and streams the invoke.Response back.
package httpapi
