package wasm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/wasmguest/wasmguesttest"
)

// TestMain fails the tests when a goroutine they started is still running.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// Guest returns the path of the test guest (testdata/guest, wasip1),
// building it on first use.
func Guest(t testing.TB) string {
	t.Helper()
	return wasmguesttest.Build(t, "github.com/tandemrun/tandem/components/middleware/wasm/testdata/guest", true)
}

func newMiddleware(t testing.TB, props map[string]string) *Middleware {
	t.Helper()
	if props["url"] == "" {
		props["url"] = "file://" + Guest(t)
	}
	m := New(nil)().(*Middleware)
	if err := m.Init(context.Background(), components.Metadata{Name: "guest", Type: Type, Properties: props}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// echo answers with the path, query and X-Wasm header it got, and the body.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "%s|%s|%s", r.URL.RequestURI(), r.Header.Get("X-Wasm"), b)
})

func serve(h http.Handler, method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func TestRewritePathAndHeader(t *testing.T) {
	h := newMiddleware(t, map[string]string{"guestConfig": "rewrite"}).Handler(echo)
	rec := serve(h, http.MethodPost, "/v1.0/invoke/app/method/old?x=1", "body")
	if got, want := rec.Body.String(), "/v1.0/invoke/app/method/new?x=1|rewritten|body"; rec.Code != 200 || got != want {
		t.Fatalf("got %d %q, want %q", rec.Code, got, want)
	}
}

func TestDeny(t *testing.T) {
	h := newMiddleware(t, map[string]string{"guestConfig": "deny"}).Handler(echo)
	rec := serve(h, http.MethodGet, "/x", "")
	if rec.Code != http.StatusForbidden || rec.Body.String() != "denied by wasm" {
		t.Fatalf("got %d %q", rec.Code, rec.Body.String())
	}
	if rec := serve(h, http.MethodGet, "/x", "", "X-Allow", "1"); rec.Code != 200 {
		t.Fatalf("allowed request: %d %q", rec.Code, rec.Body.String())
	}
}

func TestBufferedResponse(t *testing.T) {
	h := newMiddleware(t, map[string]string{"guestConfig": "upper"}).Handler(echo)
	rec := serve(h, http.MethodPost, "/abc", "hello")
	if rec.Code != 200 || rec.Body.String() != "/ABC||HELLO" || rec.Header().Get("X-Wasm") != "upper" {
		t.Fatalf("got %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
}

func TestTrapFailsOneRequestAndIsReplaced(t *testing.T) {
	m := newMiddleware(t, map[string]string{"guestConfig": "trap", "maxInstances": "1"})
	h := m.Handler(echo)
	rec := serve(h, http.MethodGet, "/trap", "")
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "middleware guest (middleware.http.wasm)") {
		t.Fatalf("trap: %d %q", rec.Code, rec.Body.String())
	}
	if !strings.Contains(rec.Body.String(), "guest asked to trap") {
		t.Errorf("the error does not carry the guest's panic: %q", rec.Body.String())
	}
	// With one instance allowed, this needs the trapped one replaced.
	if rec := serve(h, http.MethodGet, "/fine", ""); rec.Code != 200 || rec.Body.String() != "/fine||" {
		t.Fatalf("after a trap: %d %q", rec.Code, rec.Body.String())
	}
}

func TestInfiniteLoopIsCutOff(t *testing.T) {
	h := newMiddleware(t, map[string]string{"guestConfig": "trap", "timeout": "300ms", "maxInstances": "1"}).Handler(echo)
	start := time.Now()
	rec := serve(h, http.MethodGet, "/loop", "")
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "deadline") {
		t.Fatalf("loop: %d %q", rec.Code, rec.Body.String())
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("the loop ran for %s", d)
	}
	if rec := serve(h, http.MethodGet, "/fine", ""); rec.Code != 200 {
		t.Fatalf("after a loop: %d %q", rec.Code, rec.Body.String())
	}
}

func TestConcurrentRequestsSharePool(t *testing.T) {
	m := newMiddleware(t, map[string]string{"guestConfig": "rewrite", "maxInstances": "3"})
	h := m.Handler(echo)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := serve(h, http.MethodPost, fmt.Sprintf("/old/%d", i), "b")
			if want := fmt.Sprintf("/new/%d|rewritten|b", i); rec.Body.String() != want {
				errs <- rec.Body.String()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if st := m.pool.Stats(); st.Live > 3 {
		t.Errorf("%d instances, max 3", st.Live)
	}
}

func TestHTTPURL(t *testing.T) {
	b, err := os.ReadFile(Guest(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(b) }))
	defer srv.Close()
	h := newMiddleware(t, map[string]string{"url": srv.URL + "/guest.wasm", "guestConfig": "deny"}).Handler(echo)
	if rec := serve(h, http.MethodGet, "/", ""); rec.Code != http.StatusForbidden {
		t.Fatalf("got %d", rec.Code)
	}
}

func TestBadGuests(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.wasm")
	if err := os.WriteFile(empty, []byte("\x00asm\x01\x00\x00\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.wasm")
	if err := os.WriteFile(junk, []byte("not wasm"), 0o600); err != nil {
		t.Fatal(err)
	}
	for props, want := range map[[2]string]string{
		{"", ""}:                             "url is missing",
		{"file://" + empty, ""}:              "does not export handle_request",
		{"file://" + junk, ""}:               "not a valid wasm module",
		{"file://" + dir + "/none.wasm", ""}: "no such file",
		{"ftp://x/y.wasm", ""}:               "unsupported scheme",
		{"file://" + empty, "0"}:             "memoryLimit",
	} {
		md := map[string]string{"url": props[0]}
		if props[1] != "" {
			md["memoryLimit"] = props[1]
		}
		m := New(nil)()
		err := m.Init(context.Background(), components.Metadata{Name: "bad", Properties: md})
		if err == nil || !strings.Contains(err.Error(), want) || !components.IsPermanent(err) {
			t.Errorf("%v: err %v, want a permanent error saying %q", props, err, want)
		}
	}
}
