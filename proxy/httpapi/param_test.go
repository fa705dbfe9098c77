package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

func TestDaprParam(t *testing.T) {
	mux := http.NewServeMux()
	var got [2]string
	mux.HandleFunc("GET /v1.0/secrets/{secretStoreName}/{key}", func(_ http.ResponseWriter, r *http.Request) {
		got = [2]string{daprParam(r, "secretStoreName"), daprParam(r, "key")}
	})
	for _, name := range []string{"plain", "a b", "a+b", "x'y", "日本 語", "a%b"} {
		t.Run(name, func(t *testing.T) {
			got = [2]string{}
			req := httptest.NewRequest(http.MethodGet, "/v1.0/secrets/"+url.QueryEscape(name)+"/k+1", nil)
			mux.ServeHTTP(httptest.NewRecorder(), req)
			if got != [2]string{name, "k 1"} {
				t.Errorf("got %q, want [%q \"k 1\"]", got, name)
			}
		})
	}
	// Without a pattern segment to match, the decoded value is kept.
	req := httptest.NewRequest(http.MethodGet, "/x/a+b", nil)
	req.SetPathValue("other", "a+b")
	if v := daprParam(req, "other"); v != "a+b" {
		t.Errorf("no pattern: %q", v)
	}
}
