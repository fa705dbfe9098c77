package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// daprdBinary finds a real daprd built by scripts/build-daprd.sh.
func daprdBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv("TANDEM_DAPRD")
	if path == "" {
		home, _ := os.UserHomeDir()
		path = filepath.Join(home, ".cache", "tandem", "daprd-1.18.2")
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no real daprd at %s: run scripts/build-daprd.sh (or set TANDEM_DAPRD) to run the interoperability test", path)
	}
	return path
}

// TestInteropWithDaprd runs a real daprd next to tandemd in one mesh: both
// get their certificates from Tandem's sentry, find each other through the
// mDNS (the default name resolution of both), and invoke each other over mTLS through the
// internal ServiceInvocation API; each app sees the other's app ID.
func TestInteropWithDaprd(t *testing.T) {
	daprd := daprdBinary(t)
	s := framework.StartSentry(t, bins, framework.SentryOptions{})
	tanApp := framework.StartApp(t, "tan app", bins.Echo)
	// No --config: both sidecars use their default name resolution, mDNS
	// (daprd's stable build has no sqlite resolver).
	tan := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "tan", AppPort: tanApp.Port, Sentry: s})
	dapApp := framework.StartApp(t, "dap app", bins.Echo)
	dap := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "dap", AppPort: dapApp.Port, Sentry: s, Binary: daprd,
		Args: []string{"--placement-host-address", "", "--scheduler-host-address", ""},
	})
	for _, c := range []struct{ from, to *framework.Sidecar }{{tan, dap}, {dap, tan}} {
		for _, body := range []string{"small", strings.Repeat("0123456789", 20000)} { // unary and streamed
			resp, got := do(t, "POST", c.from.HTTPURL()+"/v1.0/invoke/"+c.to.AppID+"/method/echo?x=1", strings.NewReader(body), map[string]string{"Content-Type": "text/plain"})
			if resp.StatusCode != 200 || string(got) != body {
				t.Fatalf("%s -> %s (%d bytes): status %d, %d bytes back", c.from.AppID, c.to.AppID, len(body), resp.StatusCode, len(got))
			}
			if caller := resp.Header.Get("X-Echo-Caller"); caller != c.from.AppID {
				t.Errorf("%s -> %s: callee app saw caller %q", c.from.AppID, c.to.AppID, caller)
			}
			if q := resp.Header.Get("X-Echo-Query"); q != "x=1" {
				t.Errorf("%s -> %s: query %q", c.from.AppID, c.to.AppID, q)
			}
		}
	}
}
