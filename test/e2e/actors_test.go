package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// daprPlacement is Dapr's own placement binary, built by
// scripts/conformance.sh.
const daprPlacement = "/var/tmp/tandem-dapr-suite/bin/placement"

// startPlacement starts Dapr's placement (plaintext, one replica) and
// returns its address; with TANDEM_E2E_PLACEMENT=tandem it starts Tandem's
// instead, so that every actor test runs against either.
func startPlacement(t *testing.T) string {
	t.Helper()
	if os.Getenv("TANDEM_E2E_PLACEMENT") == "tandem" {
		return placementAddrs(startTandemPlacement(t, 1))
	}
	if _, err := os.Stat(daprPlacement); err != nil {
		msg := fmt.Sprintf("Dapr's placement binary is not built (%s); run scripts/conformance.sh --build once", daprPlacement)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg) // .ci/run builds it first: missing there is a failure, not a skip
		}
		t.Skip(msg)
	}
	port, raft := framework.FreePort(t), framework.FreePort(t)
	framework.Start(t, "placement", daprPlacement, []string{
		"--id=p0", "--port=" + fmt.Sprint(port), "--listen-address=127.0.0.1",
		"--healthz-port=" + fmt.Sprint(framework.FreePort(t)), "--healthz-listen-address=127.0.0.1",
		"--metrics-port=" + fmt.Sprint(framework.FreePort(t)), "--metrics-listen-address=127.0.0.1",
		"--initial-cluster=p0=127.0.0.1:" + fmt.Sprint(raft), "--tls-enabled=false",
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := framework.WaitTCP(addr, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	return addr
}

// counterApp is an actor app hosting type "counter": method "add" adds to
// the actor's count and returns it, checking that no two turns of one
// actor ever overlap; "self" calls the actor's own "add" back through the
// sidecar (reentrancy). It records deactivations.
type counterApp struct {
	name        string
	idleTimeout string
	reentrant   bool
	sidecarURL  atomic.Value // string

	// turns, when shared by the apps of a test, catches one actor in a
	// turn on two hosts at once.
	turns *turnTracker

	mu          sync.Mutex
	counts      map[string]int
	inTurn      map[string]bool
	overlaps    int
	deactivated []string
	reminded    []string // bodies of remind/ calls
	flaky       map[string]int
	served      atomic.Int64
}

func (a *counterApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.URL.Path == "/dapr/config":
		cfg := map[string]any{"entities": []string{"counter"}, "actorIdleTimeout": a.idleTimeout, "drainOngoingCallTimeout": ""}
		if a.reentrant {
			cfg["reentrancy"] = map[string]any{"enabled": true}
		}
		_ = json.NewEncoder(w).Encode(cfg)
	case r.Method == http.MethodDelete && len(parts) == 3 && parts[0] == "actors":
		a.mu.Lock()
		a.deactivated = append(a.deactivated, parts[2])
		a.mu.Unlock()
	case r.Method == http.MethodPut && len(parts) >= 5 && parts[0] == "actors" && parts[3] == "method":
		a.method(w, r, parts[2], strings.Join(parts[4:], "/"))
	default:
		http.NotFound(w, r)
	}
}

func (a *counterApp) method(w http.ResponseWriter, r *http.Request, id, method string) {
	a.served.Add(1)
	if method == "self" {
		req, _ := http.NewRequest(http.MethodPost, a.sidecarURL.Load().(string)+"/v1.0/actors/counter/"+id+"/method/add", nil)
		req.Header.Set("Dapr-Reentrancy-Id", r.Header.Get("Dapr-Reentrancy-Id"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(b)
		return
	}
	if strings.HasPrefix(method, "remind/") {
		b, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.reminded = append(a.reminded, string(b))
		a.mu.Unlock()
		return
	}
	if method == "flaky" { // fails (500) three times per actor, then answers
		a.mu.Lock()
		a.flaky[id]++
		n := a.flaky[id]
		a.mu.Unlock()
		if n <= 3 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_, _ = fmt.Fprintf(w, `{"attempts":%d}`, n)
		return
	}
	if method == "fail" {
		w.Header().Set("X-DaprErrorResponseHeader", "true")
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte(`{"app":"failed"}`))
		return
	}
	a.mu.Lock()
	if a.inTurn[id] {
		a.overlaps++
	}
	a.inTurn[id] = true
	a.mu.Unlock()
	if a.turns != nil {
		defer a.turns.enter(id)()
	}
	time.Sleep(200 * time.Microsecond)
	a.mu.Lock()
	a.counts[id]++
	n := a.counts[id]
	a.inTurn[id] = false
	a.mu.Unlock()
	_, _ = fmt.Fprintf(w, `{"host":%q,"count":%d}`, a.name, n)
}

func startCounterApp(t *testing.T, name, idle string, reentrant bool) (*counterApp, int) {
	t.Helper()
	app := &counterApp{name: name, idleTimeout: idle, reentrant: reentrant, counts: map[string]int{}, inTurn: map[string]bool{}, flaky: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: app, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return app, ln.Addr().(*net.TCPAddr).Port
}

func actorSidecar(t *testing.T, appID string, appPort int, placement, resources string) *framework.Sidecar {
	t.Helper()
	return framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: appID, AppPort: appPort, ResourcesDir: resources,
		Args: []string{"--placement-host-address", placement, "--actors-disseminate-timeout", "10s"},
	})
}

// memoryActorStore returns a resources folder holding "actorstore", an
// in-memory actor state store (each sidecar keeps its own).
func memoryActorStore(t *testing.T) string {
	t.Helper()
	res := t.TempDir()
	if err := os.WriteFile(res+"/state.yaml", []byte(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: actorstore
spec:
  type: state.in-memory
  version: v1
  metadata:
  - name: actorStateStore
    value: "true"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return res
}

// addConcurrently has callers goroutines each make calls "add" calls on the
// counter actors id-0 … id-(ids-1), spread over sidecars; a failed call is
// a test error (the first three are shown). It returns the failures.
func addConcurrently(t *testing.T, sidecars []*framework.Sidecar, callers, calls, ids int) int64 {
	t.Helper()
	var wg sync.WaitGroup
	var failures atomic.Int64
	for c := range callers {
		wg.Go(func() {
			for i := range calls {
				s := sidecars[(c+i)%len(sidecars)]
				code, body := httpDo(t, http.MethodPost, fmt.Sprintf("%s/v1.0/actors/counter/id-%d/method/add", s.HTTPURL(), (c*calls+i)%ids), "")
				if code != 200 && failures.Add(1) <= 3 {
					t.Errorf("call through %s: %d %s", s.Process.Name, code, body)
				}
			}
		})
	}
	wg.Wait()
	return failures.Load()
}

func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitActorsReady waits until the sidecar reports placement connected.
func waitActorsReady(t *testing.T, s *framework.Sidecar) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_, body := httpDo(t, http.MethodGet, s.HTTPURL()+"/v1.0/metadata", "")
		if strings.Contains(body, `"placement: connected"`) && strings.Contains(body, `"hostReady":true`) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, body := httpDo(t, http.MethodGet, s.HTTPURL()+"/v1.0/metadata", "")
	t.Fatalf("sidecar %s never connected to placement: %s\n%s", s.AppID, body, s.Output())
}

// TestActorsTwoHostsWithDaprPlacement: two tandemd hosts of one actor type
// share Dapr's placement table; calls from a third sidecar (no app) and
// from each host reach the one owner, turns never overlap, counts are
// exact, state is read back, and idle actors are deactivated.
func TestActorsTwoHostsWithDaprPlacement(t *testing.T) {
	testActorsTwoHosts(t, startPlacement(t))
}

// TestActorsTwoHostsWithTandemPlacement is the same against Tandem's
// placement (one replica).
func TestActorsTwoHostsWithTandemPlacement(t *testing.T) {
	testActorsTwoHosts(t, placementAddrs(startTandemPlacement(t, 1)))
}

func testActorsTwoHosts(t *testing.T, place string) {
	res := memoryActorStore(t)
	appA, portA := startCounterApp(t, "a", "2s", true)
	appB, portB := startCounterApp(t, "b", "2s", true)
	sa := actorSidecar(t, "counters", portA, place, res)
	sb := actorSidecar(t, "counters", portB, place, res)
	caller := actorSidecar(t, "caller", 0, place, "")
	appA.sidecarURL.Store(sa.HTTPURL())
	appB.sidecarURL.Store(sb.HTTPURL())
	for _, s := range []*framework.Sidecar{sa, sb, caller} {
		waitActorsReady(t, s)
	}

	// Contention: 8 callers x 50 calls over 10 actors, through all sidecars.
	const callers, calls, ids = 8, 50, 10
	addConcurrently(t, []*framework.Sidecar{sa, sb, caller}, callers, calls, ids)
	total := 0
	for _, app := range []*counterApp{appA, appB} {
		app.mu.Lock()
		if app.overlaps != 0 {
			t.Errorf("app %s saw %d overlapping turns", app.name, app.overlaps)
		}
		for _, n := range app.counts {
			total += n
		}
		app.mu.Unlock()
	}
	if total != callers*calls {
		t.Errorf("counted %d calls, want %d", total, callers*calls)
	}
	if appA.served.Load() == 0 || appB.served.Load() == 0 {
		t.Errorf("one host served nothing: a=%d b=%d", appA.served.Load(), appB.served.Load())
	}
	// Each actor lives on one host only.
	for i := range ids {
		id := fmt.Sprintf("id-%d", i)
		appA.mu.Lock()
		_, onA := appA.counts[id]
		appA.mu.Unlock()
		appB.mu.Lock()
		_, onB := appB.counts[id]
		appB.mu.Unlock()
		if onA == onB {
			t.Errorf("%s active on a=%v b=%v", id, onA, onB)
		}
	}

	// Reentrancy: "self" calls back into the same actor inside its turn.
	if code, body := httpDo(t, http.MethodPost, caller.HTTPURL()+"/v1.0/actors/counter/re-1/method/self", ""); code != 200 || !strings.Contains(body, `"count":1`) {
		t.Errorf("reentrant call: %d %s", code, body)
	}
	// An app error flagged with X-DaprErrorResponseHeader comes back as is.
	if code, body := httpDo(t, http.MethodPost, caller.HTTPURL()+"/v1.0/actors/counter/e-1/method/fail", ""); code != http.StatusTeapot || body != `{"app":"failed"}` {
		t.Errorf("flagged app error: %d %s", code, body)
	}

	// State: written in a transaction through the owner, read back.
	owner := sa
	if _, onA := appA.counts["id-0"]; !onA {
		owner = sb
	}
	if code, body := httpDo(t, http.MethodPost, owner.HTTPURL()+"/v1.0/actors/counter/id-0/state",
		`[{"operation":"upsert","request":{"key":"k","value":{"n": 1}}}]`); code != 204 {
		t.Fatalf("transaction: %d %s", code, body)
	}
	if code, body := httpDo(t, http.MethodGet, owner.HTTPURL()+"/v1.0/actors/counter/id-0/state/k", ""); code != 200 || body != `{"n":1}` {
		t.Fatalf("get state: %d %s", code, body)
	}
	if code, body := httpDo(t, http.MethodPost, caller.HTTPURL()+"/v1.0/actors/counter/id-0/state", `[]`); code != 500 || !strings.Contains(body, "ERR_ACTOR_RUNTIME_NOT_FOUND") {
		t.Errorf("transaction without an actor state store: %d %s", code, body)
	}

	// An unregistered type fails with Dapr's code, once daprd's built-in
	// not-found retries (5 s) have given placement time to bring it. Last
	// but one: the actors above go idle meanwhile.
	start := time.Now()
	if code, body := httpDo(t, http.MethodPost, caller.HTTPURL()+"/v1.0/actors/nobody/1/method/x", ""); code != 404 || !strings.Contains(body, "ERR_ACTOR_NO_ADDRESS") {
		t.Errorf("unknown type: %d %s", code, body)
	} else if d := time.Since(start); d > 8*time.Second {
		t.Errorf("unknown type answered after %s, want about 5s", d)
	}

	// Idle deactivation (actorIdleTimeout 2s).
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		appA.mu.Lock()
		appB.mu.Lock()
		n := len(appA.deactivated) + len(appB.deactivated)
		appB.mu.Unlock()
		appA.mu.Unlock()
		if n >= ids {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("idle actors not deactivated: a=%v b=%v", appA.deactivated, appB.deactivated)
}

// TestActorTimer: a timer fires in the actor with its data, a bad period
// is a 400 naming the field, and a sidecar that does not host the type
// refuses to create one.
func TestActorTimer(t *testing.T) {
	place := startPlacement(t)
	app, port := startCounterApp(t, "a", "1m", false)
	s := actorSidecar(t, "timers", port, place, "")
	caller := actorSidecar(t, "caller", 0, place, "")
	app.sidecarURL.Store(s.HTTPURL())
	waitActorsReady(t, s)
	if code, body := httpDo(t, http.MethodPost, s.HTTPURL()+"/v1.0/actors/counter/t-1/timers/tick",
		`{"dueTime":"0s","period":"R3/PT1S","callback":"cb","data":{"x":1}}`); code != 204 {
		t.Fatalf("create timer: %d %s", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && app.served.Load() < 3 {
		time.Sleep(50 * time.Millisecond)
	}
	if got := app.served.Load(); got != 3 {
		t.Fatalf("timer fired %d times, want 3", got)
	}
	if code, body := httpDo(t, http.MethodPost, s.HTTPURL()+"/v1.0/actors/counter/t-1/timers/bad", `{"dueTime":"0s","period":"soon"}`); code != 400 || !strings.Contains(body, "ERR_ACTOR_TIMER_CREATE") || !strings.Contains(body, "period") {
		t.Errorf("bad period: %d %s", code, body)
	}
	if code, body := httpDo(t, http.MethodPost, caller.HTTPURL()+"/v1.0/actors/counter/t-1/timers/x", `{"dueTime":"1s"}`); code != 500 || !strings.Contains(body, "ERR_ACTOR_TIMER_CREATE") {
		t.Errorf("timer on a non-hosting sidecar: %d %s", code, body)
	}
}

// TestActorReminderSurvivesRestart: a reminder stored in the actor state
// store (sqlite file) fires with its data, keeps firing after its sidecar
// is restarted, stops after its repetitions, and is refused (403) on a
// sidecar whose app does not host the type.
func TestActorReminderSurvivesRestart(t *testing.T) {
	place := startPlacement(t)
	res := framework.ActorStore(t)
	app, port := startCounterApp(t, "a", "1m", false)
	s := actorSidecar(t, "reminders", port, place, res)
	caller := actorSidecar(t, "caller", 0, place, "")
	waitActorsReady(t, s)
	if code, body := httpDo(t, http.MethodPost, s.HTTPURL()+"/v1.0/actors/counter/r-1/reminders/ping",
		`{"dueTime":"1s","period":"R4/PT1S","data":{"hello":"world"}}`); code != 204 {
		t.Fatalf("create reminder: %d %s", code, body)
	}
	if code, body := httpDo(t, http.MethodGet, s.HTTPURL()+"/v1.0/actors/counter/r-1/reminders/ping", ""); code != 200 || !strings.Contains(body, `"period":"R4/PT1S"`) {
		t.Errorf("get reminder: %d %s", code, body)
	}
	if code, body := httpDo(t, http.MethodPost, caller.HTTPURL()+"/v1.0/actors/counter/r-1/reminders/x", `{"dueTime":"1s"}`); code != 403 || !strings.Contains(body, "ERR_ACTOR_REMINDER_NON_HOSTED") {
		t.Errorf("reminder on a non-hosting sidecar: %d %s", code, body)
	}
	fired := func() []string {
		app.mu.Lock()
		defer app.mu.Unlock()
		return append([]string(nil), app.reminded...)
	}
	waitFor := func(n int, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) && len(fired()) < n {
			time.Sleep(50 * time.Millisecond)
		}
		if got := len(fired()); got < n {
			t.Fatalf("reminder fired %d times, want %d\n%s", got, n, s.Output())
		}
	}
	waitFor(1, 10*time.Second)
	s.Restart()
	s.WaitReady(t)
	waitActorsReady(t, s)
	waitFor(4, 20*time.Second)
	time.Sleep(2500 * time.Millisecond)
	got := fired()
	if len(got) != 4 {
		t.Errorf("fired %d times, want exactly 4: %q", len(got), got)
	}
	for _, b := range got {
		if !strings.Contains(b, `"data":{"hello":"world"}`) || !strings.Contains(b, `"period":"R4/PT1S"`) {
			t.Errorf("callback body %s", b)
		}
	}
	if code, _ := httpDo(t, http.MethodGet, s.HTTPURL()+"/v1.0/actors/counter/r-1/reminders/ping", ""); code != 404 {
		t.Errorf("finished reminder still there: %d", code)
	}
}

// TestActorReminderWithSchedulerUnreachable: a sidecar whose
// --scheduler-host-address answers nothing still serves actor calls, and
// a reminder creation fails with an error naming the scheduler within the
// sidecar's bound (10s) instead of hanging until its caller gives up.
func TestActorReminderWithSchedulerUnreachable(t *testing.T) {
	place := startPlacement(t)
	app, port := startCounterApp(t, "a", "1m", false)
	s := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "nosched", AppPort: port,
		Args: []string{"--placement-host-address", place, "--actors-disseminate-timeout", "10s",
			"--scheduler-host-address", fmt.Sprintf("127.0.0.1:%d", framework.FreePort(t))},
	})
	app.sidecarURL.Store(s.HTTPURL())
	waitActorsReady(t, s)
	if code, body := httpDo(t, http.MethodPost, s.HTTPURL()+"/v1.0/actors/counter/u-1/method/add", ""); code != 200 {
		t.Fatalf("actor call without a scheduler: %d %s", code, body)
	}
	c := &http.Client{Timeout: 40 * time.Second}
	start := time.Now()
	resp, err := c.Post(s.HTTPURL()+"/v1.0/actors/counter/u-1/reminders/r", "application/json", strings.NewReader(`{"dueTime":"1s"}`))
	if err != nil {
		t.Fatalf("create reminder after %s: %v (the call hung)", time.Since(start).Round(time.Second), err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(b), "scheduler") || time.Since(start) > 30*time.Second {
		t.Fatalf("create reminder: %d %s after %s, want a 500 naming the scheduler within 30s", resp.StatusCode, b, time.Since(start).Round(time.Second))
	}
}
