package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemrun/tandem/internal/wasmguest/wasmguesttest"
	"github.com/tandemrun/tandem/test/e2e/framework"
)

// buildGuest builds the wasm middleware's test guest (Go, wasip1) from
// components/middleware/wasm/testdata/guest.
func buildGuest(t *testing.T) string {
	t.Helper()
	return wasmguesttest.Build(t, "github.com/tandemrun/tandem/components/middleware/wasm/testdata/guest", true)
}

func wasmComponent(name, guest, config, extra string) string {
	return fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: %s
spec:
  type: middleware.http.wasm
  version: v1
  initTimeout: 2m
  metadata:
  - name: url
    value: "file://%s"
  - name: guestConfig
    value: %s
  - name: timeout
    value: 500ms
%s---
`, name, guest, config, extra)
}

// TestMiddlewarePipelines runs both pipelines of a real sidecar: a router
// alias and wasm guests in the API pipeline (order, rewrite, reject), a
// trapping guest and one in an infinite loop in the app pipeline, a guest
// swapped by hot reload under load with no failed request, and ratelimit.
func TestMiddlewarePipelines(t *testing.T) {
	guest := buildGuest(t)
	registry := filepath.Join(t.TempDir(), "r.db")
	resources := t.TempDir()
	cfg := framework.WriteConfig(t, registry, `  httpPipeline:
    handlers:
    - {name: alias, type: middleware.http.routeralias}
    - {name: rewrite, type: middleware.http.wasm}
    - {name: deny, type: middleware.http.wasm}
    - {name: broken, type: middleware.http.wasm}
  appHttpPipeline:
    handlers:
    - {name: trap, type: middleware.http.wasm}
`)
	write := func(rewriteExtra string) {
		writeAtomic(t, filepath.Join(resources, "middleware.yaml"), []byte(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: alias
spec:
  type: middleware.http.routeralias
  version: v1
  metadata:
  - name: routes
    value: '{"/hello": "/v1.0/invoke/mw/method/old"}'
---
`+wasmComponent("rewrite", guest, "rewrite", rewriteExtra)+wasmComponent("deny", guest, "deny", "")+wasmComponent("trap", guest, "trap", "")))
	}
	write("")
	app := framework.StartApp(t, "mw app", bins.Echo)
	// The API pipeline holds guests that compile on start (seconds on a
	// busy machine): health checks go through it too, so do not wait for
	// them here but for the first call below.
	sc := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "mw", AppPort: app.Port, ResourcesDir: resources, Args: []string{"--config", cfg}, NoWait: true})
	allow := map[string]string{"X-Allow": "1"}

	waitOK := func(url string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			resp, b := doMaybe(url, allow)
			if resp == 200 {
				return
			}
			if exited, _ := sc.Exited(); exited || time.Now().After(deadline) {
				t.Fatalf("%s: %d %s\n%s", url, resp, b, sc.Output())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitOK(sc.HTTPURL() + "/v1.0/invoke/mw/method/ready")

	t.Run("order: the alias runs before the rewriting guest", func(t *testing.T) {
		resp, b := do(t, "POST", sc.HTTPURL()+"/hello", strings.NewReader("body"), allow)
		if resp.StatusCode != 200 || resp.Header.Get("X-Echo-Path") != "/new" || string(b) != "body" {
			t.Fatalf("got %d path %q body %q", resp.StatusCode, resp.Header.Get("X-Echo-Path"), b)
		}
	})
	t.Run("a guest rejects with 403", func(t *testing.T) {
		resp, b := do(t, "POST", sc.HTTPURL()+"/v1.0/invoke/mw/method/x", strings.NewReader("body"), nil)
		if resp.StatusCode != http.StatusForbidden || string(b) != "denied by wasm" {
			t.Fatalf("got %d %q", resp.StatusCode, b)
		}
	})
	t.Run("a trapping guest fails its request and the sidecar goes on", func(t *testing.T) {
		resp, b := do(t, "POST", sc.HTTPURL()+"/v1.0/invoke/mw/method/trap", strings.NewReader("x"), allow)
		if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(b), "trap (middleware.http.wasm)") {
			t.Fatalf("trap: %d %s", resp.StatusCode, b)
		}
		resp, b = do(t, "POST", sc.HTTPURL()+"/v1.0/invoke/mw/method/loop", strings.NewReader("x"), allow)
		if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(b), "deadline") {
			t.Fatalf("loop: %d %s", resp.StatusCode, b)
		}
		resp, b = do(t, "POST", sc.HTTPURL()+"/v1.0/invoke/mw/method/fine", strings.NewReader("x"), allow)
		if resp.StatusCode != 200 || string(b) != "x" {
			t.Fatalf("after the traps: %d %s", resp.StatusCode, b)
		}
	})
	t.Run("a middleware that fails to initialise answers 500 naming it", func(t *testing.T) {
		writeAtomic(t, filepath.Join(resources, "broken.yaml"), []byte(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: broken
spec:
  type: middleware.http.wasm
  version: v1
  metadata:
  - name: url
    value: file:///nonexistent/guest.wasm
`))
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, b := do(t, "POST", sc.HTTPURL()+"/v1.0/invoke/mw/method/x", strings.NewReader("x"), allow)
			if resp.StatusCode == http.StatusInternalServerError && strings.Contains(string(b), "broken (middleware.http.wasm)") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("with a broken middleware: %d %s", resp.StatusCode, b)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if exited, _ := sc.Exited(); exited {
			t.Fatal("the sidecar exited")
		}
		if err := os.Remove(filepath.Join(resources, "broken.yaml")); err != nil {
			t.Fatal(err)
		}
		waitOK(sc.HTTPURL() + "/v1.0/invoke/mw/method/x")
	})
	t.Run("hot reload swaps a guest under load with no failed request", func(t *testing.T) {
		load := startAllowedLoad(sc.HTTPURL()+"/v1.0/invoke/mw/method/load", 4)
		time.Sleep(time.Second)
		write("  - name: maxInstances\n    value: \"4\"\n")
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(sc.Output(), "component changed") && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(3 * time.Second) // the new instance serves
		load.stop()
		if load.failed.Load() != 0 || load.ok.Load() == 0 {
			t.Fatalf("%d ok, %d failed (first: %v)", load.ok.Load(), load.failed.Load(), load.first.Load())
		}
		t.Logf("%d requests through the reload, none failed", load.ok.Load())
	})
}

// TestRateLimitMiddleware puts middleware.http.ratelimit in front of the
// API of a real sidecar, then takes it out by editing the Configuration.
func TestRateLimitMiddleware(t *testing.T) {
	registry := filepath.Join(t.TempDir(), "r.db")
	resources := t.TempDir()
	cfg := framework.WriteConfig(t, registry, `  httpPipeline:
    handlers:
    - {name: limit, type: middleware.http.ratelimit}
`)
	writeAtomic(t, filepath.Join(resources, "limit.yaml"), []byte(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: limit
spec:
  type: middleware.http.ratelimit
  version: v1
  metadata:
  - name: maxRequestsPerSecond
    value: "2"
`))
	app := framework.StartApp(t, "rl app", bins.Echo)
	sc := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "rl", AppPort: app.Port, ResourcesDir: resources, Args: []string{"--config", cfg}})
	url := sc.HTTPURL() + "/v1.0/invoke/rl/method/x"
	deadline := time.Now().Add(20 * time.Second)
	for {
		var limited *http.Response
		for range 5 {
			resp, _ := do(t, "GET", url, nil, nil)
			if resp.StatusCode == http.StatusTooManyRequests {
				limited = resp
				break
			}
		}
		if limited != nil {
			if limited.Header.Get("Retry-After") == "" {
				t.Fatalf("429 without Retry-After: %v", limited.Header)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never limited\n%s", sc.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The Configuration reloads without a restart: with the pipeline gone,
	// a burst is no longer limited.
	writeAtomic(t, cfg, []byte(strings.SplitN(mustRead(t, cfg), "  httpPipeline:", 2)[0]))
	deadline = time.Now().Add(20 * time.Second)
	for {
		limited := false
		for range 10 {
			if resp, _ := do(t, "GET", url, nil, nil); resp.StatusCode == http.StatusTooManyRequests {
				limited = true
			}
		}
		if !limited {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still limited after the pipeline was removed\n%s", sc.Output())
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// allowedLoad posts distinct bodies with X-Allow (past the deny guest) and
// counts the answers that echo them intact.
type allowedLoad struct {
	ok, failed atomic.Int64
	first      atomic.Value
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

func startAllowedLoad(url string, workers int) *allowedLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &allowedLoad{cancel: cancel}
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				want := fmt.Sprintf("w%d-%d", w, i)
				req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(want))
				req.Header.Set("X-Allow", "1")
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						l.failed.Add(1)
						l.first.CompareAndSwap(nil, err.Error())
					}
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != want {
					l.failed.Add(1)
					l.first.CompareAndSwap(nil, fmt.Sprintf("status %d body %q", resp.StatusCode, b))
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

func (l *allowedLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// doMaybe posts to url; a connection error is status 0 (the sidecar is
// still starting).
func doMaybe(url string, header map[string]string) (int, string) {
	req, err := http.NewRequest("POST", url, strings.NewReader("x"))
	if err != nil {
		return 0, err.Error()
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
