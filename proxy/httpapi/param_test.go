package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
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

// splitParams is pathParams as it was written first, by splitting both
// strings: the reference FuzzPathParams holds the walk to.
func splitParams(pattern, path string, set func(name, value string)) {
	segs := strings.Split(pattern, "/")
	raw := strings.Split(path, "/")
	for i, s := range segs {
		name, ok := strings.CutPrefix(s, "{")
		if !ok || i >= len(raw) {
			continue
		}
		name = strings.TrimSuffix(name, "}")
		v := raw[i]
		if rest, ok := strings.CutSuffix(name, "..."); ok {
			name, v = rest, strings.Join(raw[i:], "/")
		} else if len(segs) != len(raw) {
			continue
		}
		set(name, v)
	}
}

func FuzzPathParams(f *testing.F) {
	f.Add("/v1.0/state/{storeName}/{key}", "/v1.0/state/s/k%2B1")
	f.Add("/v1.0/publish/{pubsub}/{topic...}", "/v1.0/publish/ps/a/b/c")
	f.Add("/v1.0/actors/{actorType}/{actorId}/method/{method...}", "/v1.0/actors/T/1/method/")
	f.Add("/{a}/{b}", "/x")
	f.Add("{a}", "")
	f.Fuzz(func(t *testing.T, pattern, path string) {
		var want, got []string
		splitParams(pattern, path, func(n, v string) { want = append(want, n, v) })
		pathParams(pattern, path, func(n, v string) { got = append(got, n, v) })
		if !slices.Equal(got, want) {
			t.Fatalf("pathParams(%q, %q) sets %q, want %q", pattern, path, got, want)
		}
	})
}
