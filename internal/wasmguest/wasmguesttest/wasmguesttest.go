// Package wasmguesttest builds Go packages as WebAssembly (wasip1) guests
// for tests: the middleware's guest, the binding's program and the Wasm
// app, which are not committed as binaries.
package wasmguesttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type result struct {
	path string
	err  error
}

var (
	mu    sync.Mutex
	built = map[string]*result{}
)

// Build builds the Go package pkg (an import path of this module) for
// GOOS=wasip1 GOARCH=wasm once per test process and returns the module's
// path. A reactor (-buildmode=c-shared, exporting functions to the host)
// is what http-wasm guests and Wasm apps are; a command (reactor false) is
// what the wasm binding runs. The file lives in one folder per guest under
// the temporary directory and is replaced, not added to, by later builds.
func Build(t testing.TB, pkg string, reactor bool) string {
	t.Helper()
	key := pkg
	if reactor {
		key += "@reactor"
	}
	mu.Lock()
	r, ok := built[key]
	if !ok {
		r = &result{}
		r.path, r.err = build(pkg, reactor, key)
		built[key] = r
	}
	mu.Unlock()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.path
}

func build(pkg string, reactor bool, key string) (string, error) {
	name := strings.NewReplacer("/", "_", ".", "_", "@", "-").Replace(key)
	dir := filepath.Join(os.TempDir(), "tandem-wasmguest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, name+".wasm")
	// Build beside the final name and rename: test processes of other
	// packages may build the same guest at the same time.
	tmp, err := os.CreateTemp(dir, name+"-*.tmp")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	args := []string{"build", "-o", tmp.Name()}
	if reactor {
		args = append(args, "-buildmode=c-shared")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s for wasip1: %v\n%s", pkg, err, b)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	return out, nil
}
