package wasmhost

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
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tandemrun/tandem/internal/leanwire"
	"github.com/tandemrun/tandem/internal/wasmguest/wasmguesttest"
)

// The test apps: the same handler on the net/http guest package (the
// http-wasm ABI) and on the lean one.
const (
	httpWasmApp = "github.com/tandemrun/tandem/test/apps/wasmapp"
	leanApp     = "github.com/tandemrun/tandem/test/apps/wasmlean"
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

// loadApp builds pkg for wasip1 once (the module is not committed) and
// hosts it; before UseAPI its API calls are answered 503.
func loadApp(t testing.TB, pkg string, cfg Config) *App {
	t.Helper()
	cfg.Path = wasmguesttest.Build(t, pkg, true)
	a, err := Load(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func do(h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Header.Set("Content-Type", "text/plain")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// abis are the test app on each ABI, for the tests that run on both.
var abis = []struct{ name, pkg string }{{"http-wasm", httpWasmApp}, {"lean", leanApp}}

func TestServesAndCallsTheAPIInProcess(t *testing.T) {
	for _, abi := range abis {
		t.Run(abi.name, func(t *testing.T) { testServesAndCallsTheAPI(t, abi.pkg, abi.name) })
	}
}

func testServesAndCallsTheAPI(t *testing.T, pkg, abi string) {
	a := loadApp(t, pkg, Config{APIToken: "tok"})
	if got := a.Extended()["appWasm.abi"]; got != abi {
		t.Fatalf("appWasm.abi %q, want %q", got, abi)
	}
	if rec := do(a, http.MethodPost, "/echo", "hello"); rec.Code != 200 || rec.Body.String() != "hello" || rec.Header().Get("Content-Type") != "text/plain" {
		t.Fatalf("echo: %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
	// A request bigger than the guest's first buffer, then a small one.
	for _, body := range []string{strings.Repeat("y", 300<<10), "small"} {
		if rec := do(a, http.MethodPost, "/echo", body); rec.Code != 200 || rec.Body.String() != body {
			t.Fatalf("echo of %d bytes: %d, %d bytes", len(body), rec.Code, rec.Body.Len())
		}
	}
	// Before UseAPI the app's calls are answered 503.
	if rec := do(a, http.MethodGet, "/state/k", ""); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("before UseAPI: %d %q", rec.Code, rec.Body.String())
	}
	var mu sync.Mutex
	var seen []string
	big := strings.Repeat("x", 100<<10) // more than the guest's first buffer
	a.UseAPI(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+r.Header.Get("Dapr-Api-Token")+" "+string(b))
		mu.Unlock()
		if r.URL.Path == "/v1.0/state/statestore/big" {
			_, _ = io.WriteString(w, big)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	if rec := do(a, http.MethodPost, "/state/k", `{"a":1}`); rec.Code != http.StatusNoContent {
		t.Fatalf("save: %d %q", rec.Code, rec.Body.String())
	}
	if rec := do(a, http.MethodGet, "/state/big", ""); rec.Code != 200 || rec.Body.String() != big {
		t.Fatalf("big answer: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	want := []string{`POST /v1.0/state/statestore tok [{"key":"k","value":{"a":1}}]`, "GET /v1.0/state/statestore/big tok "}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Fatalf("API calls:\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}

func TestTrapFailsOnlyThatRequest(t *testing.T) {
	for _, abi := range abis {
		t.Run(abi.name, func(t *testing.T) { testTrapFailsOnlyThatRequest(t, abi.pkg) })
	}
}

func testTrapFailsOnlyThatRequest(t *testing.T, pkg string) {
	a := loadApp(t, pkg, Config{MaxInstances: 2})
	var wg sync.WaitGroup
	errs := make(chan string, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := do(a, http.MethodGet, fmt.Sprintf("/trap?n=%d", i), "")
			switch {
			case i%2 == 1 && (rec.Code != 500 || !strings.Contains(rec.Body.String(), "ERR_WASM_APP_FAILED") || !strings.Contains(rec.Body.String(), fmt.Sprintf("odd input %d", i))):
				errs <- fmt.Sprintf("n=%d: %d %q", i, rec.Code, rec.Body.String())
			case i%2 == 0 && (rec.Code != 200 || rec.Body.String() != "even"):
				errs <- fmt.Sprintf("n=%d: %d %q", i, rec.Code, rec.Body.String())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if st := a.Stats(); st.Live > 2 || st.Live < 0 {
		t.Errorf("instances %+v, max 2", st)
	}
	ext := a.Extended()
	if ext["appWasm.maxInstances"] != "2" || len(ext["appWasm.sha256"]) != 64 || ext["appWasm.module"] != wasmguesttest.Build(t, pkg, true) {
		t.Errorf("extended metadata %v", ext)
	}
}

func TestTimeoutCutsOffTheRequest(t *testing.T) {
	for _, abi := range abis {
		t.Run(abi.name, func(t *testing.T) { testTimeoutCutsOffTheRequest(t, abi.pkg) })
	}
}

func testTimeoutCutsOffTheRequest(t *testing.T, pkg string) {
	a := loadApp(t, pkg, Config{Timeout: 300 * time.Millisecond, MaxInstances: 1})
	a.UseAPI(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // the app's API call outlives the request's deadline
	}))
	if rec := do(a, http.MethodGet, "/state/k", ""); rec.Code != 500 || !strings.Contains(rec.Body.String(), "deadline") {
		t.Fatalf("got %d %q", rec.Code, rec.Body.String())
	}
	if rec := do(a, http.MethodPost, "/echo", "after"); rec.Code != 200 || rec.Body.String() != "after" {
		t.Fatalf("after the timeout: %d %q", rec.Code, rec.Body.String())
	}
}

func TestBadModulesFailAtLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for path, want := range map[string]string{
		write("empty.wasm", "\x00asm\x01\x00\x00\x00"): "does not export handle_request",
		write("junk.wasm", "not wasm"):                 "not a valid wasm module",
		filepath.Join(dir, "none.wasm"):                "no such file",
		write("half-lean.wasm", halfLean):              "exports lean_handle but not lean_buffer",
	} {
		_, err := Load(context.Background(), Config{Path: path})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want one saying %q", filepath.Base(path), err, want)
		}
	}
}

func TestReadRequestAndAppendResponse(t *testing.T) {
	r, err := ReadRequest([]byte("POST /v1.0/publish/p/t HTTP/1.1\r\nHost: dapr\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r.Body); string(b) != "abc" || r.ContentLength != 3 || r.URL.Path != "/v1.0/publish/p/t" {
		t.Fatalf("got %s %q %d", r.URL, b, r.ContentLength)
	}
	out := AppendResponse([]byte("x"), 404, http.Header{"A": {"1"}}, []byte("gone"))
	if want := "xHTTP/1.1 404 Not Found\r\nA: 1\r\nContent-Length: 4\r\n\r\ngone"; string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}
}

// halfLean is a module that exports lean_handle (i32) -> i64 and its
// memory, but not lean_buffer.
const halfLean = "\x00asm\x01\x00\x00\x00" +
	"\x01\x06\x01\x60\x01\x7f\x01\x7e" + // type 0: (i32) -> i64
	"\x03\x02\x01\x00" + // function 0 of type 0
	"\x05\x03\x01\x00\x01" + // one memory of one page
	"\x07\x18\x02\x0blean_handle\x00\x00\x06memory\x02\x00" +
	"\x0a\x06\x01\x04\x00\x42\x00\x0b" // i64.const 0

func TestDecodeLeanRequestAndAppendLeanResponse(t *testing.T) {
	raw := leanwire.AppendRequestHead(nil, "POST", "/v1.0/publish/p/t?metadata.ttl=5", 3)
	raw = leanwire.AppendField(raw, "content-type", "application/json")
	raw = leanwire.AppendField(raw, "Host", "elsewhere")
	raw = leanwire.AppendField(raw, "Content-Length", "99")
	raw = leanwire.AppendBytes(raw, []byte(`{"a":1}`))
	r, err := DecodeLeanRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	if r.Method != "POST" || r.URL.Path != "/v1.0/publish/p/t" || r.URL.Query().Get("metadata.ttl") != "5" || r.Header.Get("Content-Type") != "application/json" ||
		r.Host != "elsewhere" || r.Header.Get("Content-Length") != "" || r.ContentLength != 7 || string(b) != `{"a":1}` {
		t.Fatalf("got %s %s host %q %v %d %q", r.Method, r.URL, r.Host, r.Header, r.ContentLength, b)
	}
	for name, bad := range map[string][]byte{
		"malformed":  raw[:10],
		"bad method": leanwire.AppendBytes(leanwire.AppendRequestHead(nil, "GE T", "/", 0), nil),
		"bad uri":    leanwire.AppendBytes(leanwire.AppendRequestHead(nil, "GET", "no-slash", 0), nil),
	} {
		if _, err := DecodeLeanRequest(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	out := AppendLeanResponse(nil, 404, http.Header{"A": {"1", "2"}, "Content-Length": {"4"}}, []byte("gone"))
	var w leanwire.Response
	if err := leanwire.DecodeResponse(out, &w); err != nil {
		t.Fatal(err)
	}
	if w.Status != 404 || len(w.Header) != 2 || string(w.Header[1].Value) != "2" || string(w.Body) != "gone" {
		t.Fatalf("got %+v", w)
	}
}

func FuzzDecodeLeanRequest(f *testing.F) {
	f.Add(leanwire.AppendBytes(leanwire.AppendField(leanwire.AppendRequestHead(nil, "POST", "/v1.0/state/s", 1), "A", "1"), []byte("[]")))
	f.Add(leanwire.AppendBytes(leanwire.AppendRequestHead(nil, "GET", "*", 0), nil))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := DecodeLeanRequest(raw)
		if err != nil {
			return
		}
		b, _ := io.ReadAll(r.Body)
		if int64(len(b)) != r.ContentLength || !validMethod(r.Method) || r.URL == nil {
			t.Fatalf("body %d bytes, ContentLength %d, method %q", len(b), r.ContentLength, r.Method)
		}
	})
}

func FuzzReadRequest(f *testing.F) {
	f.Add([]byte("GET /v1.0/state/s/k HTTP/1.1\r\nHost: dapr\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"))
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := ReadRequest(raw)
		if err != nil {
			return
		}
		b, _ := io.ReadAll(r.Body)
		if int64(len(b)) != r.ContentLength {
			t.Fatalf("body %d bytes, ContentLength %d", len(b), r.ContentLength)
		}
	})
}

// BenchmarkEcho is one echo request of 1 KiB through the hosted app, in
// process (no sidecar), for each ABI: the Wasm app's own cost per request.
// cpu-µs/op is the process's CPU time (user and system) per request.
func BenchmarkEcho(b *testing.B) {
	for _, abi := range abis {
		b.Run(abi.name, func(b *testing.B) {
			a := loadApp(b, abi.pkg, Config{})
			body := strings.Repeat("x", 1024)
			do(a, http.MethodPost, "/echo", body) // the instance's first request
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				if rec := do(a, http.MethodPost, "/echo", body); rec.Code != 200 || rec.Body.Len() != len(body) {
					b.Fatalf("echo: %d", rec.Code)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/1e3/float64(b.N), "cpu-µs/op")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkColdStart is a sidecar's restart with the compiled code in the
// folder cache, per ABI: Load (read, compile from the cache, first
// instance) and the first request. cpu-ms/op is the process's CPU time.
func BenchmarkColdStart(b *testing.B) {
	for _, abi := range abis {
		b.Run(abi.name, func(b *testing.B) {
			cfg := Config{Path: wasmguesttest.Build(b, abi.pkg, true), CacheDir: b.TempDir()}
			a, err := Load(context.Background(), cfg) // fills the cache
			if err != nil {
				b.Fatal(err)
			}
			_ = a.Close()
			cpu := cpuTime()
			for b.Loop() {
				a, err := Load(context.Background(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				if rec := do(a, http.MethodPost, "/echo", "first"); rec.Code != 200 || rec.Body.String() != "first" {
					b.Fatalf("first request: %d %q", rec.Code, rec.Body.String())
				}
				_ = a.Close()
			}
			b.ReportMetric(float64(cpuTime()-cpu)/1e6/float64(b.N), "cpu-ms/op")
		})
	}
}
