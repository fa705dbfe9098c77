package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

var (
	flakyOnce sync.Once
	flakyBin  string
	flakyErr  error
)

// flakyApp builds test/apps/flaky once.
func flakyApp(t *testing.T) string {
	t.Helper()
	flakyOnce.Do(func() {
		flakyBin = filepath.Join(bins.Dir, "flaky")
		cmd := exec.Command("go", "build", "-o", flakyBin, "./test/apps/flaky")
		cmd.Dir = framework.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			flakyErr = fmt.Errorf("go build flaky: %v\n%s", err, out)
		}
	})
	if flakyErr != nil {
		t.Fatal(flakyErr)
	}
	return flakyBin
}

// startFlaky starts a flaky app (env: FLAKY_NAME, FLAKY_ALWAYS_STATUS)
// and its sidecar.
func startFlaky(t *testing.T, appID string, so framework.SidecarOptions, env ...string) (*framework.App, *framework.Sidecar) {
	t.Helper()
	app := framework.StartApp(t, appID+" app", flakyApp(t), append([]string{"APP_ID=" + appID}, env...)...)
	so.AppID, so.AppPort = appID, app.Port
	return app, framework.StartSidecar(t, bins, so)
}

// appCount reads a flaky app's counter for key, straight from the app.
func appCount(t *testing.T, app *framework.App, key string) int {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/count/%s", app.Port, key))
	if err != nil {
		t.Fatalf("read count %q: %v", key, err)
	}
	defer resp.Body.Close()
	var c struct{ Count int }
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatalf("decode count %q: %v", key, err)
	}
	return c.Count
}

// writeResiliency writes a Resiliency document into dir (atomically, as
// an editor or a ConfigMap swap would).
func writeResiliency(t *testing.T, dir, spec string) {
	t.Helper()
	doc := "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: e2e\nspec:\n" + spec
	tmp := filepath.Join(dir, ".resiliency.tmp")
	if err := os.WriteFile(tmp, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "resiliency.yaml")); err != nil {
		t.Fatal(err)
	}
}

// timed makes a request through a sidecar and returns status, body,
// headers and how long it took.
type result struct {
	status  int
	body    string
	header  http.Header
	elapsed time.Duration
}

func call(t *testing.T, client *http.Client, method, url string, body io.Reader) result {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v (after %s)", method, url, err, time.Since(start))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, string(b), resp.Header, time.Since(start)}
}

const resiliencySpec = `  policies:
    timeouts:
      short: 500ms
    retries:
      three: {policy: constant, duration: 100ms, maxRetries: 3}
    circuitBreakers:
      cb: {maxRequests: 1, timeout: 2s, trip: consecutiveFailures >= 3}
  targets:
    apps:
      flaky: {timeout: short, retry: three}
      breaky: {circuitBreaker: cb}
`

