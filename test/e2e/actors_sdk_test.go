package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// sdkActorHost is one tandemd hosting actors for an app written with a
// Dapr SDK's actor runtime.
type sdkActorHost struct {
	sidecar *framework.Sidecar
	app     *framework.Process
	appPort int
}

// sdkActorMesh is sentry, Tandem's placement over mTLS, an actor state
// store (one sqlite file) and sidecars with mTLS: hosts, each with its own
// app process of one app ID, and caller, a sidecar with no app.
type sdkActorMesh struct {
	hosts  []sdkActorHost
	caller *framework.Sidecar
}

// startSDKActorMesh starts the mesh with n hosts of appID; startApp starts
// a host's app on port once its sidecar runs (the app needs the sidecar's
// ports; the sidecar waits for the app's /dapr/config).
func startSDKActorMesh(t *testing.T, n int, appID string, startApp func(port int, sc *framework.Sidecar) *framework.Process) *sdkActorMesh {
	t.Helper()
	s := framework.StartSentry(t, bins, framework.SentryOptions{})
	place := startTandemPlacement(t, 1, "--tls-enabled", "--sentry-address="+s.Addr,
		"--trust-anchors-file="+filepath.Join(s.CredsDir, "ca.crt"), "--trust-domain="+s.TrustDomain)[0].Addr
	res := framework.ActorStore(t)
	args := []string{"--placement-host-address", place, "--actors-disseminate-timeout", "10s"}
	m := &sdkActorMesh{}
	for range n {
		h := sdkActorHost{appPort: framework.FreePort(t)}
		h.sidecar = framework.StartSidecar(t, bins, framework.SidecarOptions{
			AppID: appID, AppPort: h.appPort, Sentry: s, ResourcesDir: res, Args: args,
		})
		h.app = startApp(h.appPort, h.sidecar)
		m.hosts = append(m.hosts, h)
	}
	m.caller = framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "caller", Sentry: s, Args: args})
	for _, h := range m.hosts {
		waitActorsReady(t, h.sidecar)
	}
	waitActorsReady(t, m.caller)
	return m
}

// sdkAppEnv is the environment an SDK app gets from `dapr run`.
func sdkAppEnv(port int, sc *framework.Sidecar) []string {
	return []string{
		fmt.Sprintf("APP_PORT=%d", port), fmt.Sprintf("DAPR_HTTP_PORT=%d", sc.HTTPPort),
		fmt.Sprintf("DAPR_GRPC_PORT=%d", sc.GRPCPort), "DAPR_HOST=127.0.0.1", "APP_ID=" + sc.AppID,
	}
}

// sdkActorReport is what an SDK actor app reports at GET /report.
type sdkActorReport struct {
	Counts      map[string]int `json:"counts"`
	Overlaps    int            `json:"overlaps"`
	Deactivated []string       `json:"deactivated"`
	Fired       []string       `json:"fired"`
}

