// Command wasmlean is the lean Wasm app of the tests and benchmarks, built
// with the wasmapp/lean package (no net/http in the module): GOOS=wasip1
// GOARCH=wasm -buildmode=c-shared gives the module tandemd --app-wasm
// hosts; a native build is the same handler as a process app (APP_PORT,
// DAPR_HTTP_PORT). It answers as test/apps/wasmapp does:
//
//	POST /echo          answers the body with its Content-Type
//	GET  /trap?n=N      panics when N is odd (the guest traps), else 200 "even"
//	POST /state/{key}   saves the body (JSON) under key in statestore through the Dapr API
//	GET  /state/{key}   reads it back through the Dapr API
//	POST /publish/{t}   publishes the body (with its Content-Type) to topic t of pubsub
//	GET  /dapr/subscribe  subscribes /received to topic "deliveries" of pubsub
//	POST /received      saves the delivered event, whole, under "received-lean"
//	                    (the module has no JSON decoder to take its id and data)
package main

import (
	"strings"

	"github.com/tandemrun/tandem/wasmapp/lean"
)

func init() { lean.Handle(serve) }

func main() { lean.Main() }

func serve(w *lean.Response, r *lean.Request) {
	path := r.Path()
	switch {
	case r.Method == "POST" && path == "/echo":
		if ct := r.Header.Get("Content-Type"); ct != "" {
			w.Header = append(w.Header, lean.Header{Name: "Content-Type", Value: ct})
		}
		w.Body = append(w.Body, r.Body...)
	case r.Method == "GET" && path == "/trap":
		n, _ := strings.CutPrefix(r.Query(), "n=")
		if n != "" && (n[len(n)-1]-'0')%2 == 1 {
			panic("odd input " + n)
		}
		w.Body = append(w.Body, "even"...)
	case r.Method == "POST" && strings.HasPrefix(path, "/state/"):
		body := append(append(append(append([]byte(`[{"key":"`), path[len("/state/"):]...), `","value":`...), r.Body...), "}]"...)
		relay(w)(lean.Dapr("POST", "/v1.0/state/statestore", body, lean.Header{Name: "Content-Type", Value: "application/json"}))
	case r.Method == "GET" && strings.HasPrefix(path, "/state/"):
		relay(w)(lean.Dapr("GET", "/v1.0/state/statestore/"+path[len("/state/"):], nil))
	case r.Method == "POST" && strings.HasPrefix(path, "/publish/"):
		relay(w)(lean.Dapr("POST", "/v1.0/publish/pubsub/"+path[len("/publish/"):], r.Body, lean.Header{Name: "Content-Type", Value: r.Header.Get("Content-Type")}))
	case r.Method == "GET" && path == "/dapr/subscribe":
		w.Header = append(w.Header, lean.Header{Name: "Content-Type", Value: "application/json"})
		w.Body = append(w.Body, `[{"pubsubname":"pubsub","topic":"deliveries","route":"/received"}]`...)
	case r.Method == "POST" && path == "/received":
		body := append(append([]byte(`[{"key":"received-lean","value":`), r.Body...), "}]"...)
		relay(w)(lean.Dapr("POST", "/v1.0/state/statestore", body, lean.Header{Name: "Content-Type", Value: "application/json"}))
	default:
		w.Status = 404
	}
}

// relay answers what the Dapr API answered.
func relay(w *lean.Response) func(*lean.Response, error) {
	return func(resp *lean.Response, err error) { answer(w, resp, err) }
}

func answer(w *lean.Response, resp *lean.Response, err error) {
	if err != nil {
		w.Status = 502
		w.Body = append(w.Body, err.Error()...)
		return
	}
	w.Status = resp.Status
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header = append(w.Header, lean.Header{Name: "Content-Type", Value: ct})
	}
	w.Body = append(w.Body, resp.Body...)
}
