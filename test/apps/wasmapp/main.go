// Command wasmapp is the Wasm app of the tests and benchmarks, built with
// the wasmapp package: GOOS=wasip1 GOARCH=wasm -buildmode=c-shared gives
// the module tandemd --app-wasm hosts; a native build is the same handler
// as a process app (APP_PORT, DAPR_HTTP_PORT).
//
//	POST /echo          answers the body with its Content-Type
//	GET  /trap?n=N      panics when N is odd (the guest traps), else 200 "even"
//	POST /state/{key}   saves the body under key in statestore through the Dapr API
//	GET  /state/{key}   reads it back through the Dapr API
//	POST /publish/{t}   publishes the body (with its Content-Type) to topic t of pubsub
//	GET  /dapr/subscribe  subscribes /received to topic "deliveries" of pubsub
//	POST /received      saves the delivered event's data under "received-<id>"
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/tandemrun/tandem/wasmapp"
)

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if ct := r.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /trap", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if n%2 == 1 {
			panic(fmt.Sprintf("odd input %d", n))
		}
		_, _ = io.WriteString(w, "even")
	})
	mux.HandleFunc("POST /state/{key}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		save(w, r.PathValue("key"), b)
	})
	mux.HandleFunc("GET /state/{key}", func(w http.ResponseWriter, r *http.Request) {
		relay(w, get("/v1.0/state/statestore/"+r.PathValue("key")))
	})
	mux.HandleFunc("POST /publish/{topic}", func(w http.ResponseWriter, r *http.Request) {
		relay(w, post("/v1.0/publish/pubsub/"+r.PathValue("topic"), r.Header.Get("Content-Type"), r.Body))
	})
	mux.HandleFunc("GET /dapr/subscribe", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `[{"pubsubname":"pubsub","topic":"deliveries","route":"/received"}]`)
	})
	mux.HandleFunc("POST /received", func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			ID   string          `json:"id"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		save(w, "received-"+ev.ID, ev.Data)
	})
	wasmapp.Handle(mux)
}

func main() { wasmapp.Main() }

func save(w http.ResponseWriter, key string, value []byte) {
	if !json.Valid(value) {
		value, _ = json.Marshal(string(value))
	}
	body, _ := json.Marshal([]map[string]json.RawMessage{{"key": json.RawMessage(strconv.Quote(key)), "value": value}})
	relay(w, post("/v1.0/state/statestore", "application/json", bytes.NewReader(body)))
}

type result struct {
	resp *http.Response
	err  error
}

func get(path string) result {
	resp, err := wasmapp.Dapr.Get(wasmapp.API + path)
	return result{resp, err}
}

func post(path, contentType string, body io.Reader) result {
	resp, err := wasmapp.Dapr.Post(wasmapp.API+path, contentType, body)
	return result{resp, err}
}

// relay answers with the Dapr API's answer.
func relay(w http.ResponseWriter, res result) {
	if res.err != nil {
		http.Error(w, res.err.Error(), http.StatusBadGateway)
		return
	}
	defer res.resp.Body.Close()
	if ct := res.resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(res.resp.StatusCode)
	_, _ = io.Copy(w, res.resp.Body)
}
