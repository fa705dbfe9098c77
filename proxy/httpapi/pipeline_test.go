package httpapi

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestPipelineBetweenTokenAndRouting: the middleware pipeline sees only
// requests that passed the API token check, and its rewrites are routed.
func TestPipelineBetweenTokenAndRouting(t *testing.T) {
	var calls atomic.Int32
	h := New(Config{APIToken: "tok", Pipeline: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			if r.Header.Get("Dapr-Api-Token") != "" {
				t.Error("the pipeline saw the API token")
			}
			if r.URL.Path == "/alias" {
				r.URL.Path = "/v1.0/healthz"
			}
			next.ServeHTTP(w, r)
		})
	}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/alias", nil))
	if rec.Code != http.StatusUnauthorized || calls.Load() != 0 {
		t.Fatalf("without a token: %d, pipeline called %d times", rec.Code, calls.Load())
	}
	r := httptest.NewRequest(http.MethodGet, "/alias", nil)
	r.Header.Set("Dapr-Api-Token", "tok")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusNoContent || calls.Load() != 1 {
		t.Fatalf("with a token: %d %q, pipeline called %d times", rec.Code, rec.Body.String(), calls.Load())
	}
}
