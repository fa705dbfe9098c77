package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestCLIRunActorsAcrossApps: `tandem run` starts placement with the local
// sentry and points its sidecars at it, so two apps started in two
// terminals host one actor type together: calls through either sidecar
// reach the actor's one owner, and both hosts own some of the actors.
// `tandem status` and `tandem list` show placement.
func TestCLIRunActorsAcrossApps(t *testing.T) {
	c := newTandemCLI(t)
	// The counter apps are served by this test; the command tandem run
	// starts for each only keeps it running. tandem run wants the app's
	// port free when it starts, so each app listens once its sidecar is
	// starting.
	appA, appB := newCounterApp("a", "1h", false), newCounterApp("b", "1h", false)
	portA, portB := framework.FreePort(t), framework.FreePort(t)
	pa := c.start("tandem run counters-a", "run", "--app-id", "counters", "--app-port", fmt.Sprint(portA), "--", "sleep", "600")
	serveWhenStarting(t, pa, appA, portA)
	apps := c.waitApps([]*framework.Process{pa}, "counters")
	urlA := fmt.Sprintf("http://127.0.0.1:%d", apps["counters"].HTTPPort)
	pb := c.start("tandem run counters-b", "run", "--app-id", "counters2", "--app-port", fmt.Sprint(portB), "--", "sleep", "600")
	serveWhenStarting(t, pb, appB, portB)
	apps = c.waitApps([]*framework.Process{pa, pb}, "counters", "counters2")
	urlB := fmt.Sprintf("http://127.0.0.1:%d", apps["counters2"].HTTPPort)
	appA.sidecarURL.Store(urlA)
	appB.sidecarURL.Store(urlB)

	for _, u := range []string{urlA, urlB} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, body := httpDo(t, http.MethodGet, u+"/v1.0/metadata", "")
			if strings.Contains(body, `"placement: connected"`) && strings.Contains(body, `"hostReady":true`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sidecar %s never connected to placement: %s\n%s\n%s", u, body, pa.Output(), pb.Output())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// 20 actors, each called 3 times through alternating sidecars: the
	// counts say every call of an actor reached the same host.
	const ids = 20
	for round := 1; round <= 3; round++ {
		for i := range ids {
			u := []string{urlA, urlB}[(i+round)%2]
			deadline := time.Now().Add(20 * time.Second)
			for {
				code, body := httpDo(t, http.MethodPost, fmt.Sprintf("%s/v1.0/actors/counter/id-%d/method/add", u, i), "")
				if code == http.StatusOK {
					if !strings.Contains(body, fmt.Sprintf(`"count":%d`, round)) {
						t.Fatalf("actor id-%d round %d answered %s: calls reached more than one host", i, round, body)
					}
					break
				}
				// Until both hosts are in the table a call may wait for it.
				if time.Now().After(deadline) {
					t.Fatalf("actor id-%d: %d %s", i, code, body)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	appA.mu.Lock()
	na := len(appA.counts)
	appA.mu.Unlock()
	appB.mu.Lock()
	nb := len(appB.counts)
	appB.mu.Unlock()
	if na+nb != ids || na == 0 || nb == 0 {
		t.Fatalf("actors on host a: %d, on host b: %d; want %d in all, on both hosts", na, nb, ids)
	}

	status := c.mustExec("status")
	if !strings.Contains(status, "Placement: running on 127.0.0.1:") {
		t.Fatalf("tandem status shows no placement:\n%s", status)
	}
	if list := c.mustExec("list"); !strings.Contains(list, "Actor placement: 127.0.0.1:") {
		t.Fatalf("tandem list shows no placement:\n%s", list)
	}
}

func newCounterApp(name, idle string, reentrant bool) *counterApp {
	return &counterApp{name: name, idleTimeout: idle, reentrant: reentrant, counts: map[string]int{}, inTurn: map[string]bool{}, flaky: map[string]int{}}
}

// serveWhenStarting serves app on port once tandem run p says it starts
// the sidecar (it has checked that the port is free).
func serveWhenStarting(t *testing.T, p *framework.Process, app *counterApp, port int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.Output(), "Starting the sidecar") {
		if done, err := p.Exited(); done || time.Now().After(deadline) {
			t.Fatalf("%s did not start its sidecar (%v):\n%s", p.Name, err, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: app, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}
