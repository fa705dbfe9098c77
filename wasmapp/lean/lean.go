// Package lean turns a Go handler into a lean Wasm app that the Tandem
// sidecar hosts in process (tandemd --app-wasm app.wasm), without net/http
// in the module: the handler takes a compact Request (method, path, header
// lines, body) and fills a Response. The sidecar writes each request into
// the app's linear memory and makes one call (export lean_handle), which
// returns where the answer lies; the app's calls to the Dapr API are one
// host call each (tandem.lean_dapr_call). Buffers are kept from one request
// to the next, and no goroutine is started, so a request allocates little
// in the guest and its garbage collector seldom runs. The module of a small
// app is about a sixth of a net/http one (1.8 against 10.5 MiB), and a
// sidecar's start from its compile cache costs about as much less. The layout is internal/leanwire's.
//
// An app is a main package that sets its handler in init (the module is a
// reactor: main never runs), built with Go 1.24 or later:
//
//	func init() { lean.Handle(serve) }
//	func main() { lean.Main() } // a process app when built natively
//
//	func serve(w *lean.Response, r *lean.Request) {
//		switch r.Route() {
//		case "POST /echo":
//			w.Header = append(w.Header, lean.Header{Name: "Content-Type", Value: r.Header.Get("Content-Type")})
//			w.Body = append(w.Body, r.Body...)
//		default:
//			w.Status = 404
//		}
//	}
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o app.wasm .
//
// and, inside a handler, a call to the Dapr API:
//
//	resp, err := lean.Dapr("POST", "/v1.0/state/statestore", body, lean.Header{Name: "Content-Type", Value: "application/json"})
//
// Keep the module small: fmt, net/http and encoding/json each pull in a lot
// of code, and the time to start an instance grows with the module.
//
// A request's strings and body point into the app's request buffer, and a
// Dapr answer into its answer buffer: both are valid until the handler
// returns (the answer: until the next Dapr call); copy what is kept longer
// (strings.Clone, bytes.Clone). A handler that panics fails its request
// with a 500, and the sidecar replaces the instance.
//
// Built for any other platform, the same app is a process app: Main serves
// the handler on APP_PORT, and Dapr calls the sidecar on DAPR_HTTP_PORT.
package lean

// Header is one header line: a header with two values is two lines.
type Header struct{ Name, Value string }

// Headers are a request's or a response's header lines.
type Headers []Header

// Get is the value of the first line named name (ASCII case-insensitive),
// or "".
func (h Headers) Get(name string) string {
	for _, f := range h {
		if equalFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Request is a call to the app.
type Request struct {
	Method string
	// URI is the path and query as sent: "/orders/1?full=true".
	URI    string
	Header Headers
	Body   []byte
}

// Path is URI without the query.
func (r *Request) Path() string {
	for i := 0; i < len(r.URI); i++ {
		if r.URI[i] == '?' {
			return r.URI[:i]
		}
	}
	return r.URI
}

// Query is URI's query (after "?"), or "".
func (r *Request) Query() string {
	for i := 0; i < len(r.URI); i++ {
		if r.URI[i] == '?' {
			return r.URI[i+1:]
		}
	}
	return ""
}

// Route is "METHOD /path", for a switch.
func (r *Request) Route() string { return r.Method + " " + r.Path() }

// Response is the app's answer (or a Dapr API answer): Status 0 is 200.
type Response struct {
	Status int
	Header Headers
	Body   []byte
}

// Handler serves one request into w, which starts empty.
type Handler func(w *Response, r *Request)

var handler Handler = func(w *Response, _ *Request) { w.Status = 404 }

// Handle sets the handler every call to the app goes to. Call it from init.
func Handle(h Handler) { handler = h }

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