// reports reads every host app's report.
func (m *sdkActorMesh) reports(t *testing.T) []sdkActorReport {
	t.Helper()
	out := make([]sdkActorReport, len(m.hosts))
	for i, h := range m.hosts {
		code, body := httpDo(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/report", h.appPort), "")
		if code != 200 {
			t.Fatalf("report of host %d: %d %s", i, code, body)
		}
		if err := json.Unmarshal([]byte(body), &out[i]); err != nil {
			t.Fatalf("report of host %d: %v: %s", i, err, body)
		}
	}
	return out
}

// fired returns the timer and reminder firings of all hosts that start
// with prefix.
func (m *sdkActorMesh) fired(t *testing.T, prefix string) []string {
	t.Helper()
	var got []string
	for _, r := range m.reports(t) {
		for _, f := range r.Fired {
			if strings.HasPrefix(f, prefix) {
				got = append(got, f)
			}
		}
	}
	return got
}

// waitFired waits up to within for n firings starting with prefix.
func (m *sdkActorMesh) waitFired(t *testing.T, prefix string, n int, within time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := m.fired(t, prefix)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q fired %d times in %s, want %d: %q", prefix, len(got), within, n, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitDeactivated waits until every id was deactivated on some host.
func (m *sdkActorMesh) waitDeactivated(t *testing.T, ids []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var all []string
		for _, r := range m.reports(t) {
			all = append(all, r.Deactivated...)
		}
		missing := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(all, id) })
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not deactivated after %s: %q (deactivated: %q)", within, missing, all)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startGoActorApp starts test/apps/actorapp (the Go SDK actor app).
func startGoActorApp(t *testing.T, idle string) func(int, *framework.Sidecar) *framework.Process {
	bin, err := framework.BuildApp("./test/apps/actorapp")
	if err != nil {
		t.Fatal(err)
	}
	return func(port int, sc *framework.Sidecar) *framework.Process {
		p := framework.Start(t, "actorapp "+sc.AppID, bin, []string{"--port", fmt.Sprint(port), "--idle-timeout", idle}, sdkAppEnv(port, sc)...)
		if err := framework.WaitTCP(fmt.Sprintf("127.0.0.1:%d", port), 15*time.Second); err != nil {
			t.Fatalf("actorapp: %v\n%s", err, p.Output())
		}
		return p
	}
}

// TestActorsGoSDK: three tandemd hosts (mTLS, Tandem's placement) of an
// app written with the Go SDK's actor runtime. Methods are called over
// HTTP and through the Go SDK client's InvokeActor (gRPC); the SDK's state
// manager saves state that is read back, also after the actor was
// deactivated for being idle; a timer and a reminder registered by the
// actor through the SDK fire with their data and their count of
// repetitions; a method calling its own actor with its Dapr-Reentrancy-Id
// is let in; idle actors are deactivated.
func TestActorsGoSDK(t *testing.T) {
	m := startSDKActorMesh(t, 3, "gocounters", startGoActorApp(t, "2s"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	grpcClient := func(sc *framework.Sidecar) dapr.Client {
		c, err := dapr.NewClientWithAddress(sc.GRPCAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	callerGRPC := grpcClient(m.caller)
	invoke := func(t *testing.T, id, method, data string) string {
		t.Helper()
		resp, err := callerGRPC.InvokeActor(ctx, &dapr.InvokeActorRequest{ActorType: "GoCounter", ActorID: id, Method: method, Data: []byte(data)})
		if err != nil {
			t.Fatalf("InvokeActor %s %s: %v", id, method, err)
		}
		return string(resp.Data)
	}
	var used []string // actor IDs activated, all to be deactivated when idle

	t.Run("HTTP and gRPC calls", func(t *testing.T) {
		for i := range 6 {
			id := fmt.Sprintf("call-%d", i)
			used = append(used, id)
			sc := m.hosts[i%3].sidecar
			if code, body := httpDo(t, http.MethodPost, sc.HTTPURL()+"/v1.0/actors/GoCounter/"+id+"/method/Incr", ""); code != 200 || body != "1" {
				t.Errorf("HTTP call of %s through host %d: %d %s", id, i%3, code, body)
			}
			if code, body := httpDo(t, http.MethodPut, m.caller.HTTPURL()+"/v1.0/actors/GoCounter/"+id+"/method/Incr", ""); code != 200 || body != "2" {
				t.Errorf("HTTP call of %s through the caller: %d %s", id, code, body)
			}
			if got := invoke(t, id, "Incr", ""); got != "3" {
				t.Errorf("gRPC call of %s through the caller: %s", id, got)
			}
			resp, err := grpcClient(m.hosts[(i+1)%3].sidecar).InvokeActor(ctx, &dapr.InvokeActorRequest{ActorType: "GoCounter", ActorID: id, Method: "Incr"})
			if err != nil || string(resp.Data) != "4" {
				t.Errorf("gRPC call of %s through host %d: %v %v", id, (i+1)%3, resp, err)
			}
		}
		owners := map[int]bool{}
		for h, r := range m.reports(t) {
			for id := range r.Counts {
				if strings.HasPrefix(id, "call-") {
					owners[h] = true
				}
			}
		}
		if len(owners) < 2 {
			t.Errorf("6 actors all live on %d host(s); placement should spread them", len(owners))
		}
	})

	t.Run("state", func(t *testing.T) {
		used = append(used, "state-1")
		if got := invoke(t, "state-1", "Add", "5"); got != "5" {
			t.Errorf("Add 5: %s", got)
		}
		if got := invoke(t, "state-1", "Add", "7"); got != "12" {
			t.Errorf("Add 7: %s", got)
		}
		if got := invoke(t, "state-1", "Get", ""); got != "12" {
			t.Errorf("Get: %s", got)
		}
		// The SDK saved it through the sidecar: the actor state API of any
		// host of the app reads it.
		if code, body := httpDo(t, http.MethodGet, m.hosts[2].sidecar.HTTPURL()+"/v1.0/actors/GoCounter/state-1/state/count", ""); code != 200 || body != "12" {
			t.Errorf("state through the HTTP API: %d %s", code, body)
		}
	})

	t.Run("timer", func(t *testing.T) {
		used = append(used, "timer-1")
		invoke(t, "timer-1", "StartTimer", `{"name":"tick","dueTime":"0s","period":"R3/PT1S","data":{"tag":"go-timer","n":1}}`)
		got := m.waitFired(t, "timer timer-1 ", 3, 10*time.Second)
		for _, f := range got {
			if f != `timer timer-1 {"n":1,"tag":"go-timer"}` {
				t.Errorf("timer callback: %s", f)
			}
		}
		time.Sleep(1500 * time.Millisecond)
		if got := m.fired(t, "timer timer-1 "); len(got) != 3 {
			t.Errorf("timer R3 fired %d times: %q", len(got), got)
		}
	})

	t.Run("reminder", func(t *testing.T) {
		used = append(used, "remind-1")
		invoke(t, "remind-1", "StartRemind", `{"name":"ping","dueTime":"1s","period":"R2/PT1S","data":{"hello":"go"}}`)
		got := m.waitFired(t, "reminder remind-1 ", 2, 15*time.Second)
		for _, f := range got {
			if f != `reminder remind-1 ping {"hello":"go"} R2/PT1S` {
				t.Errorf("reminder callback: %s", f)
			}
		}
		time.Sleep(1500 * time.Millisecond)
		if got := m.fired(t, "reminder remind-1 "); len(got) != 2 {
			t.Errorf("reminder R2 fired %d times: %q", len(got), got)
		}
	})

	t.Run("reentrancy", func(t *testing.T) {
		used = append(used, "reenter-1")
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		resp, err := callerGRPC.InvokeActor(cctx, &dapr.InvokeActorRequest{ActorType: "GoCounter", ActorID: "reenter-1", Method: "Reenter"})
		if err != nil || string(resp.Data) != "1" {
			t.Fatalf("reentrant call: %v %v", resp, err)
		}
	})

	t.Run("deactivation after idle", func(t *testing.T) {
		m.waitDeactivated(t, used, 20*time.Second)
		// A new activation reads the state the SDK saved before.
		if got := invoke(t, "state-1", "Get", ""); got != "12" {
			t.Errorf("Get after deactivation: %s", got)
		}
		for h, r := range m.reports(t) {
			if r.Overlaps != 0 {
				t.Errorf("host %d saw %d overlapping turns", h, r.Overlaps)
			}
		}
	})
}

// TestActorsSingleActivationUnderContention: 16 callers make 1000 calls
// each to 50 actor IDs of the Go SDK app on three hosts, through every
// sidecar, over HTTP and gRPC (the Go SDK client). The app counts in
// memory and checks that no actor ever has two turns at once; every ID
// lives on one host only and its count is exact.
func TestActorsSingleActivationUnderContention(t *testing.T) {
	m := startSDKActorMesh(t, 3, "gocounters", startGoActorApp(t, "1h"))
	const callers, calls, ids = 16, 1000, 50
	sidecars := []*framework.Sidecar{m.hosts[0].sidecar, m.hosts[1].sidecar, m.hosts[2].sidecar, m.caller}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: callers}, Timeout: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var failures atomic.Int64
	fail := func(format string, a ...any) {
		if failures.Add(1) <= 5 {
			t.Errorf(format, a...)
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for c := range callers {
		sc := sidecars[c%len(sidecars)]
		var gc dapr.Client
		if c%2 == 1 { // odd callers use the Go SDK client's InvokeActor
			var err error
			if gc, err = dapr.NewClientWithAddress(sc.GRPCAddr()); err != nil {
				t.Fatal(err)
			}
			defer gc.Close()
		}
		wg.Go(func() {
			for i := range calls {
				id := fmt.Sprintf("c-%d", (c*calls+i)%ids)
				if gc != nil {
					if _, err := gc.InvokeActor(ctx, &dapr.InvokeActorRequest{ActorType: "GoCounter", ActorID: id, Method: "Incr"}); err != nil {
						fail("caller %d: gRPC call of %s: %v", c, id, err)
					}
					continue
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, sc.HTTPURL()+"/v1.0/actors/GoCounter/"+id+"/method/Incr", nil)
				resp, err := hc.Do(req)
				if err != nil {
					fail("caller %d: HTTP call of %s: %v", c, id, err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					fail("caller %d: HTTP call of %s: %d %s", c, id, resp.StatusCode, b)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	t.Logf("%d calls by %d callers over %d actors on 3 hosts took %s (%.0f calls/s)", callers*calls, callers, ids, took, float64(callers*calls)/took.Seconds())
	if failures.Load() > 0 {
		t.Fatalf("%d calls failed", failures.Load())
	}
	total := 0
	where := map[string][]int{}
	for h, r := range m.reports(t) {
		if r.Overlaps != 0 {
			t.Errorf("host %d saw %d overlapping turns", h, r.Overlaps)
		}
		for id, n := range r.Counts {
			where[id] = append(where[id], h)
			total += n
			if n != callers*calls/ids {
				t.Errorf("%s counted %d calls on host %d, want %d", id, n, h, callers*calls/ids)
			}
		}
	}
	if total != callers*calls {
		t.Errorf("counted %d calls in all, want %d", total, callers*calls)
	}
	if len(where) != ids {
		t.Errorf("%d actor IDs were called, want %d", len(where), ids)
	}
	hosts := map[int]bool{}
	for id, hs := range where {
		if len(hs) != 1 {
			t.Errorf("%s was active on hosts %v", id, hs)
		}
		hosts[hs[0]] = true
	}
	if len(hosts) != 3 {
		t.Errorf("the actors live on %d hosts, want 3", len(hosts))
	}
}

// startJSActorApp starts test/e2e/jsactors/app.js (the JS SDK actor app)
// with node; it needs `npm ci` in that folder first.
func startJSActorApp(t *testing.T, idle string) func(int, *framework.Sidecar) *framework.Process {
	t.Helper()
	node, err := exec.LookPath("node")
	needTool(t, err == nil, "node")
	dir := filepath.Join(framework.RepoRoot(), "test", "e2e", "jsactors")
	_, err = os.Stat(filepath.Join(dir, "node_modules", "@dapr", "dapr"))
	needTool(t, err == nil, "@dapr/dapr (cd test/e2e/jsactors && npm ci)")
	return func(port int, sc *framework.Sidecar) *framework.Process {
		p := framework.Start(t, "jsactors "+sc.AppID, node, []string{filepath.Join(dir, "app.js")},
			append(sdkAppEnv(port, sc), "IDLE_TIMEOUT="+idle)...)
		if err := framework.WaitTCP(fmt.Sprintf("127.0.0.1:%d", port), 30*time.Second); err != nil {
			t.Fatalf("jsactors: %v\n%s", err, p.Output())
		}
		return p
	}
}

// TestActorsJSSDK: the same as TestActorsGoSDK with an app written with
// the JS SDK's AbstractActor (@dapr/dapr): calls over HTTP and gRPC,
// state through the SDK's state manager, a timer and a reminder that the
// actor registers and removes itself, reentrancy and idle deactivation.
func TestActorsJSSDK(t *testing.T) {
	m := startSDKActorMesh(t, 3, "jscounters", startJSActorApp(t, "2s"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gc, err := dapr.NewClientWithAddress(m.caller.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	call := func(t *testing.T, sc *framework.Sidecar, id, method, data string) string {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, sc.HTTPURL()+"/v1.0/actors/JSCounter/"+id+"/method/"+method, strings.NewReader(data))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("call %s %s: %v", id, method, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("call %s %s: %d %s", id, method, resp.StatusCode, b)
		}
		return string(b)
	}
	var used []string

	t.Run("HTTP and gRPC calls", func(t *testing.T) {
		for i := range 6 {
			id := fmt.Sprintf("call-%d", i)
			used = append(used, id)
			if got := call(t, m.hosts[i%3].sidecar, id, "incr", ""); got != "1" {
				t.Errorf("HTTP call of %s through host %d: %s", id, i%3, got)
			}
			resp, err := gc.InvokeActor(ctx, &dapr.InvokeActorRequest{ActorType: "JSCounter", ActorID: id, Method: "incr"})
			if err != nil || string(resp.Data) != "2" {
				t.Errorf("gRPC call of %s: %v %v", id, resp, err)
			}
		}
		owners := 0
		for _, r := range m.reports(t) {
			if len(r.Counts) > 0 {
				owners++
			}
		}
		if owners < 2 {
			t.Errorf("6 actors all live on %d host(s); placement should spread them", owners)
		}
	})

	// Arguments go as a JSON array (the SDK spreads it; its body parser
	// refuses a bare number), and timer and reminder data as a string
	// (the SDK turns an object into "[object Object]").
	t.Run("state", func(t *testing.T) {
		used = append(used, "state-1")
		if got := call(t, m.caller, "state-1", "add", "[5]"); got != "5" {
			t.Errorf("add 5: %s", got)
		}
		if got := call(t, m.caller, "state-1", "add", "[7]"); got != "12" {
			t.Errorf("add 7: %s", got)
		}
		resp, err := gc.InvokeActor(ctx, &dapr.InvokeActorRequest{ActorType: "JSCounter", ActorID: "state-1", Method: "get"})
		if err != nil || string(resp.Data) != "12" {
			t.Errorf("get over gRPC: %v %v", resp, err)
		}
		if code, body := httpDo(t, http.MethodGet, m.hosts[1].sidecar.HTTPURL()+"/v1.0/actors/JSCounter/state-1/state/count", ""); code != 200 || body != "12" {
			t.Errorf("state through the HTTP API: %d %s", code, body)
		}
	})

	t.Run("timer", func(t *testing.T) {
		used = append(used, "timer-1")
		call(t, m.caller, "timer-1", "startTimer", `["js-timer"]`)
		got := m.waitFired(t, "timer timer-1 ", 3, 10*time.Second)
		for _, f := range got {
			if f != `timer timer-1 "js-timer"` {
				t.Errorf("timer callback: %s", f)
			}
		}
		time.Sleep(2 * time.Second) // the actor removed it after its third firing
		if got := m.fired(t, "timer timer-1 "); len(got) != 3 {
			t.Errorf("timer fired %d times after it was removed at 3: %q", len(got), got)
		}
	})

	t.Run("reminder", func(t *testing.T) {
		used = append(used, "remind-1")
		call(t, m.caller, "remind-1", "startRemind", `["hello js"]`)
		got := m.waitFired(t, "reminder remind-1 ", 2, 15*time.Second)
		for _, f := range got {
			if f != `reminder remind-1 "hello js"` {
				t.Errorf("reminder callback: %s", f)
			}
		}
		time.Sleep(2 * time.Second)
		if got := m.fired(t, "reminder remind-1 "); len(got) != 2 {
			t.Errorf("reminder fired %d times after it was removed at 2: %q", len(got), got)
		}
	})

	t.Run("reentrancy", func(t *testing.T) {
		used = append(used, "reenter-1")
		if got := call(t, m.caller, "reenter-1", "reenter", ""); got != "1" {
			t.Errorf("reentrant call: %s", got)
		}
	})

	t.Run("deactivation after idle", func(t *testing.T) {
		m.waitDeactivated(t, used, 20*time.Second)
		if got := call(t, m.caller, "state-1", "get", ""); got != "12" {
			t.Errorf("get after deactivation: %s", got)
		}
		for h, r := range m.reports(t) {
			if r.Overlaps != 0 {
				t.Errorf("host %d saw %d overlapping turns", h, r.Overlaps)
			}
		}
	})
}
