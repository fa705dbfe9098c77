// Package wasmapp turns a Go net/http handler into a Wasm app that the
// Tandem sidecar hosts in process (tandemd --app-wasm app.wasm): calls to
// the app (service invocation, pub/sub deliveries, bindings, job callbacks)
// reach the handler with no socket, and the app reaches the Dapr API
// through Dapr, an http.Client whose requests go into the sidecar through
// one host function, again with no socket.
//
// An app is a main package that registers its handler in init (the module
// is a reactor: main never runs) and is built with Go 1.24 or later:
//
//	func init() { wasmapp.Handle(mux) } // or http.HandleFunc(...) on http.DefaultServeMux
//	func main() { wasmapp.Main() }      // a process app when built natively
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o app.wasm .
//
// and, inside a handler:
//
//	resp, err := wasmapp.Dapr.Post(wasmapp.API+"/v1.0/state/statestore", "application/json", body)
//
// The module speaks the http-wasm handler ABI (https://http-wasm.io/http-handler-abi/,
// exports handle_request and handle_response) and imports one more host
// function, tandem.dapr_call, described in abi.go. It imports nothing else
// of Tandem's, so an app's module pulls in only net/http. The handler's
// answer is buffered and sent when it returns; a handler that panics fails
// its request with a 500, and the sidecar replaces the instance.
//
// For a smaller module, a faster start and a lower cost per request, see
// the lean ABI's package, wasmapp/lean: no net/http in the module.
//
// Built for any other platform, the same app is a process app: Main serves
// the handler on APP_PORT and Dapr calls the sidecar on DAPR_HTTP_PORT
// (tandem run and daprd set both), so one handler runs either way.
package wasmapp

import "net/http"

// API is the base URL of the Dapr API for Dapr's requests: the host part
// is ignored, every request goes to the sidecar that hosts the app.
const API = "http://dapr"

var handler http.Handler

// Handle sets the handler every call to the app goes to; without it,
// http.DefaultServeMux. Call it from init.
func Handle(h http.Handler) { handler = h }

func current() http.Handler {
	if handler == nil {
		return http.DefaultServeMux
	}
	return handler
}
