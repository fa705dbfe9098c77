//go:build !wasip1

package lean

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestProcessApp: built natively, the handler serves net/http requests
// and Dapr calls the sidecar on DAPR_HTTP_PORT with DAPR_API_TOKEN.
func TestProcessApp(t *testing.T) {
	var got *http.Request
	var gotBody string
	sidecar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"saved":true}`)
	}))
	defer sidecar.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(sidecar.URL, "http://"))
	t.Setenv("DAPR_HTTP_PORT", port)
	t.Setenv("DAPR_API_TOKEN", "tok")
	Handle(func(w *Response, r *Request) {
		if r.Route() != "POST /save" || r.Query() != "k=1" || r.Header.Get("x-KIND") != "a" {
			w.Status = 400
			return
		}
		resp, err := Dapr("POST", "/v1.0/state/statestore", r.Body, Header{Name: "Content-Type", Value: "application/json"})
		if err != nil {
			w.Status = 502
			return
		}
		w.Status = 201
		w.Header = append(w.Header, Header{Name: "Content-Type", Value: resp.Header.Get("content-type")})
		w.Body = append(w.Body, resp.Body...)
	})
	app := httptest.NewServer(http.HandlerFunc(serveHTTP))
	defer app.Close()
	req, _ := http.NewRequest(http.MethodPost, app.URL+"/save?k=1", strings.NewReader(`[{"key":"k","value":1}]`))
	req.Header.Set("X-Kind", "a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 || string(b) != `{"saved":true}` || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("app answered %d %q %v", resp.StatusCode, b, resp.Header)
	}
	if got.URL.Path != "/v1.0/state/statestore" || got.Header.Get("Dapr-Api-Token") != "tok" || gotBody != `[{"key":"k","value":1}]` {
		t.Fatalf("sidecar got %s %v %q", got.URL, got.Header, gotBody)
	}
}

func TestRequestParts(t *testing.T) {
	for _, tc := range []struct{ uri, path, query string }{{"/a/b?x=1&y", "/a/b", "x=1&y"}, {"/a", "/a", ""}, {"/?", "/", ""}} {
		r := &Request{Method: "GET", URI: tc.uri}
		if r.Path() != tc.path || r.Query() != tc.query || r.Route() != "GET "+tc.path {
			t.Errorf("%s: path %q query %q route %q", tc.uri, r.Path(), r.Query(), r.Route())
		}
	}
	h := Headers{{"Content-Type", "a"}, {"content-type", "b"}}
	if h.Get("CONTENT-TYPE") != "a" || h.Get("Content-Typ") != "" || h.Get("X") != "" {
		t.Errorf("Get: %q %q", h.Get("CONTENT-TYPE"), h.Get("Content-Typ"))
	}
}
