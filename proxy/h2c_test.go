package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWithH2C(t *testing.T) {
	srv := httptest.NewServer(withH2C(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})))
	defer srv.Close()

	// HTTP/2 with prior knowledge, no TLS.
	prior := new(http.Protocols)
	prior.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: &http.Transport{Protocols: prior}}
	defer h2.CloseIdleConnections()
	h1 := &http.Client{Transport: &http.Transport{}}
	defer h1.CloseIdleConnections()
	res, err := h2.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.ProtoMajor != 2 || res.StatusCode != http.StatusNoContent {
		t.Errorf("prior knowledge: %s %d, want HTTP/2 204", res.Proto, res.StatusCode)
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
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

	res, err = h1.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.ProtoMajor != 1 || res.StatusCode != http.StatusNoContent {
		t.Errorf("HTTP/1: %s %d", res.Proto, res.StatusCode)
	}
}
