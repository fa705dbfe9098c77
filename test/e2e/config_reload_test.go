package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestConfigurationHotReload changes the callee's Configuration while it
// runs: an access policy added to the file applies without a restart, and a
// broken edit is reported while the last good policy stays in force.
func TestConfigurationHotReload(t *testing.T) {
	s := framework.StartSentry(t, bins, framework.SentryOptions{})
	registry := filepath.Join(t.TempDir(), "r.db")
	extra := filepath.Join(t.TempDir(), "acl.yaml")
	write := func(spec string) {
		t.Helper()
		doc := "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: acl\nspec:\n" + spec
		if err := os.WriteFile(extra+".tmp", []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(extra+".tmp", extra); err != nil {
			t.Fatal(err)
		}
	}
	write("  {}\n")
	calleeApp := framework.StartApp(t, "callee app", bins.Echo)
	callee := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "callee", AppPort: calleeApp.Port, Sentry: s, Registry: registry, Args: []string{"--config", extra},
	})
	callerApp := framework.StartApp(t, "caller app", bins.Echo)
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "caller", AppPort: callerApp.Port, Sentry: s, Registry: registry})
	url := caller.HTTPURL() + "/v1.0/invoke/callee/method/admin/users"

	status := func() int {
		resp, _ := do(t, "POST", url, strings.NewReader("x"), nil)
		return resp.StatusCode
	}
	waitStatus := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if status() == want {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("status did not become %d within 10s", want)
	}
	if got := status(); got != 200 {
		t.Fatalf("before any policy: status %d, want 200", got)
	}

	write(aclSpec)
	waitStatus(403)
	if resp, _ := do(t, "GET", caller.HTTPURL()+"/v1.0/invoke/callee/method/public", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("allowed operation after reload: status %d", resp.StatusCode)
	}

	// A broken edit keeps the policy in force and is reported.
	write(strings.Replace(aclSpec, "action: deny", "action: permit", 1))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(callee.Output(), "not valid; keeping the current one") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(callee.Output(), "not valid; keeping the current one") {
		t.Fatal("broken configuration was not reported")
	}
	if got := status(); got != 403 {
		t.Fatalf("after a broken edit: status %d, want the last good policy's 403", got)
	}

	// Removing the policy opens the operation again.
	write("  {}\n")
	waitStatus(200)
}
