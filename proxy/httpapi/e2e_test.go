package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/appchannel"
)

// localInvoker delivers every invocation to one app channel, as a sidecar
// calling its own app would.
type localInvoker struct{ ch invoke.AppChannel }

func (l localInvoker) Invoke(ctx context.Context, _ string, req *invoke.Request) (*invoke.Response, error) {
	return l.ch.Invoke(ctx, req)
}

// TestThroughHTTPAppChannel runs the HTTP API in front of the real HTTP app
// channel and a real app: what the caller sends is what the app sees, and
// back.
func TestThroughHTTPAppChannel(t *testing.T) {
	big := make([]byte, 5<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method+" "+r.URL.RequestURI())
		w.Header().Set("X-Got", r.Header.Get("X-Custom")+"|"+r.Header.Get("Content-Type")+"|"+r.Header.Get("Dapr-App-Id"))
		w.Header().Set("X-Len", strconv.Itoa(len(b)))
		w.Header().Set("Content-Type", "application/x-echo")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(b)
	}))
	defer app.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(app.URL, "http://"))
	p, _ := strconv.Atoi(port)
	ch, err := appchannel.NewHTTP(appchannel.HTTPConfig{Address: host, Port: p})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	srv := serve(t, Config{Invoker: localInvoker{ch}, MaxRequestBodySize: 8 << 20})

	req, _ := http.NewRequest("PUT", srv.URL+"/v1.0/invoke/me/method/files/a%20b?x=1&y=%2F", chunked{bytes.NewReader(big)})
	req.Header.Set("X-Custom", "c")
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Content-Type") != "application/x-echo" {
		t.Errorf("status %d content-type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := resp.Header.Get("X-Method"); got != "PUT /files/a%20b?x=1&y=%2F" {
		t.Errorf("app saw %q", got)
	}
	if got := resp.Header.Get("X-Got"); got != "c|application/octet-stream|" {
		t.Errorf("app headers %q", got)
	}
	if resp.Header.Get("X-Len") != strconv.Itoa(len(big)) || !bytes.Equal(body, big) {
		t.Errorf("echo differs: %s bytes at app, %d back", resp.Header.Get("X-Len"), len(body))
	}
}
