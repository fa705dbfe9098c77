package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// TestSIGHUPReloads: SIGHUP restarts tandemd in its process, reading the
// resources again, as daprd does; here hot reload is off, so only the
// restart can pick up the added component.
func TestSIGHUPReloads(t *testing.T) {
	dir := t.TempDir()
	comp := "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: %s\nspec:\n  type: state.in-memory\n  version: v1\n"
	writeFile(t, filepath.Join(dir, "a.yaml"), fmt.Sprintf(comp, "a"))
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, cfg, "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: nohot\nspec:\n  features:\n  - name: HotReload\n    enabled: false\n")
	s := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "hup", ResourcesDir: dir, Args: []string{"--config", cfg}})
	components := func() int {
		_, body := do(t, "GET", s.HTTPURL()+"/v1.0/metadata", nil, nil)
		var md struct {
			Components []struct{ Name string } `json:"components"`
		}
		if err := json.Unmarshal(body, &md); err != nil {
			t.Fatalf("metadata %s: %v", body, err)
		}
		return len(md.Components)
	}
	if n := components(); n != 1 {
		t.Fatalf("%d components at start, want 1", n)
	}
	writeFile(t, filepath.Join(dir, "b.yaml"), fmt.Sprintf(comp, "b"))
	s.Signal(syscall.SIGHUP)
	waitStdout(t, s.Process, 10*time.Second, "SIGHUP received")
	deadline := time.Now().Add(15 * time.Second)
	for {
		if exited, err := s.Exited(); exited {
			t.Fatalf("tandemd exited on SIGHUP: %v", err)
		}
		if framework.WaitHTTP(context.Background(), s.HTTPURL()+"/v1.0/healthz/outbound", 204, 250*time.Millisecond) == nil && components() == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the added component was not loaded after SIGHUP")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
