//go:build !wasip1

package wasmapp

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestDaprAsProcessApp: built natively, Dapr calls the sidecar on
// DAPR_HTTP_PORT with DAPR_API_TOKEN.
func TestDaprAsProcessApp(t *testing.T) {
	var got *http.Request
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	t.Setenv("DAPR_HTTP_PORT", port)
	t.Setenv("DAPR_API_TOKEN", "tok")
	resp, err := Dapr.Post(API+"/v1.0/state/statestore", "application/json", strings.NewReader(`[]`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || got.URL.Path != "/v1.0/state/statestore" || got.Header.Get("Dapr-Api-Token") != "tok" || body != "[]" {
		t.Fatalf("got %d %s %v %q", resp.StatusCode, got.URL, got.Header, body)
	}
}

// TestEncodeRequest: what the guest sends is what the host reads.
func TestEncodeRequest(t *testing.T) {
	r, _ := http.NewRequest(http.MethodPost, API+"/v1.0/publish/pubsub/orders?metadata.ttl=5", strings.NewReader(`{"a":1}`))
	r.Header.Set("Content-Type", "application/json")
	wire, err := EncodeRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(wire)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(back.Body)
	if back.Method != http.MethodPost || back.URL.RequestURI() != "/v1.0/publish/pubsub/orders?metadata.ttl=5" || back.Header.Get("Content-Type") != "application/json" || string(b) != `{"a":1}` {
		t.Fatalf("read back %s %s %v %q", back.Method, back.URL, back.Header, b)
	}
}
