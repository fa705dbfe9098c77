package wasm

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkHeaderGuest measures the per-request cost of a guest that reads
// one request header and passes the request on, against the same handler
// without the middleware:
//
//	go test -run XXX -bench . -benchtime 2s ./components/middleware/wasm/
func BenchmarkHeaderGuest(b *testing.B) {
	nop := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	run := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r := httptest.NewRequest(http.MethodGet, "/v1.0/invoke/app/method/x", nil)
				r.Header.Set("X-Probe", "1")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				if rec.Code != http.StatusNoContent {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
	guest := newMiddleware(b, map[string]string{"guestConfig": "header"}).Handler(nop)
	b.Run("none", func(b *testing.B) { run(b, nop) })
	b.Run("wasm", func(b *testing.B) { run(b, guest) })
}
