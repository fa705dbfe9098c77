package bench

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/internal/wasmguest/wasmguesttest"
	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestWasmMiddlewareLoad measures what an http-wasm guest in the API
// pipeline adds to a service invocation through a real sidecar: one sidecar
// and its echo app, the same closed-loop load through a sidecar without
// middleware and through one whose spec.httpPipeline holds a guest that
// reads one header (the test guest of components/middleware/wasm).
//
//	TANDEM_BENCH=1 go test ./test/bench -run TestWasmMiddlewareLoad -v -timeout 10m
func TestWasmMiddlewareLoad(t *testing.T) {
	if os.Getenv("TANDEM_BENCH") != "1" {
		t.Skip("load benchmark: run it with TANDEM_BENCH=1 go test ./test/bench -run TestWasmMiddlewareLoad -v")
	}
	d := benchSeconds(t, "TANDEM_BENCH_SECONDS", 10)
	workers := int(benchNum(t, "TANDEM_BENCH_CONNECTIONS", 16))
	bins, err := framework.Build()
	if err != nil {
		t.Fatalf("build the binaries: %v", err)
	}
	t.Cleanup(framework.Cleanup)
	guest := wasmguesttest.Build(t, "github.com/tandemrun/tandem/components/middleware/wasm/testdata/guest", true)
	app := framework.StartApp(t, "echo app", buildEchoApp(t, bins), "APP_ID=app")
	registry := filepath.Join(t.TempDir(), "registry.db")

	start := func(id, pipeline string) *framework.Sidecar {
		resources := t.TempDir()
		if pipeline != "" {
			comp := fmt.Sprintf("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: probe\nspec:\n  type: middleware.http.wasm\n  version: v1\n  initTimeout: 2m\n  metadata:\n  - name: url\n    value: file://%s\n  - name: guestConfig\n    value: header\n", guest)
			if err := os.WriteFile(filepath.Join(resources, "probe.yaml"), []byte(comp), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cfg := filepath.Join(t.TempDir(), "config.yaml")
		doc := fmt.Sprintf("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: bench\nspec:\n  nameResolution:\n    component: sqlite\n    configuration:\n      connectionString: %q\n%s", registry, pipeline)
		if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return framework.StartSidecar(t, bins, framework.SidecarOptions{
			AppID: id, AppPort: app.Port, ResourcesDir: resources, Args: []string{"--log-level", "info", "--config", cfg},
		})
	}
	plain := start("plain", "")
	wasm := start("wasm", "  httpPipeline:\n    handlers:\n    - {name: probe, type: middleware.http.wasm}\n")

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 10 * time.Second}
	body := bytes.Repeat([]byte("x"), 1024)
	call := func(url string) error {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("X-Probe", "1")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n != int64(len(body)) {
			return fmt.Errorf("status %d, %d bytes", resp.StatusCode, n)
		}
		return nil
	}
	urls := map[string]string{
		"no middleware": plain.HTTPURL() + "/v1.0/invoke/plain/method/echo",
		"wasm guest":    wasm.HTTPURL() + "/v1.0/invoke/wasm/method/echo",
	}
	for name, url := range urls { // the guest compiles in the background: wait for it
		deadline := time.Now().Add(2 * time.Minute)
		for call(url) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not answering", name)
			}
			time.Sleep(200 * time.Millisecond)
		}
		closedLoop(workers, time.Second, func(int, int) error { return call(url) }) // warm-up
	}
	var md strings.Builder
	md.WriteString("| path | req/s | p50 | p90 | p99 | errors |\n|---|---|---|---|---|---|\n")
	res := map[string]opStats{}
	for _, name := range []string{"no middleware", "wasm guest"} {
		s := closedLoop(workers, d, func(int, int) error { return call(urls[name]) })
		res[name] = s
		fmt.Fprintf(&md, "| %s | %.0f | %s | %s | %s | %d |\n", name, s.Rate(), s.P50, s.P90, s.P99, s.Errors)
		if s.Errors > 0 {
			t.Errorf("%s: %d errors (first: %s)", name, s.Errors, s.FirstErr)
		}
	}
	added := res["wasm guest"].P50 - res["no middleware"].P50
	fmt.Fprintf(&md, "\nwasm guest adds %s at p50 (%d workers, %s per path).\n", added, workers, d)
	t.Log("\n" + md.String())
}
