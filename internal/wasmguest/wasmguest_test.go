package wasmguest

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// empty is the smallest valid module: magic and version.
var empty = []byte{0, 'a', 's', 'm', 1, 0, 0, 0}

func TestFetchFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.wasm")
	if err := os.WriteFile(p, empty, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := Fetch(context.Background(), "file://"+p)
	if err != nil || !bytes.Equal(b, empty) {
		t.Fatalf("Fetch: %v %x", err, b)
	}
}

func TestFetchHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/m.wasm" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(empty)
	}))
	defer srv.Close()
	b, err := Fetch(context.Background(), srv.URL+"/m.wasm")
	if err != nil || !bytes.Equal(b, empty) {
		t.Fatalf("Fetch: %v %x", err, b)
	}
	// A missing module is retried (not permanent): the server may be starting.
	if _, err := Fetch(context.Background(), srv.URL+"/other.wasm"); err == nil || isPermanent(err) {
		t.Fatalf("Fetch of a 404: %v, want a retryable error", err)
	}
}

// isPermanent is components.IsPermanent's reading of an error.
func isPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

func TestFetchRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"m.wasm", "ftp://h/m.wasm", "file:///nonexistent/m.wasm"} {
		if _, err := Fetch(context.Background(), u); err == nil || !isPermanent(err) {
			t.Errorf("Fetch(%q): %v, want a permanent error", u, err)
		}
	}
}

func TestPrecompile(t *testing.T) {
	if err := Precompile(context.Background(), empty); err != nil {
		t.Fatal(err)
	}
	err := Precompile(context.Background(), []byte("not wasm"))
	if err == nil {
		t.Fatal("Precompile accepted garbage")
	}
	// A failure is not kept: the next attempt compiles again and fails the same way.
	if err2 := Precompile(context.Background(), []byte("not wasm")); err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("second attempt: %v, want %v", err2, err)
	}
}

func TestLimitedWriter(t *testing.T) {
	var b bytes.Buffer
	w := LimitedWriter{B: &b, Max: 5}
	n, err := w.Write([]byte("abc"))
	if n != 3 || err != nil {
		t.Fatal(n, err)
	}
	if n, _ := w.Write([]byte("defgh")); n != 5 {
		t.Fatalf("Write reported %d bytes, want all 5 taken", n)
	}
	if !strings.EqualFold(b.String(), "abcde") {
		t.Fatalf("kept %q", b.String())
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.wasm"), filepath.Join(dir, "bad.wasm")
	if err := os.WriteFile(good, empty, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("\x00asm garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := Load(context.Background(), "file://"+good, "guest"); err != nil || !bytes.Equal(b, empty) {
		t.Fatalf("Load: %v", err)
	}
	_, err := Load(context.Background(), "file://"+bad, "program")
	if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), "the program at file://"+bad+" is not a valid wasm module") {
		t.Fatalf("Load of garbage: %v, want a permanent error naming the program", err)
	}
}
