package runner

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/cmd/tandem/internal/home"
	"github.com/tandemrun/tandem/cmd/tandem/internal/registry"
)

// TestMain lets the test binary stand in for tandemd: with
// TANDEM_RUNNER_FAKE_SIDECAR set, its first start reports the HTTP port as
// taken (as tandemd does when another process bound it first) and exits;
// later starts serve the outbound health endpoint on that port.
func TestMain(m *testing.M) {
	if marker := os.Getenv("TANDEM_RUNNER_FAKE_SIDECAR"); marker != "" {
		os.Exit(standInSidecar(marker))
	}
	os.Exit(m.Run())
}

func standInSidecar(marker string) int {
	fs := flag.NewFlagSet("tandemd", flag.ContinueOnError)
	port := fs.Int("dapr-http-port", 0, "")
	fs.SetOutput(new(bytes.Buffer))
	for i, a := range os.Args[1:] { // only the one flag matters here
		if a == "--dapr-http-port" && i+2 < len(os.Args) {
			_ = fs.Parse([]string{a, os.Args[i+2]})
		}
	}
	if _, err := os.Stat(marker); err != nil {
		_ = os.WriteFile(marker, []byte("1"), 0o600)
		fmt.Printf("level=ERROR msg=\"listen on :%d: port %d is already in use: stop that process or choose another port with --dapr-http-port\"\n", *port, *port)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1.0/healthz/outbound", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	_ = http.ListenAndServe("127.0.0.1:"+strconv.Itoa(*port), mux)
	return 1
}

func TestSidecarRestartsOnAPickedPortLostToARace(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "first-start-done")
	t.Setenv("TANDEM_RUNNER_FAKE_SIDECAR", marker)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var console bytes.Buffer
	o := Options{Home: &home.Home{Dir: dir}, Sidecar: exe, Console: NewConsole(&console), StopGrace: time.Second}
	in := &instance{spec: Spec{AppID: "orders"}, o: o}
	defer in.stop(o)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := in.start(ctx); err != nil {
		t.Fatalf("start: %v\nconsole:\n%s", err, console.String())
	}
	if !strings.Contains(console.String(), "trying other free ports") {
		t.Fatalf("the first start should have lost its port; console:\n%s", console.String())
	}
	rec, err := registry.Dir(o.Home.AppsDir()).Get("orders")
	if err != nil {
		t.Fatal(err)
	}
	if rec.HTTPPort != in.spec.HTTPPort || rec.Sidecar.PID != in.sidecar.pid() {
		t.Fatalf("registry holds %+v, want the restarted sidecar's port %d and pid %d", rec, in.spec.HTTPPort, in.sidecar.pid())
	}
}

func TestSidecarOnAGivenPortIsNotRestarted(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TANDEM_RUNNER_FAKE_SIDECAR", filepath.Join(dir, "first-start-done"))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	var console bytes.Buffer
	o := Options{Home: &home.Home{Dir: dir}, Sidecar: exe, Console: NewConsole(&console), StopGrace: time.Second}
	in := &instance{spec: Spec{AppID: "orders", HTTPPort: port}, o: o}
	defer in.stop(o)
	err = in.start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("start on a port the user chose = %v, want the sidecar's in-use error", err)
	}
}
