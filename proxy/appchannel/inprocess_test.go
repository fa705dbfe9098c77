package appchannel

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"

	"github.com/tandemrun/tandem/invoke"
)

func TestInProcessApp(t *testing.T) {
	var got *http.Request
	h, err := NewHTTP(HTTPConfig{APIToken: "app-token", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", r.URL.RequestURI())
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(append([]byte("got "), b...))
	})})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	req := &invoke.Request{
		Message: &internalsv1.InternalInvokeRequest{Message: &commonv1.InvokeRequest{
			Method: "orders/1", ContentType: "text/plain",
			HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_POST, Querystring: "a=b"},
		}},
		Body: strings.NewReader("body"), ContentLength: 4,
	}
	resp, err := h.Invoke(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Message.GetStatus().GetCode() != http.StatusCreated || string(b) != "got body" || resp.ContentLength != 8 {
		t.Fatalf("got %d %q (%d)", resp.Message.GetStatus().GetCode(), b, resp.ContentLength)
	}
	if got.URL.RequestURI() != "/orders/1?a=b" || got.Header.Get("Dapr-Api-Token") != "app-token" || got.Header.Get("Content-Type") != "text/plain" || got.RequestURI != "/orders/1?a=b" {
		t.Fatalf("the app got %s %v (RequestURI %q)", got.URL, got.Header, got.RequestURI)
	}
	if h.BaseURL() != "http://"+InProcessHost {
		t.Errorf("BaseURL %s", h.BaseURL())
	}
}
