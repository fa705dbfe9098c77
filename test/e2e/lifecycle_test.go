package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// waitStdout waits until the process's standard output contains every line.
func waitStdout(t *testing.T, p *framework.Process, timeout time.Duration, lines ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		missing := ""
		out := p.Stdout()
		for _, l := range lines {
			if !strings.Contains(out, l) {
				missing = l
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("standard output lacks %q after %s", missing, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestShutdownAPI: POST /v1.0/shutdown stops tandemd with exit status 0 and
// daprd's log lines on standard output; with dapr-force-shutdown: true it
// exits 1 at once, as daprd does.
func TestShutdownAPI(t *testing.T) {
	for _, tc := range []struct {
		name     string
		header   map[string]string
		wantCode int
		lines    []string
	}{
		{"graceful", nil, 0, []string{"Shutdown requested via API", "Daprd shutdown gracefully"}},
		{"forced", map[string]string{"dapr-force-shutdown": "true"}, 1,
			[]string{"Force shutdown requested, exiting immediately without graceful shutdown"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "shut"})
			if resp, _ := do(t, "POST", s.HTTPURL()+"/v1.0/shutdown", nil, tc.header); resp.StatusCode != 204 {
				t.Fatalf("shutdown status %d", resp.StatusCode)
			}
			code, ok := s.WaitExit(10 * time.Second)
			if !ok {
				t.Fatal("tandemd still running 10s after the shutdown request")
			}
			if code != tc.wantCode {
				t.Fatalf("exit status %d, want %d", code, tc.wantCode)
			}
			waitStdout(t, s.Process, time.Second, tc.lines...)
		})
	}
}
