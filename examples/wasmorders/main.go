// Command wasmorders is an example Wasm app: a plain net/http handler that
// the sidecar hosts in process, keeping orders in the state store and
// announcing them on a topic through the Dapr API.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o orders.wasm ./examples/wasmorders
//	tandem run --app-id orders --wasm orders.wasm
//	curl -X POST -d '{"id":"1","item":"beans"}' http://localhost:<dapr-http-port>/v1.0/invoke/orders/method/orders
//	curl http://localhost:<dapr-http-port>/v1.0/invoke/orders/method/orders/1
//
// Built natively (go build ./examples/wasmorders) it is the same app as a
// process: tandem run --app-id orders --app-port 8080 -- ./wasmorders.
package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	"github.com/tandemrun/tandem/wasmapp"
)

// Order is what the app keeps.
type Order struct {
	ID   string `json:"id"`
	Item string `json:"item"`
}

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", create)
	mux.HandleFunc("GET /orders/{id}", read)
	wasmapp.Handle(mux)
}

func main() { wasmapp.Main() }

// create saves the order and publishes it to topic "orders" of "pubsub".
func create(w http.ResponseWriter, r *http.Request) {
	var o Order
	if err := json.NewDecoder(r.Body).Decode(&o); err != nil || o.ID == "" {
		http.Error(w, `give {"id":"...","item":"..."}`, http.StatusBadRequest)
		return
	}
	value, _ := json.Marshal(o)
	state, _ := json.Marshal([]map[string]any{{"key": "order-" + o.ID, "value": json.RawMessage(value)}})
	if !post(w, "/v1.0/state/statestore", state) || !post(w, "/v1.0/publish/pubsub/orders", value) {
		return
	}
	w.WriteHeader(http.StatusCreated)
}

// read answers the order from the state store.
func read(w http.ResponseWriter, r *http.Request) {
	resp, err := wasmapp.Dapr.Get(wasmapp.API + "/v1.0/state/statestore/order-" + r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// post calls the Dapr API and reports whether it succeeded; if not, it
// answers the error.
func post(w http.ResponseWriter, path string, body []byte) bool {
	resp, err := wasmapp.Dapr.Post(wasmapp.API+path, "application/json", bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		http.Error(w, string(b), resp.StatusCode)
		return false
	}
	return true
}
