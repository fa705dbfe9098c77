package wasm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/internal/wasmguest/wasmguesttest"
)

// programPath builds testdata/program for wasip1 once.
func programPath(t testing.TB) string {
	t.Helper()
	return wasmguesttest.Build(t, "github.com/tandemrun/tandem/components/bindings/wasm/testdata/program", false)
}

func newBinding(t *testing.T, props map[string]string) *Binding {
	t.Helper()
	if props["url"] == "" {
		props["url"] = "file://" + programPath(t)
	}
	b := New()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.Init(ctx, components.Metadata{Name: "prog", Type: Type, Properties: props}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestEchoesStdinAndArgs(t *testing.T) {
	b := newBinding(t, map[string]string{})
	resp, err := b.Invoke(context.Background(), &bindings.InvokeRequest{
		Operation: OperationExecute, Data: []byte("hello"), Metadata: map[string]string{"args": "a,b"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(resp.Data), "prog|a,b|hello"; got != want {
		t.Fatalf("response %q, want %q", got, want)
	}
}

func TestConcurrentRuns(t *testing.T) {
	b := newBinding(t, map[string]string{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			in := fmt.Sprint(i)
			resp, err := b.Invoke(context.Background(), &bindings.InvokeRequest{Operation: OperationExecute, Data: []byte(in)})
			if err == nil && string(resp.Data) != "prog||"+in {
				err = fmt.Errorf("run %d answered %q", i, resp.Data)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestExitCodeIsAnError(t *testing.T) {
	b := newBinding(t, map[string]string{})
	_, err := b.Invoke(context.Background(), &bindings.InvokeRequest{Operation: OperationExecute, Metadata: map[string]string{"args": "exit"}})
	if err == nil || !strings.Contains(err.Error(), "exited with code 3") || !strings.Contains(err.Error(), "asked to fail") {
		t.Fatalf("error %v, want the exit code and the stderr", err)
	}
	// The binding goes on serving.
	if _, err := b.Invoke(context.Background(), &bindings.InvokeRequest{Operation: OperationExecute}); err != nil {
		t.Fatal(err)
	}
}

func TestTimeout(t *testing.T) {
	b := newBinding(t, map[string]string{"timeout": "300ms"})
	_, err := b.Invoke(context.Background(), &bindings.InvokeRequest{Operation: OperationExecute, Metadata: map[string]string{"args": "loop"}})
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("error %v, want the timeout named", err)
	}
}

func TestStrictSandboxFixesClockAndRandom(t *testing.T) {
	run := func(b *Binding) string {
		t.Helper()
		resp, err := b.Invoke(context.Background(), &bindings.InvokeRequest{Operation: OperationExecute, Metadata: map[string]string{"args": "clock"}})
		if err != nil {
			t.Fatal(err)
		}
		return string(resp.Data)
	}
	strict := newBinding(t, map[string]string{"strictSandbox": "true"})
	if a, b := run(strict), run(strict); a != b {
		t.Fatalf("strictSandbox: two runs saw %q and %q, want the same clock and random", a, b)
	}
	loose := newBinding(t, map[string]string{})
	if a, b := run(loose), run(loose); a == b {
		t.Fatalf("without strictSandbox two runs saw the same clock and random %q", a)
	}
}

func TestBadConfiguration(t *testing.T) {
	for name, props := range map[string]map[string]string{
		"no url":          {},
		"bad scheme":      {"url": "ftp://x/y.wasm"},
		"missing file":    {"url": "file:///nonexistent/program.wasm"},
		"bad strict":      {"url": "file:///x.wasm", "strictSandbox": "maybe"},
		"bad timeout":     {"url": "file:///x.wasm", "timeout": "-1s"},
		"bad memoryLimit": {"url": "file:///x.wasm", "memoryLimit": "9999"},
	} {
		t.Run(name, func(t *testing.T) {
			err := New().Init(context.Background(), components.Metadata{Name: "prog", Type: Type, Properties: props})
			if err == nil || !components.IsPermanent(err) {
				t.Fatalf("Init: %v, want a permanent error", err)
			}
		})
	}
}

func TestNotACommand(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.wasm")
	// The smallest valid module: magic and version, no exports.
	if err := os.WriteFile(bad, []byte{0, 'a', 's', 'm', 1, 0, 0, 0}, 0o600); err != nil {
		t.Fatal(err)
	}
	err := New().Init(context.Background(), components.Metadata{Name: "prog", Type: Type, Properties: map[string]string{"url": "file://" + bad}})
	if err == nil || !strings.Contains(err.Error(), "_start") {
		t.Fatalf("Init: %v, want the missing _start named", err)
	}
}

func TestUnknownOperation(t *testing.T) {
	b := newBinding(t, map[string]string{})
	if _, err := b.Invoke(context.Background(), &bindings.InvokeRequest{Operation: "create"}); err == nil {
		t.Fatal("operation create was accepted")
	}
}
