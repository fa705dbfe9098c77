//lint:file-ignore SA1019 x/net's h2c handler is the only implementation of the h2c upgrade (101) that daprd answers.

package proxy

import (
	"net/http"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// withH2C serves HTTP/2 without TLS on the HTTP API besides HTTP/1, as
// daprd: with prior knowledge, and by upgrade from HTTP/1 ("Upgrade: h2c",
// answered 101). http.Server's Protocols covers prior knowledge only, so
// the upgrade needs x/net's handler.
func withH2C(h http.Handler) http.Handler {
	return h2c.NewHandler(h, &http2.Server{}) //nolint:staticcheck // as above
}
