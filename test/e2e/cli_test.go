package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// tandemCLI runs the built tandem binary against a temporary home folder.
type tandemCLI struct {
	t    *testing.T
	home string
	env  []string
}

func newTandemCLI(t *testing.T) *tandemCLI {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	c := &tandemCLI{t: t, home: home, env: []string{"TANDEM_HOME=" + home, "TANDEM_SIDECAR_PATH=" + bins.Tandemd}}
	// Registered first, so it runs after every process of the test stopped:
	// it stops what is left, the local sentry included.
	t.Cleanup(func() {
		out, err := c.exec("stop", "--all")
		if err != nil {
			t.Logf("tandem stop --all: %v\n%s", err, out)
		}
	})
	if out, err := c.exec("init"); err != nil {
		t.Fatalf("tandem init: %v\n%s", err, out)
	}
	return c
}

// exec runs tandem with args and returns its combined output.
func (c *tandemCLI) exec(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.Tandem, args...)
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *tandemCLI) mustExec(args ...string) string {
	c.t.Helper()
	out, err := c.exec(args...)
	if err != nil {
		c.t.Fatalf("tandem %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// start runs `tandem args...` in the background for the rest of the test.
func (c *tandemCLI) start(name string, args ...string) *framework.Process {
	c.t.Helper()
	return framework.Start(c.t, name, bins.Tandem, args, c.env...)
}

type listed struct {
	AppID        string    `json:"appId"`
	HTTPPort     int       `json:"httpPort"`
	GRPCPort     int       `json:"grpcPort"`
	SidecarPID   int       `json:"sidecarPid"`
	AppPID       int       `json:"appPid"`
	CLIPID       int       `json:"cliPid"`
	Healthy      bool      `json:"healthy"`
	SPIFFEID     string    `json:"spiffeId"`
	CertExpiry   time.Time `json:"certExpiry"`
	Command      string    `json:"command"`
	InternalPort int       `json:"internalPort"`
}

func (c *tandemCLI) list() map[string]listed {
	c.t.Helper()
	out := c.mustExec("list", "-o", "json")
	var rows []listed
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		c.t.Fatalf("tandem list -o json: %v\n%s", err, out)
	}
	m := map[string]listed{}
	for _, r := range rows {
		m[r.AppID] = r
	}
	return m
}

// waitApps waits until every app ID is listed as healthy.
func (c *tandemCLI) waitApps(procs []*framework.Process, ids ...string) map[string]listed {
	c.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		m := c.list()
		ok := true
		for _, id := range ids {
			if !m[id].Healthy {
				ok = false
			}
		}
		if ok {
			return m
		}
		for _, p := range procs {
			if done, err := p.Exited(); done {
				c.t.Fatalf("%s exited early (%v):\n%s", p.Name, err, p.Output())
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("apps %v not healthy in time; list: %+v", ids, m)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitExit waits for p to exit and returns its exit code.
func waitExit(t *testing.T, p *framework.Process, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if done, err := p.Exited(); done {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode()
			}
			return 0
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not exit in %s:\n%s", p.Name, timeout, p.Output())
	return -1
}

func invokeVia(t *testing.T, httpPort int, app, method string, body string) (*http.Response, string) {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/v1.0/invoke/%s/method/%s", httpPort, app, method)
	resp, b := do(t, http.MethodPost, url, strings.NewReader(body), map[string]string{"Content-Type": "text/plain"})
	return resp, string(b)
}

// startPair runs the plain HTTP echo app as "web" and the Dapr Go SDK gRPC
// app as "grpcsvc", each under its own `tandem run`, as two terminals would.
func startPair(t *testing.T, c *tandemCLI) (web, grpcsvc *framework.Process, apps map[string]listed) {
	t.Helper()
	web = c.start("tandem run web", "run", "--app-id", "web", "--app-port", fmt.Sprint(framework.AppPort(t)), "--", bins.Echo)
	grpcsvc = c.start("tandem run grpcsvc", "run", "--app-id", "grpcsvc", "--app-port", fmt.Sprint(framework.AppPort(t)),
		"--app-protocol", "grpc", "--", bins.GRPCEcho)
	apps = c.waitApps([]*framework.Process{web, grpcsvc}, "web", "grpcsvc")
	return web, grpcsvc, apps
}

func TestCLIInit(t *testing.T) {
	c := newTandemCLI(t) // runs init once
	for _, f := range []string{"config.yaml", "join-token", "secrets.json", "certs/ca.crt", "certs/issuer.crt", "certs/issuer.key",
		"resources/statestore.yaml", "resources/pubsub.yaml", "resources/secretstore.yaml", "resources/resiliency.yaml"} {
		if _, err := os.Stat(filepath.Join(c.home, f)); err != nil {
			t.Errorf("init did not write %s: %v", f, err)
		}
	}
	ca1, _ := os.ReadFile(filepath.Join(c.home, "certs/ca.crt"))
	out := c.mustExec("init")
	if strings.Contains(out, "wrote") || !strings.Contains(out, "kept") {
		t.Errorf("second init rewrote files:\n%s", out)
	}
	if ca2, _ := os.ReadFile(filepath.Join(c.home, "certs/ca.crt")); string(ca2) != string(ca1) {
		t.Error("second init changed the CA")
	}
	out = c.mustExec("init", "--force")
	if strings.Contains(out, "kept") {
		t.Errorf("init --force kept files:\n%s", out)
	}
	// Commands that need init say so.
	other := &tandemCLI{t: t, env: []string{"TANDEM_HOME=" + filepath.Join(t.TempDir(), "empty"), "TANDEM_SIDECAR_PATH=" + bins.Tandemd}}
	if out, err := other.exec("run", "--app-id", "x", "--", "true"); err == nil || !strings.Contains(out, "tandem init") {
		t.Errorf("run before init: %v\n%s", err, out)
	}
}

func TestCLIRunInvokeListStop(t *testing.T) {
	c := newTandemCLI(t)
	web, grpcsvc, apps := startPair(t, c)

	t.Run("invoke across sidecars over mTLS", func(t *testing.T) {
		// The gRPC app reports the caller's app ID, which its sidecar took
		// from the caller sidecar's certificate.
		resp, body := invokeVia(t, apps["web"].HTTPPort, "grpcsvc", "whoami", "")
		if resp.StatusCode != 200 || body != "web" {
			t.Fatalf("web -> grpcsvc whoami: %d %q", resp.StatusCode, body)
		}
		resp, body = invokeVia(t, apps["grpcsvc"].HTTPPort, "web", "orders/1?x=y", "hello")
		if resp.StatusCode != 200 || body != "hello" || resp.Header.Get("X-Echo-Caller") != "grpcsvc" || resp.Header.Get("X-Echo-Query") != "x=y" {
			t.Fatalf("grpcsvc -> web: %d %q %v", resp.StatusCode, body, resp.Header)
		}
		// The app saw DAPR_HTTP_PORT: it calls through its own sidecar.
		resp, body = invokeVia(t, apps["web"].HTTPPort, "web", "call/grpcsvc/echo", "round trip")
		if resp.StatusCode != 200 || body != "round trip" {
			t.Fatalf("web app -> its sidecar -> grpcsvc: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("list", func(t *testing.T) {
		for id, r := range apps {
			if r.SPIFFEID != "spiffe://public/ns/default/"+id {
				t.Errorf("%s: SPIFFE ID %q", id, r.SPIFFEID)
			}
			if until := time.Until(r.CertExpiry); until < time.Hour || until > 25*time.Hour {
				t.Errorf("%s: certificate expires in %s", id, until)
			}
			if r.SidecarPID == 0 || r.AppPID == 0 || r.CLIPID == 0 {
				t.Errorf("%s: pids %+v", id, r)
			}
		}
		table := c.mustExec("list")
		for _, want := range []string{"APP ID", "web", "grpcsvc", bins.GRPCEcho} {
			if !strings.Contains(table, want) {
				t.Errorf("list table lacks %q:\n%s", want, table)
			}
		}
	})

	t.Run("status and logs", func(t *testing.T) {
		out := c.mustExec("status")
		for _, want := range []string{"Sentry:  running", "root expires", "App web: healthy", "spiffe://public/ns/default/grpcsvc",
			"statestore", "state.sqlite", "pubsub.sqlite"} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
		if !strings.Contains(strings.ToLower(out), "ready") {
			t.Errorf("status shows no ready component:\n%s", out)
		}
		if out := c.mustExec("logs", "web"); !strings.Contains(out, "echo app listening") {
			t.Errorf("logs web:\n%s", out)
		}
		if out := c.mustExec("logs", "web", "--sidecar", "-n", "200"); !strings.Contains(out, "workload certificate issued") {
			t.Errorf("logs web --sidecar:\n%s", out)
		}
		if !strings.Contains(web.Output(), "== APP == ") || !strings.Contains(web.Output(), "== SIDECAR == ") {
			t.Errorf("run output lacks the prefixes:\n%s", web.Output())
		}
	})

	t.Run("stop", func(t *testing.T) {
		out := c.mustExec("stop", "--app-id", "grpcsvc")
		if !strings.Contains(out, "Stopped grpcsvc") {
			t.Fatalf("stop: %s", out)
		}
		if code := waitExit(t, grpcsvc, 30*time.Second); code != 0 {
			t.Fatalf("tandem run grpcsvc exited %d after stop:\n%s", code, grpcsvc.Output())
		}
		left := c.list()
		if _, ok := left["grpcsvc"]; ok || !left["web"].Healthy {
			t.Fatalf("after stop: %+v", left)
		}
		if out, err := c.exec("stop", "--app-id", "grpcsvc"); err == nil || !strings.Contains(out, "not running") {
			t.Fatalf("stopping a stopped app: %v %s", err, out)
		}
	})
}

func TestCLIKilledRunThenCleanRun(t *testing.T) {
	c := newTandemCLI(t)
	appPort := framework.FreePort(t)
	first := c.start("tandem run (killed)", "run", "--app-id", "web", "--app-port", fmt.Sprint(appPort), "--", bins.Echo)
	before := c.waitApps([]*framework.Process{first}, "web")["web"]
	first.Kill() // SIGKILL: no cleanup at all

	second := c.start("tandem run (second)", "run", "--app-id", "web", "--app-port", fmt.Sprint(appPort), "--", bins.Echo)
	after := c.waitApps([]*framework.Process{second}, "web")["web"]
	if after.CLIPID == before.CLIPID || after.SidecarPID == before.SidecarPID {
		t.Fatalf("still the killed run: before %+v after %+v", before, after)
	}
	resp, body := invokeVia(t, after.HTTPPort, "web", "ping", "pong")
	if resp.StatusCode != 200 || body != "pong" {
		t.Fatalf("invoke after restart: %d %q", resp.StatusCode, body)
	}
	// The killed run's sidecar is gone and its port is free again.
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", before.HTTPPort), 200*time.Millisecond); err == nil {
		c.Close()
		t.Errorf("the killed run's sidecar port %d still answers", before.HTTPPort)
	}
}

func TestCLIMultiAppRunFile(t *testing.T) {
	c := newTandemCLI(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "apps.yaml")
	yaml := fmt.Sprintf(`version: 1
common:
  env:
    GREETING: hello
apps:
  - appID: web
    appDirPath: ./web
    appPort: %d
    command: [%q]
  - appID: grpcsvc
    appPort: %d
    appProtocol: grpc
    command: [%q]
`, framework.FreePort(t), bins.Echo, framework.FreePort(t), bins.GRPCEcho)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	run := c.start("tandem run -f", "run", "-f", file)
	apps := c.waitApps([]*framework.Process{run}, "web", "grpcsvc")
	resp, body := invokeVia(t, apps["web"].HTTPPort, "grpcsvc", "whoami", "")
	if resp.StatusCode != 200 || body != "web" {
		t.Fatalf("web -> grpcsvc: %d %q", resp.StatusCode, body)
	}
	if apps["web"].CLIPID != apps["grpcsvc"].CLIPID {
		t.Errorf("apps of one file run under different tandem processes: %+v", apps)
	}
	if !strings.Contains(run.Output(), "== APP - web == ") {
		t.Errorf("multi-app output lacks per-app prefixes:\n%s", run.Output())
	}
	c.mustExec("stop", "-f", file)
	if code := waitExit(t, run, 30*time.Second); code != 0 {
		t.Fatalf("tandem run -f exited %d:\n%s", code, run.Output())
	}
	if left := c.list(); len(left) != 0 {
		t.Fatalf("still listed after stop -f: %+v", left)
	}
}

func TestCLIErrorsAndExitCode(t *testing.T) {
	c := newTandemCLI(t)
	t.Run("exit code is the app's", func(t *testing.T) {
		_, err := c.exec("run", "--app-id", "job", "--", "sh", "-c", "echo working; exit 3")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Fatalf("exit: %v", err)
		}
	})
	t.Run("app never opens its port", func(t *testing.T) {
		out, err := c.exec("run", "--app-id", "slow", "--app-port", fmt.Sprint(framework.FreePort(t)), "--app-port-timeout", "2s",
			"--", "sh", "-c", "echo booting the slow app; sleep 30")
		if err == nil || !strings.Contains(out, "gave up waiting for app slow to listen") || !strings.Contains(out, "booting the slow app") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("port in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		port := ln.Addr().(*net.TCPAddr).Port
		out, err := c.exec("run", "--app-id", "x", "--dapr-http-port", fmt.Sprint(port), "--", "true")
		if err == nil || !strings.Contains(out, "already in use") || !strings.Contains(out, "--dapr-http-port") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	if left := c.list(); len(left) != 0 {
		t.Fatalf("failed runs left records: %+v", left)
	}
}

// TestCLIBuildingBlocksOnDefaults uses the state store, secret store and
// pub/sub that `tandem init` configures. It skips while tandemd does not
// serve those APIs yet (501 ERR_API_UNIMPLEMENTED).
func TestCLIBuildingBlocksOnDefaults(t *testing.T) {
	c := newTandemCLI(t)
	sub := buildSubscriberApp(t)
	p := c.start("tandem run shop", "run", "--app-id", "shop", "--app-port", fmt.Sprint(framework.FreePort(t)), "--", sub)
	shop := c.waitApps([]*framework.Process{p}, "shop")["shop"]
	base := fmt.Sprintf("http://127.0.0.1:%d/v1.0", shop.HTTPPort)

	resp, body := do(t, "POST", base+"/state/statestore", strings.NewReader(`[{"key":"cart","value":{"items":2}}]`), map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode == http.StatusNotImplemented {
		t.Skipf("tandemd does not serve the state API yet: %s", body)
	}
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("save state: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", base+"/state/statestore/cart", nil, nil)
	if resp.StatusCode != 200 || strings.ReplaceAll(string(body), " ", "") != `{"items":2}` {
		t.Fatalf("get state: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", base+"/secrets/localsecretstore/greeting", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "hello from tandem") {
		t.Fatalf("get secret: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", base+"/publish/pubsub/orders", strings.NewReader(`{"order":7}`), map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("publish: %d %s", resp.StatusCode, body)
	}
	// The app subscribes to the topic it published to (its own consumer
	// group): it gets its own message.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, got := do(t, "GET", base+"/invoke/shop/method/received", nil, nil)
		if strings.Contains(string(got), `"order":7`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the subscriber did not receive the message: %s\n%s", got, p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// buildSubscriberApp builds test/apps/subscriber into the test's temp folder.
func buildSubscriberApp(t *testing.T) string {
	t.Helper()
	sub := filepath.Join(t.TempDir(), "subscriber")
	cmd := exec.Command("go", "build", "-o", sub, "./test/apps/subscriber")
	cmd.Dir = framework.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build subscriber: %v\n%s", err, out)
	}
	return sub
}

// TestCLIPubSubAcrossApps: on the pub/sub `tandem init` configures
// (pubsub.sqlite in the home folder), apps started by separate `tandem run`s
// exchange messages. Every subscribing app is its own consumer group, so
// each gets every message once, whichever sidecar published it.
func TestCLIPubSubAcrossApps(t *testing.T) {
	c := newTandemCLI(t)
	sub := buildSubscriberApp(t)
	procs := []*framework.Process{
		c.start("tandem run shop", "run", "--app-id", "shop", "--app-port", fmt.Sprint(framework.FreePort(t)), "--", sub),
		c.start("tandem run audit", "run", "--app-id", "audit", "--app-port", fmt.Sprint(framework.FreePort(t)), "--", sub),
		c.start("tandem run web", "run", "--app-id", "web", "--app-port", fmt.Sprint(framework.FreePort(t)), "--", bins.Echo),
	}
	apps := c.waitApps(procs, "shop", "audit", "web")
	output := func() string {
		var b strings.Builder
		for _, p := range procs {
			b.WriteString(p.Output())
		}
		return b.String()
	}
	publish := func(from, data string) {
		t.Helper()
		url := fmt.Sprintf("http://127.0.0.1:%d/v1.0/publish/pubsub/orders", apps[from].HTTPPort)
		// The sidecar serves before its components are ready and answers
		// 503 ERR_PUBSUB_NOT_READY until then: a careful client retries.
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, body := do(t, "POST", url, strings.NewReader(data), map[string]string{"Content-Type": "application/json"})
			if resp.StatusCode == http.StatusNoContent {
				return
			}
			if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
				t.Fatalf("publish through %s: %d %s", from, resp.StatusCode, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// received lists what app got, asked through its own sidecar.
	received := func(app string) []string {
		t.Helper()
		url := fmt.Sprintf("http://127.0.0.1:%d/v1.0/invoke/%s/method/received", apps[app].HTTPPort, app)
		resp, body := do(t, "GET", url, nil, nil)
		var got []json.RawMessage
		if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil {
			t.Fatalf("%s received: %d %s", app, resp.StatusCode, body)
		}
		out := make([]string, len(got))
		for i, g := range got {
			out[i] = strings.ReplaceAll(string(g), " ", "")
		}
		return out
	}
	count := func(list []string, want string) int {
		n := 0
		for _, s := range list {
			if s == want {
				n++
			}
		}
		return n
	}
	waitAll := func(want string, apps ...string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for _, app := range apps {
			for count(received(app), want) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%s did not receive %s: %v\n%s", app, want, received(app), output())
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}

	// From an app that does not subscribe to both subscribers.
	publish("web", `{"order":42}`)
	// From a subscriber: the other app gets it, and so does the publisher's
	// own app (it subscribes too).
	publish("shop", `{"order":43}`)
	waitAll(`{"order":42}`, "shop", "audit")
	waitAll(`{"order":43}`, "shop", "audit")
	time.Sleep(500 * time.Millisecond)
	for _, app := range []string{"shop", "audit"} {
		got := received(app)
		for _, want := range []string{`{"order":42}`, `{"order":43}`} {
			if n := count(got, want); n != 1 {
				t.Errorf("%s received %s %d times, want once: %v", app, want, n, got)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(c.home, "pubsub.db")); err != nil {
		t.Errorf("the shared pub/sub file is not in the home folder: %v", err)
	}
}
