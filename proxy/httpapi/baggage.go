package httpapi

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/baggage"
)

// Baggage checks the W3C baggage header of every API request, as daprd's
// HTTP tracing middleware does whether tracing is on or not: a header that
// does not parse gets 400 "invalid baggage header: ..." (plain text, as
// daprd writes it); a valid one is echoed in the response, as it came, and
// travels on to the app with the other headers. Health checks are not
// looked at.
func Baggage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vals := r.Header.Values("Baggage")
		if len(vals) == 0 || strings.HasPrefix(r.URL.Path, "/v1.0/healthz") {
			next.ServeHTTP(w, r)
			return
		}
		joined := strings.Join(vals, ",")
		if _, err := baggage.Parse(joined); err != nil {
			http.Error(w, "invalid baggage header: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Baggage", joined)
		next.ServeHTTP(w, r)
	})
}
