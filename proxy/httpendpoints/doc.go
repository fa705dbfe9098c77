// Package httpendpoints invokes HTTP services outside Dapr, as daprd does:
// an HTTPEndpoint resource by its name (/v1.0/invoke/<name>/method/<path>
// sends to the endpoint's base URL with its headers and client TLS), or a
// base URL given in place of the app ID (/v1.0/invoke/http://host:port/method/<path>).
//
// Router is an invoke.Invoker that serves those targets and hands every
// other one to the next Invoker; proxy/resilient's decorator wraps it, so
// Resiliency policies for targets.apps.<endpoint name> apply. The endpoint
// set is replaced with Apply (start-up, hot reload); header values and TLS
// documents are resolved (environment, secret stores) on an endpoint's
// first call, and again after a change.
package httpendpoints
