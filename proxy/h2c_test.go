package proxy

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tandemrun/tandem/proxy/h1server"
)

// TestWithH2C: HTTP/2 with prior knowledge, the h2c upgrade and HTTP/1
// on one port, behind net/http's server and behind h1server (the API's).
func TestWithH2C(t *testing.T) {
	h := withH2C(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Run("net/http", func(t *testing.T) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		testH2C(t, srv.URL)
	})
	t.Run("h1server", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &h1server.Server{Handler: h}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		testH2C(t, "http://"+ln.Addr().String())
	})
}

func testH2C(t *testing.T, url string) {

	// HTTP/2 with prior knowledge, no TLS.
	prior := new(http.Protocols)
	prior.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: &http.Transport{Protocols: prior}}
	defer h2.CloseIdleConnections()
	h1 := &http.Client{Transport: &http.Transport{}}
	defer h1.CloseIdleConnections()
	res, err := h2.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.ProtoMajor != 2 || res.StatusCode != http.StatusNoContent {
		t.Errorf("prior knowledge: %s %d, want HTTP/2 204", res.Proto, res.StatusCode)
	}

	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
	req.Header.Set("Upgrade", "h2c")
	req.Header.Set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
	res, err = h1.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Upgrade") != "h2c" {
		t.Errorf("upgrade: %d Upgrade=%q, want 101 h2c", res.StatusCode, res.Header.Get("Upgrade"))
	}

	res, err = h1.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.ProtoMajor != 1 || res.StatusCode != http.StatusNoContent {
		t.Errorf("HTTP/1: %s %d", res.Proto, res.StatusCode)
	}
}
