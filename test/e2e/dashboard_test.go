package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// needTool skips when a tool is missing, except in CI (CI=true) where the
// test must run: .ci/run installs chromium and the npm packages.
func needTool(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing in CI; install it (see test/e2e/dashboard/README or .ci/run)", what)
	}
	t.Skipf("%s is missing; skipping (apt-get install -y chromium; cd test/e2e/dashboard && npm ci)", what)
}

func TestDashboardInChromium(t *testing.T) {
	chromium := os.Getenv("CHROMIUM_PATH")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	_, err := os.Stat(chromium)
	needTool(t, err == nil, "chromium ("+chromium+")")
	node, err := exec.LookPath("node")
	needTool(t, err == nil, "node")
	scriptDir := filepath.Join(framework.RepoRoot(), "test", "e2e", "dashboard")
	_, err = os.Stat(filepath.Join(scriptDir, "node_modules", "playwright-core"))
	needTool(t, err == nil, "playwright-core (cd test/e2e/dashboard && npm ci)")

	c := newTandemCLI(t)
	_, _, apps := startPair(t, c)
	for range 3 { // traffic for the invocation counters
		if resp, body := invokeVia(t, apps["web"].HTTPPort, "grpcsvc", "echo", "x"); resp.StatusCode != 200 {
			t.Fatalf("invoke: %d %s", resp.StatusCode, body)
		}
	}
	dash := c.start("tandem dashboard", "dashboard", "--port", "0")
	var url string
	re := regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
	deadline := time.Now().Add(15 * time.Second)
	for url == "" && time.Now().Before(deadline) {
		url = re.FindString(dash.Output())
		time.Sleep(20 * time.Millisecond)
	}
	if url == "" {
		t.Fatalf("dashboard did not print its address:\n%s", dash.Output())
	}
	// The JSON the page renders.
	resp, body := do(t, "GET", url+"/api/overview", nil, nil)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"appId":"web"`)) {
		t.Fatalf("/api/overview: %d %s", resp.StatusCode, body)
	}
	var ov struct {
		Apps []struct {
			Record  struct{ AppID string } `json:"record"`
			Metrics struct {
				InvocationsSent float64            `json:"invocationsSent"`
				SentTo          map[string]float64 `json:"sentTo"`
			} `json:"metrics"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(body, &ov); err != nil {
		t.Fatal(err)
	}
	for _, a := range ov.Apps {
		if a.Record.AppID == "web" && (a.Metrics.InvocationsSent < 3 || a.Metrics.SentTo["grpcsvc"] < 3) {
			t.Errorf("web's invocation metrics: %+v", a.Metrics)
		}
	}

	shot := filepath.Join(t.TempDir(), "dashboard.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "check.mjs", url+"/", "web,grpcsvc", shot)
	cmd.Dir = scriptDir
	cmd.Env = append(os.Environ(), "CHROMIUM_PATH="+chromium)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("headless Chromium check failed: %v\n%s", err, out)
	}
	t.Logf("chromium: %s", strings.TrimSpace(string(out)))

	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	st, _ := f.Stat()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	b := img.Bounds()
	if st.Size() < 20<<10 || b.Dx() < 1000 || b.Dy() < 600 {
		t.Fatalf("screenshot looks empty: %d bytes, %dx%d", st.Size(), b.Dx(), b.Dy())
	}
	// Non-trivial: many distinct colours (text, pills, tables), not a blank page.
	colours := map[uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[r>>8<<16|g>>8<<8|bl>>8] = true
		}
	}
	if len(colours) < 20 {
		t.Fatalf("screenshot has only %d colours: blank page?", len(colours))
	}
	if keep := os.Getenv("TANDEM_DASHBOARD_SCREENSHOT"); keep != "" {
		data, _ := os.ReadFile(shot)
		_ = os.WriteFile(keep, data, 0o644)
	}
	fmt.Fprintf(os.Stderr, "dashboard screenshot: %d bytes, %dx%d, %d colours\n", st.Size(), b.Dx(), b.Dy(), len(colours))
}
