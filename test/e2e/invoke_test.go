package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// mesh is sentry plus three apps with their sidecars: caller and callee
// (plain HTTP echo apps) and grpcsvc (a Dapr Go SDK gRPC app).
type mesh struct {
	sentry  *framework.Sentry
	caller  *framework.Sidecar
	callee  *framework.Sidecar
	grpcsvc *framework.Sidecar
}

func startMesh(t *testing.T, sentryOpts framework.SentryOptions) *mesh {
	t.Helper()
	m := &mesh{sentry: framework.StartSentry(t, bins, sentryOpts)}
	registry := filepath.Join(t.TempDir(), "registry.db")
	start := func(appID, bin, protocol string) *framework.Sidecar {
		app := framework.StartApp(t, appID+" app", bin, "APP_ID="+appID)
		return framework.StartSidecar(t, bins, framework.SidecarOptions{
			AppID: appID, AppPort: app.Port, AppProtocol: protocol, Sentry: m.sentry, Registry: registry,
		})
	}
	m.caller = start("caller", bins.Echo, "")
	m.callee = start("callee", bins.Echo, "")
	m.grpcsvc = start("grpcsvc", bins.GRPCEcho, "grpc")
	return m
}

func do(t *testing.T, method, url string, body io.Reader, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, b
}

