package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/proxy/headers"
)

// Baggage goes to the app and back in the response as it came; malformed
// baggage gets daprd's 400; health checks are not looked at.
func TestBaggage(t *testing.T) {
	inv := &fakeInvoker{}
	srv := httptest.NewServer(Baggage(New(Config{Invoker: inv, Ready: func() bool { return true }})))
	t.Cleanup(srv.Close)

	resp, _ := do(t, "POST", srv.URL+"/v1.0/invoke/app/method/test", strings.NewReader("{}"), map[string]string{"Baggage": "key1=value1,key2=value2"})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Baggage") != "key1=value1,key2=value2" {
		t.Errorf("got %d, baggage %q", resp.StatusCode, resp.Header.Get("Baggage"))
	}
	inv.mu.Lock()
	got := headers.First(inv.calls[len(inv.calls)-1].req.Message.GetMetadata(), "baggage")
	inv.mu.Unlock()
	if got != "key1=value1,key2=value2" {
		t.Errorf("app got baggage %q", got)
	}

	resp, body := do(t, "POST", srv.URL+"/v1.0/invoke/app/method/test", strings.NewReader("{}"), map[string]string{"Baggage": "invalid-baggage"})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "invalid baggage header") {
		t.Errorf("malformed baggage: %d %q", resp.StatusCode, body)
	}
	resp, _ = do(t, "GET", srv.URL+"/v1.0/healthz", nil, map[string]string{"Baggage": "invalid-baggage"})
	if resp.StatusCode == http.StatusBadRequest {
		t.Error("health check refused for its baggage")
	}
	resp, _ = do(t, "POST", srv.URL+"/v1.0/invoke/app/method/test", nil, nil)
	if resp.Header.Get("Baggage") != "" {
		t.Errorf("baggage %q without any sent", resp.Header.Get("Baggage"))
	}
}
