package e2e

import (
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // reads the registry the sidecars write

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// xdsResolverConfig writes a Configuration whose name resolution is the
// xds component: lookups from the xDS server at xdsAddr (mTLS with the
// sidecar's SVID), registration in the SQLite file `tandem xds` follows.
func xdsResolverConfig(t *testing.T, xdsAddr, registry string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: xds-resolver
spec:
  nameResolution:
    component: xds
    configuration:
      server: %q
      registry:
        connectionString: %q
        updateInterval: 2s
`, xdsAddr, registry)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// registeredAt polls the registry (read only) until app has a row, and
// returns when it was first seen.
func registeredAt(t *testing.T, registry, app string, within time.Duration) time.Time {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+registry+"?mode=ro&_pragma=busy_timeout(1000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM hosts WHERE app_id = ?`, app).Scan(&n); err == nil && n > 0 {
			return time.Now()
		}
	}
	t.Fatalf("%s did not register in %s within %v", app, registry, within)
	return time.Time{}
}

// pushedAt returns the time of the caller's first "endpoints pushed" log
// line for app (the xds resolver logs it at debug level).
func pushedAt(s *framework.Sidecar, app string) (time.Time, bool) {
	for line := range strings.SplitSeq(s.Output(), "\n") {
		if !strings.Contains(line, `msg="endpoints pushed"`) || !strings.Contains(line, "app_id="+app+" ") && !strings.HasSuffix(line, "app_id="+app) {
			continue
		}
		ts, ok := strings.CutPrefix(line, "time=")
		if !ok {
			continue
		}
		ts, _, _ = strings.Cut(ts, " ")
		if at, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			return at, true
		}
	}
	return time.Time{}, false
}

func invokeStatus(t *testing.T, caller *framework.Sidecar, app string) int {
	t.Helper()
	resp, err := http.Post(caller.HTTPURL()+"/v1.0/invoke/"+app+"/method/echo", "text/plain", strings.NewReader("hi"))
	if err != nil {
		t.Fatalf("invoke %s: %v", app, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestXDSNameResolution: two tandemd sidecars with the xds name resolution
// component find each other through `tandem xds`, over mTLS with their
// SVIDs. Their lookups never read the SQLite registry (they only register
// in it): a sidecar that registers is known to the caller by push within
// 1 s; while the xDS server is down the caller keeps the endpoints it has
// and does not see a sidecar registering in the file meanwhile; when the
// server is back it does.
func TestXDSNameResolution(t *testing.T) {
	s := framework.StartSentry(t, bins, framework.SentryOptions{})
	registry := filepath.Join(t.TempDir(), "r.db")
	xdsPort := framework.FreePort(t)
	xdsAddr := "127.0.0.1:" + strconv.Itoa(xdsPort)
	xdsServer := framework.Start(t, "tandem xds", bins.Tandem, []string{"xds",
		"--registry", registry, "--update-interval", "2s", "--port", strconv.Itoa(xdsPort),
		"--sentry-address", s.Addr, "--control-plane-trust-domain", s.TrustDomain,
	}, "DAPR_TRUST_ANCHORS="+s.TrustAnchors(t))
	if err := framework.WaitTCP(xdsAddr, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	cfg := xdsResolverConfig(t, xdsAddr, registry)
	sidecar := func(id string, withApp, wait bool) *framework.Sidecar {
		o := framework.SidecarOptions{AppID: id, Sentry: s, Args: []string{"--config", cfg}, NoWait: !wait}
		if withApp {
			o.AppPort = framework.StartApp(t, id+" app", bins.Echo).Port
		}
		return framework.StartSidecar(t, bins, o)
	}

	caller := sidecar("caller", false, true)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(caller.Output(), "connected to the xds server"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the caller's xds resolver did not connect:\n%s", caller.Output())
		}
	}
	if code := invokeStatus(t, caller, "callee"); code == http.StatusOK {
		t.Fatal("callee found before it started")
	}

	// The callee registers; the server pushes it to the caller.
	callee := sidecar("callee", true, false)
	registered := registeredAt(t, registry, "callee", 30*time.Second)
	callee.WaitReady(t)
	for deadline := time.Now().Add(5 * time.Second); invokeStatus(t, caller, "callee") != http.StatusOK; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the caller never reached the callee:\n%s", caller.Output())
		}
	}
	pushed, ok := pushedAt(caller, "callee")
	if !ok {
		t.Fatalf("no push of callee's endpoints in the caller's log:\n%s", caller.Output())
	}
	// The row is seen by polling every 2 ms, so it was written at most a
	// few ms before registered.
	lag := pushed.Sub(registered)
	t.Logf("callee registered in SQLite; its endpoint reached the caller by push %v later", lag.Round(time.Millisecond))
	if lag > time.Second {
		t.Errorf("the push took %v after the registration, want <= 1 s", lag)
	}

	// The xDS server goes away: calls keep working from the last
	// endpoints, and a sidecar registering in the file meanwhile is not
	// seen (lookups do not read SQLite).
	xdsServer.Stop()
	sidecar("late", true, true)
	for range 5 {
		if code := invokeStatus(t, caller, "callee"); code != http.StatusOK {
			t.Fatalf("call to callee while the xDS server is down: %d, want 200 from the last endpoints", code)
		}
	}
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if code := invokeStatus(t, caller, "late"); code == http.StatusOK {
			t.Fatal("the caller found a sidecar while the xDS server was down: its lookups read SQLite")
		}
	}

	// Back: the caller reconnects by itself and sees the new sidecar.
	xdsServer.Restart()
	back := time.Now()
	for deadline := back.Add(15 * time.Second); invokeStatus(t, caller, "late") != http.StatusOK; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the caller did not find the late sidecar after the xDS server came back:\n%s", caller.Output())
		}
	}
	t.Logf("after the xDS server restarted, the late sidecar was found in %v", time.Since(back).Round(time.Millisecond))
	if exited, err := caller.Exited(); exited {
		t.Fatalf("the caller exited: %v", err)
	}
}
