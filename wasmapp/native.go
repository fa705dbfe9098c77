//go:build !wasip1

package wasmapp

import (
	"cmp"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

// Dapr is the client of the Dapr API of the app's sidecar (see API): as a
// process app, on 127.0.0.1:$DAPR_HTTP_PORT (3500 when unset), with
// $DAPR_API_TOKEN when set.
var Dapr = &http.Client{Transport: Transport{}}

var sidecar = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second}

// Transport sends requests to the sidecar's Dapr API.
type Transport struct{}

// RoundTrip implements http.RoundTripper.
func (Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme = "http"
	r.URL.Host = net.JoinHostPort("127.0.0.1", cmp.Or(os.Getenv("DAPR_HTTP_PORT"), "3500"))
	r.Host = r.URL.Host
	if t := os.Getenv("DAPR_API_TOKEN"); t != "" {
		r.Header.Set("Dapr-Api-Token", t)
	}
	return sidecar.RoundTrip(r)
}

// Main serves the handler on 127.0.0.1:$APP_PORT (8080 when unset), as a
// process app behind a sidecar; it returns only when serving fails.
func Main() {
	addr := net.JoinHostPort("127.0.0.1", cmp.Or(os.Getenv("APP_PORT"), "8080"))
	srv := &http.Server{Addr: addr, Handler: current(), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