// TestResiliency runs a caller sidecar whose resources folder holds a
// Resiliency file, against flaky apps, and checks attempt counts at the
// app, timings, breaker transitions and hot reload.
func TestResiliency(t *testing.T) {
	registry := filepath.Join(t.TempDir(), "registry.db")
	flaky, _ := startFlaky(t, "flaky", framework.SidecarOptions{Registry: registry})
	breaky, _ := startFlaky(t, "breaky", framework.SidecarOptions{Registry: registry})
	resources := t.TempDir()
	writeResiliency(t, resources, resiliencySpec)
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "rcaller", Registry: registry, ResourcesDir: resources})
	client := &http.Client{Timeout: 15 * time.Second}
	invoke := func(app, method string) string { return caller.HTTPURL() + "/v1.0/invoke/" + app + "/method/" + method }

	t.Run("attempt counts", func(t *testing.T) {
		tests := []struct {
			name, method string
			key          string
			status       int
			body         string // substring of the relayed answer
			attempts     int
		}{
			{"fails twice then succeeds", "fail/2/a", "a", 200, "ok after 2 failures (request 3)", 3},
			{"always failing: the last 503 is relayed", "fail/10/b", "b", 503, "failure 4 of 10", 4},
			{"429 retried, last one relayed", "status/429/c", "c", 429, "status 429 (request 4)", 4},
			// As in daprd, without a matching list every failure is retried.
			{"404 retried too, last one relayed", "status/404/d", "d", 404, "status 404 (request 4)", 4},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := call(t, client, "POST", invoke("flaky", tt.method), strings.NewReader("payload"))
				if r.status != tt.status || !strings.Contains(r.body, tt.body) {
					t.Errorf("got %d %q, want %d with %q", r.status, r.body, tt.status, tt.body)
				}
				if n := appCount(t, flaky, tt.key); n != tt.attempts {
					t.Errorf("app saw %d attempts, want %d", n, tt.attempts)
				}
				if tt.status == 429 && r.header.Get("Retry-After") != "1" {
					t.Errorf("Retry-After = %q, want the app's header relayed", r.header.Get("Retry-After"))
				}
			})
		}
	})

	t.Run("streamed body is attempted once", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			_, _ = pw.Write([]byte("chunk"))
			_ = pw.Close()
		}()
		r := call(t, client, "POST", invoke("flaky", "fail/1/s"), pr) // no length: chunked
		if r.status != 503 {
			t.Errorf("got %d %q, want the app's 503 (no retry of a stream)", r.status, r.body)
		}
		if n := appCount(t, flaky, "s"); n != 1 {
			t.Errorf("app saw %d attempts, want 1", n)
		}
	})

	t.Run("timeout per attempt", func(t *testing.T) {
		// 4 attempts of 500ms and 3 waits of 100ms: 2.3s.
		r := call(t, client, "GET", invoke("flaky", "hang/10s/h"), nil)
		if r.status != 500 || !strings.Contains(r.body, "ERR_DIRECT_INVOKE") || !strings.Contains(r.body, "timed out after 500ms") {
			t.Errorf("got %d %q, want 500 ERR_DIRECT_INVOKE naming the timeout", r.status, r.body)
		}
		if r.elapsed < 2200*time.Millisecond || r.elapsed > 3300*time.Millisecond {
			t.Errorf("took %s, want 2.3s (4 x 500ms + 3 x 100ms) within tolerance", r.elapsed)
		}
		if n := appCount(t, flaky, "h"); n != 4 {
			t.Errorf("app saw %d attempts, want 4", n)
		}
		t.Logf("timeout: %s for 4 attempts", r.elapsed.Round(time.Millisecond))
	})

	t.Run("circuit breaker open, half-open, closed", func(t *testing.T) {
		fail := func(want int) {
			t.Helper()
			if r := call(t, client, "GET", invoke("breaky", "status/503/cb"), nil); r.status != want {
				t.Fatalf("got %d %q, want %d", r.status, r.body, want)
			}
		}
		fastFail := func() {
			t.Helper()
			r := call(t, client, "GET", invoke("breaky", "status/503/cb"), nil)
			if r.status != 500 || !strings.Contains(r.body, `circuit breaker \"cb\" for app \"breaky\"`) {
				t.Fatalf("got %d %q, want 500 naming the open breaker", r.status, r.body)
			}
			if r.elapsed > 200*time.Millisecond {
				t.Errorf("open breaker took %s to answer, want a fast failure", r.elapsed)
			}
		}
		for range 3 {
			fail(503) // closed: the app's answers relayed; the 3rd trips it
		}
		fastFail()
		if n := appCount(t, breaky, "cb"); n != 3 {
			t.Fatalf("app saw %d calls, want 3: an open breaker must not call it", n)
		}
		time.Sleep(2100 * time.Millisecond)
		fail(503) // half-open: one trial, which fails: open again
		fastFail()
		if n := appCount(t, breaky, "cb"); n != 4 {
			t.Fatalf("app saw %d calls, want 4 (one trial)", n)
		}
		time.Sleep(2100 * time.Millisecond)
		for i := range 3 { // half-open trial succeeds: closed
			if r := call(t, client, "GET", invoke("breaky", "fail/0/ok"), nil); r.status != 200 {
				t.Fatalf("call %d after recovery: %d %q", i+1, r.status, r.body)
			}
		}
		if n := appCount(t, breaky, "ok"); n != 3 {
			t.Errorf("app saw %d calls after recovery, want 3", n)
		}
		m := scrape(t, caller)
		for _, want := range []string{
			`dapr_resiliency_cb_state{app_id="rcaller",flow_direction="outbound",name="e2e",namespace="",policy="circuitbreaker",status="closed",target="app_breaky"} 1`,
			`dapr_resiliency_activations_total{app_id="rcaller",flow_direction="outbound",name="e2e",namespace="",policy="circuitbreaker",status="open",target="app_breaky"} 2`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})

	t.Run("hot reload", func(t *testing.T) {
		writeResiliency(t, resources, strings.Replace(resiliencySpec, "maxRetries: 3", "maxRetries: 1", 1))
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; ; i++ {
			key := fmt.Sprintf("reload%d", i)
			call(t, client, "GET", invoke("flaky", "fail/10/"+key), nil)
			n := appCount(t, flaky, key)
			if n == 2 {
				break
			}
			if n != 4 || time.Now().After(deadline) {
				t.Fatalf("app saw %d attempts; want 4 before the reload and 2 after it (within 10s)", n)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// scrape returns a sidecar's /metrics text.
func scrape(t *testing.T, s *framework.Sidecar) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.MetricsPort))
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestResiliencyEjection runs app "pool" as two instances, one healthy and
// one answering 503 to everything. Without any Resiliency policy, the
// caller's sidecar takes the failing instance out of rotation after 5
// failures in a row; from then on every call reaches the healthy one.
func TestResiliencyEjection(t *testing.T) {
	registry := filepath.Join(t.TempDir(), "registry.db")
	good, _ := startFlaky(t, "pool", framework.SidecarOptions{Registry: registry}, "FLAKY_NAME=good")
	bad, _ := startFlaky(t, "pool", framework.SidecarOptions{Registry: registry}, "FLAKY_NAME=bad", "FLAKY_ALWAYS_STATUS=503")
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "ecaller", Registry: registry})
	client := &http.Client{Timeout: 10 * time.Second}
	url := caller.HTTPURL() + "/v1.0/invoke/pool/method/echo"

	// Until ejection, calls alternate; the bad instance's 503s reach the
	// caller (no retry policy).
	bads := 0
	for i := 0; bads < 5; i++ {
		if i == 60 {
			t.Fatalf("only %d answers from the bad instance in 60 calls; is it registered?", bads)
		}
		r := call(t, client, "GET", url, nil)
		if r.header.Get("X-Instance") == "bad" {
			bads++
		}
	}
	before := appCount(t, bad, "*")
	goodBefore := appCount(t, good, "*")
	for i := range 20 {
		r := call(t, client, "GET", url, nil)
		if r.status != 200 || r.header.Get("X-Instance") != "good" {
			t.Fatalf("call %d after ejection: %d from %q, want 200 from the healthy instance", i+1, r.status, r.header.Get("X-Instance"))
		}
	}
	if n := appCount(t, bad, "*"); n != before {
		t.Errorf("ejected instance got %d more calls, want none", n-before)
	}
	if n := appCount(t, good, "*"); n != goodBefore+20 {
		t.Errorf("healthy instance got %d calls, want 20", n-goodBefore)
	}
	m := scrape(t, caller)
	for _, want := range []string{`tandem_resiliency_ejections_total{app_id="ecaller"} 1`, `tandem_resiliency_ejected_instances{app_id="ecaller"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