func TestInvocation(t *testing.T) {
	m := startMesh(t, framework.SentryOptions{})
	base := m.caller.HTTPURL()

	t.Run("http verbs, path, query and headers", func(t *testing.T) {
		for _, verb := range []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
			var body io.Reader
			if verb != "GET" && verb != "OPTIONS" {
				body = strings.NewReader("payload-" + verb)
			}
			resp, got := do(t, verb, base+"/v1.0/invoke/callee/method/orders/42/items?x=1&y=a%20b&y=c", body,
				map[string]string{"X-Test-Header": "hello", "Content-Type": "text/plain"})
			if resp.StatusCode != 200 {
				t.Fatalf("%s: status %d body %s", verb, resp.StatusCode, got)
			}
			checks := map[string]string{
				"X-Echo-Method": verb, "X-Echo-Path": "/orders/42/items", "X-Echo-Query": "x=1&y=a%20b&y=c",
				"X-Echo-Header": "hello", "X-Echo-Caller": "caller", "X-Echo-Callee": "callee",
			}
			for h, want := range checks {
				if g := resp.Header.Get(h); g != want {
					t.Errorf("%s: %s = %q, want %q", verb, h, g, want)
				}
			}
			if body != nil && string(got) != "payload-"+verb {
				t.Errorf("%s: body %q", verb, got)
			}
		}
	})

	t.Run("dapr-app-id header form", func(t *testing.T) {
		resp, got := do(t, "POST", base+"/some/method?q=1", strings.NewReader("hi"), map[string]string{"dapr-app-id": "callee"})
		if resp.StatusCode != 200 || string(got) != "hi" || resp.Header.Get("X-Echo-Path") != "/some/method" || resp.Header.Get("X-Echo-Query") != "q=1" {
			t.Fatalf("status %d body %q path %q query %q", resp.StatusCode, got, resp.Header.Get("X-Echo-Path"), resp.Header.Get("X-Echo-Query"))
		}
	})

	t.Run("upstream status codes pass through", func(t *testing.T) {
		for _, code := range []int{201, 204, 400, 404, 418, 500, 503} {
			resp, _ := do(t, "GET", fmt.Sprintf("%s/v1.0/invoke/callee/method/status/%d", base, code), nil, nil)
			if resp.StatusCode != code || (code != 204 && resp.Header.Get("X-Echo-Status") != fmt.Sprint(code)) {
				t.Errorf("status %d: got %d (X-Echo-Status %q)", code, resp.StatusCode, resp.Header.Get("X-Echo-Status"))
			}
		}
	})

	t.Run("caller identity comes from the certificate", func(t *testing.T) {
		resp, _ := do(t, "GET", base+"/v1.0/invoke/callee/method/who", nil,
			map[string]string{"dapr-caller-app-id": "admin", "dapr-caller-namespace": "kube-system"})
		if got := resp.Header.Get("X-Echo-Caller"); got != "caller" {
			t.Fatalf("callee saw caller %q, want %q (forged header must be replaced)", got, "caller")
		}
	})

	t.Run("1 MiB bodies, known length and chunked", func(t *testing.T) {
		payload := make([]byte, 1<<20)
		_, _ = rand.Read(payload)
		resp, got := do(t, "POST", base+"/v1.0/invoke/callee/method/echo", bytes.NewReader(payload), map[string]string{"Content-Type": "application/octet-stream"})
		if resp.StatusCode != 200 || !bytes.Equal(got, payload) {
			t.Fatalf("known length: status %d, %d bytes back, equal=%v", resp.StatusCode, len(got), bytes.Equal(got, payload))
		}
		// io.MultiReader hides the length, so net/http sends it chunked.
		resp, got = do(t, "PUT", base+"/v1.0/invoke/callee/method/echo", io.MultiReader(bytes.NewReader(payload)), nil)
		if resp.StatusCode != 200 || !bytes.Equal(got, payload) {
			t.Fatalf("chunked: status %d, %d bytes back", resp.StatusCode, len(got))
		}
	})

	t.Run("200 concurrent calls", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				want := fmt.Sprintf("call-%d", i)
				resp, err := http.Post(base+"/v1.0/invoke/callee/method/echo", "text/plain", strings.NewReader(want))
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != want {
					errs <- fmt.Errorf("call %d: status %d body %q", i, resp.StatusCode, b)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("unknown app and missing app id", func(t *testing.T) {
		resp, body := do(t, "GET", base+"/v1.0/invoke/nosuchapp/method/x", nil, nil)
		var e struct{ ErrorCode, Message string }
		_ = json.Unmarshal(body, &e)
		if resp.StatusCode != 500 || e.ErrorCode != "ERR_DIRECT_INVOKE" || !strings.Contains(e.Message, "nosuchapp") {
			t.Fatalf("unknown app: status %d body %s", resp.StatusCode, body)
		}
		resp, body = do(t, "GET", base+"/v1.0/invoke//method/x", nil, nil)
		if resp.StatusCode != 404 || !strings.Contains(string(body), "ERR_DIRECT_INVOKE") {
			t.Fatalf("missing app id: status %d body %s", resp.StatusCode, body)
		}
		// The sidecar keeps serving.
		if resp, _ := do(t, "GET", base+"/v1.0/invoke/callee/method/ok", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("after bad requests: status %d", resp.StatusCode)
		}
	})

	t.Run("Dapr Go SDK over gRPC", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := dapr.NewClientWithAddressContext(ctx, m.caller.GRPCAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		out, err := c.InvokeMethodWithContent(ctx, "callee", "echo/sdk?k=v", "post", &dapr.DataContent{ContentType: "text/plain", Data: []byte("from sdk")})
		if err != nil || string(out) != "from sdk" {
			t.Fatalf("HTTP app via SDK: %q, %v", out, err)
		}
		out, err = c.InvokeMethodWithContent(ctx, "grpcsvc", "whoami", "post", &dapr.DataContent{ContentType: "text/plain", Data: []byte("?")})
		if err != nil || string(out) != "caller" {
			t.Fatalf("gRPC app whoami: %q, %v", out, err)
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		out, err = c.InvokeMethodWithContent(ctx, "grpcsvc", "echo", "post", &dapr.DataContent{ContentType: "application/octet-stream", Data: big})
		if err != nil || !bytes.Equal(out, big) {
			t.Fatalf("gRPC app 1 MiB echo: %d bytes, %v", len(out), err)
		}
		if _, err := c.InvokeMethod(ctx, "grpcsvc", "fail", "post"); err == nil {
			t.Fatal("gRPC app error was not returned to the SDK")
		}
	})

	t.Run("plain HTTP to a gRPC app", func(t *testing.T) {
		resp, body := do(t, "POST", base+"/v1.0/invoke/grpcsvc/method/whoami", strings.NewReader("x"), nil)
		if resp.StatusCode != 200 || string(body) != "caller" {
			t.Fatalf("status %d body %q", resp.StatusCode, body)
		}
	})
}
