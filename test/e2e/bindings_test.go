package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestBindingsWithGoSDK: output bindings through the Go SDK's
// InvokeBinding (localstorage, and http to a server that answers 404), and
// a cron input binding delivered to the app at its route.
func TestBindingsWithGoSDK(t *testing.T) {
	ticks := make(chan http.Header, 16)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/tick" && r.Method == http.MethodPost {
			select {
			case ticks <- r.Header.Clone():
			default:
			}
		}
	}))
	defer app.Close()
	_, portText, _ := net.SplitHostPort(app.Listener.Addr().String())
	appPort, _ := strconv.Atoi(portText)
	missing := httptest.NewServer(http.NotFoundHandler())
	defer missing.Close()

	dir := t.TempDir()
	files := filepath.Join(dir, "files")
	res := filepath.Join(dir, "resources")
	if err := os.Mkdir(res, 0o755); err != nil {
		t.Fatal(err)
	}
	err := os.WriteFile(filepath.Join(res, "bindings.yaml"), []byte(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: files
spec:
  type: bindings.localstorage
  version: v1
  metadata:
  - name: rootPath
    value: "`+files+`"
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: missing
spec:
  type: bindings.http
  version: v1
  metadata:
  - name: url
    value: "`+missing.URL+`"
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: ticker
spec:
  type: bindings.cron
  version: v1
  metadata:
  - name: schedule
    value: "@every 200ms"
  - name: direction
    value: input
  - name: route
    value: /tick
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	sc := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "bindapp", AppPort: appPort, ResourcesDir: res})
	sc.WaitReady(t)
	c, err := dapr.NewClientWithAddress(sc.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	out, err := c.InvokeBinding(ctx, &dapr.InvokeBindingRequest{Name: "files", Operation: "create", Data: []byte("hello"), Metadata: map[string]string{"fileName": "a.txt"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Data) != `{"fileName":"a.txt"}` {
		t.Errorf("create answered %q", out.Data)
	}
	if b, _ := os.ReadFile(filepath.Join(files, "a.txt")); string(b) != "hello" {
		t.Errorf("file holds %q", b)
	}
	out, err = c.InvokeBinding(ctx, &dapr.InvokeBindingRequest{Name: "files", Operation: "get", Metadata: map[string]string{"fileName": "a.txt"}})
	if err != nil || string(out.Data) != "hello" {
		t.Fatalf("get = %v, %v", out, err)
	}
	if err := c.InvokeOutputBinding(ctx, &dapr.InvokeBindingRequest{Name: "files", Operation: "delete", Metadata: map[string]string{"fileName": "a.txt"}}); err != nil {
		t.Fatal(err)
	}

	_, err = c.InvokeBinding(ctx, &dapr.InvokeBindingRequest{Name: "nope", Operation: "create"})
	if st, _ := status.FromError(err); st.Code() != codes.Internal || !strings.Contains(st.Message(), "error invoking output binding nope") {
		t.Errorf("unknown binding: %v", err)
	}
	_, err = c.InvokeBinding(ctx, &dapr.InvokeBindingRequest{Name: "missing", Operation: "get"})
	if st, _ := status.FromError(err); st.Code() != codes.Internal || !strings.Contains(st.Message(), "received status code 404") {
		t.Errorf("404 from the http binding: %v", err)
	}

	// The HTTP API: the answer's metadata comes back as headers.
	resp, err := http.Post(sc.HTTPURL()+"/v1.0/bindings/missing", "application/json", strings.NewReader(`{"operation":"get"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || resp.Header.Get("Metadata.statuscode") != "404" || !strings.Contains(string(body), "ERR_INVOKE_OUTPUT_BINDING") {
		t.Errorf("HTTP 404 binding: %d %v %s", resp.StatusCode, resp.Header, body)
	}

	select {
	case h := <-ticks:
		if h.Get("readTimeUTC") == "" {
			t.Errorf("cron event without its metadata: %v", h)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cron input binding never reached the app")
	}
}
