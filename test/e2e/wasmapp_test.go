package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/internal/wasmguest/wasmguesttest"
	"github.com/tandemrun/tandem/test/e2e/framework"
)

// buildWasmApp builds test/apps/wasmapp as a Wasm app (wasip1 reactor).
func buildWasmApp(t *testing.T) string {
	t.Helper()
	return wasmguesttest.Build(t, "github.com/tandemrun/tandem/test/apps/wasmapp", true)
}

// TestWasmApp hosts test/apps/wasmapp inside a sidecar (--app-wasm) and
// reaches it from another sidecar over mTLS: invocation, the app saving
// state and publishing through tandem.dapr_call, the delivery of that
// message back into it, 200 concurrent calls, and a guest that traps on
// some inputs while the other requests go through.
func TestWasmApp(t *testing.T) {
	testWasmApp(t, buildWasmApp(t), "http-wasm")
}

// TestWasmAppLean is TestWasmApp for the same app on the lean ABI
// (test/apps/wasmlean on wasmapp/lean; its API calls go through
// tandem.lean_dapr_call).
func TestWasmAppLean(t *testing.T) {
	testWasmApp(t, wasmguesttest.Build(t, "github.com/tandemrun/tandem/test/apps/wasmlean", true), "lean")
}

func testWasmApp(t *testing.T, module, abi string) {
	s := framework.StartSentry(t, bins, framework.SentryOptions{})
	registry := filepath.Join(t.TempDir(), "r.db")
	resources := t.TempDir()
	if err := os.WriteFile(filepath.Join(resources, "components.yaml"), []byte(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: statestore}
spec: {type: state.in-memory, version: v1}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: pubsub}
spec: {type: pubsub.in-memory, version: v1}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	wasm := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "wasm", Sentry: s, Registry: registry, ResourcesDir: resources, NoWait: true,
		Args: []string{"--app-wasm", module, "--app-wasm-instances", "16", "--app-wasm-cache-dir", t.TempDir()},
	})
	// Compiling a Go module of some MiB takes seconds on a busy machine.
	if err := framework.WaitHTTP(context.Background(), wasm.HTTPURL()+"/v1.0/healthz", 204, 3*time.Minute); err != nil {
		t.Fatalf("wasm sidecar: %v\n%s", err, wasm.Output())
	}
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "caller", Sentry: s, Registry: registry})
	client := &http.Client{Timeout: 2 * time.Minute}
	call := func(method, url, contentType, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	invoke := caller.HTTPURL() + "/v1.0/invoke/wasm/method/"

	t.Run("invocation over mTLS", func(t *testing.T) {
		if code, body := call(http.MethodPost, invoke+"echo", "text/plain", "hello"); code != 200 || body != "hello" {
			t.Fatalf("echo: %d %q", code, body)
		}
	})

	t.Run("state and publish through the host function, delivery into the app", func(t *testing.T) {
		if code, body := call(http.MethodPost, invoke+"state/k1", "application/json", `{"n":1}`); code != http.StatusNoContent {
			t.Fatalf("save: %d %q", code, body)
		}
		if code, body := call(http.MethodGet, wasm.HTTPURL()+"/v1.0/state/statestore/k1", "", ""); code != 200 || body != `{"n":1}` {
			t.Fatalf("state saved by the app: %d %q", code, body)
		}
		if code, body := call(http.MethodGet, invoke+"state/k1", "", ""); code != 200 || body != `{"n":1}` {
			t.Fatalf("state read by the app: %d %q", code, body)
		}
		ev := `{"specversion":"1.0","id":"ev-app","source":"e2e","type":"t","datacontenttype":"application/json","data":{"order":7}}`
		if code, body := call(http.MethodPost, invoke+"publish/deliveries", "application/cloudevents+json", ev); code != http.StatusNoContent {
			t.Fatalf("publish by the app: %d %q", code, body)
		}
		// The net/http app saves the event's data under its id; the lean
		// one (no JSON decoder in its module) the whole event.
		key, delivered := "received-ev-app", func(body string) bool { return body == `{"order":7}` }
		if abi == "lean" {
			key, delivered = "received-lean", func(body string) bool {
				return strings.Contains(body, `"id":"ev-app"`) && strings.Contains(body, `"data":{"order":7}`)
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body := call(http.MethodGet, wasm.HTTPURL()+"/v1.0/state/statestore/"+key, "", "")
			if code == 200 && delivered(body) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the delivery did not reach the app: last %d %q\n%s", code, body, wasm.Output())
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("200 concurrent calls", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan string, 200)
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				want := fmt.Sprintf("call %d", i)
				resp, err := client.Post(invoke+"echo", "text/plain", strings.NewReader(want))
				if err != nil {
					errs <- err.Error()
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 || string(b) != want {
					errs <- fmt.Sprintf("%d %q, want %q", resp.StatusCode, b, want)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
	})

	t.Run("a trap fails only its request", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan string, 60)
		for i := range 60 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Get(fmt.Sprintf("%strap?n=%d", invoke, i))
				if err != nil {
					errs <- err.Error()
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				switch {
				case i%2 == 1 && (resp.StatusCode != 500 || !strings.Contains(string(b), "ERR_WASM_APP_FAILED")):
					errs <- fmt.Sprintf("n=%d: %d %q, want the trap's 500", i, resp.StatusCode, b)
				case i%2 == 0 && (resp.StatusCode != 200 || string(b) != "even"):
					errs <- fmt.Sprintf("n=%d: %d %q, want 200 even", i, resp.StatusCode, b)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		if code, body := call(http.MethodPost, invoke+"echo", "text/plain", "still here"); code != 200 || body != "still here" {
			t.Fatalf("after the traps: %d %q", code, body)
		}
	})

	t.Run("metadata", func(t *testing.T) {
		code, body := call(http.MethodGet, wasm.HTTPURL()+"/v1.0/metadata", "", "")
		var md struct {
			Extended map[string]string `json:"extended"`
		}
		if err := json.Unmarshal([]byte(body), &md); code != 200 || err != nil {
			t.Fatalf("metadata: %d %v %q", code, err, body)
		}
		e := md.Extended
		if e["appWasm.module"] != module || e["appWasm.abi"] != abi || len(e["appWasm.sha256"]) != 64 || e["appWasm.maxInstances"] != "16" || e["appWasm.instances"] == "" || e["appWasm.instances"] == "0" {
			t.Fatalf("extended metadata %v", e)
		}
	})
}

// TestWasmAppBadModule: a module that is not an http-wasm handler stops
// the sidecar at start with a message naming the missing export.
func TestWasmAppBadModule(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.wasm")
	if err := os.WriteFile(bad, []byte("\x00asm\x01\x00\x00\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	sc := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "bad", NoWait: true, Args: []string{"--app-wasm", bad}})
	code, ok := sc.WaitExit(time.Minute)
	if !ok || code == 0 || !strings.Contains(sc.Output(), "does not export handle_request") {
		t.Fatalf("exit %d (exited %v), want a failure naming handle_request:\n%s", code, ok, sc.Output())
	}
}
