package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

func TestDaprParams(t *testing.T) {
	mux := http.NewServeMux()
	var got [2]string
	mux.Handle("GET /v1.0/secrets/{secretStoreName}/{key}", daprParams(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got = [2]string{r.PathValue("secretStoreName"), r.PathValue("key")}
	})))
	mux.Handle("POST /v1.0/publish/{pubsub}/{topic...}", daprParams(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got = [2]string{r.PathValue("pubsub"), r.PathValue("topic")}
	})))
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
	for path, want := range map[string][2]string{
		"/v1.0/publish/ps/a+b/c%2Bd": {"ps", "a b/c+d"},
		"/v1.0/publish/p+s/t":        {"p s", "t"},
		"/v1.0/publish/ps/%25zz":     {"ps", "%zz"},
	} {
		got = [2]string{}
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, path, nil))
		if got != want {
			t.Errorf("%s: got %q, want %q", path, got, want)
		}
	}
}

func FuzzDaprParams(f *testing.F) {
	for _, s := range []string{"a+b", "%2B", "x/y", "%zz", "", "a%2Fb/c"} {
		f.Add(s)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1.0/state/{storeName}/{key...}", daprParams(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	f.Fuzz(func(t *testing.T, s string) {
		u := &url.URL{Path: "/v1.0/state/s/" + s, RawPath: "/v1.0/state/s/" + s}
		req := &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}
		mux.ServeHTTP(httptest.NewRecorder(), req)
	})
}
