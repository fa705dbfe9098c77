// Package wasmhost hosts the app itself inside the sidecar: a WebAssembly
// module (tandemd --app-wasm) that is an http-wasm handler
// (internal/httpwasm), typically a Go handler built with the wasmapp
// package. App is an http.Handler the app channel calls in process (the
// sidecar's calls to the app: invocations, pub/sub deliveries, bindings,
// job callbacks), and the guest's own calls to the Dapr API go through one
// host function, tandem.dapr_call, into the sidecar's HTTP API handler,
// also in process.
//
// The module speaks one of two ABIs, told apart by its exports: the
// http-wasm handler ABI (handle_request; the wasmapp package, a net/http
// handler) or the lean app ABI (lean_handle; the wasmapp/lean package, a
// request in linear memory and one call per request, see
// internal/httpwasm's lean.go and internal/leanwire).
//
// The ABI of tandem.dapr_call(req, req_len, buf, limit) -> len: req is an
// HTTP/1.1 request as on the wire; the host runs it through the API handler
// and writes the answer, an HTTP/1.1 response as on the wire, into buf
// when it fits, returning its length either way. When it does not fit the
// host keeps it, and a call with req_len 0 fetches it into a bigger buf.
// tandem.lean_dapr_call, which lean apps import, is the same with both in
// internal/leanwire's layout instead of HTTP/1.1.
package wasmhost

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/tandemrun/tandem/internal/httpwasm"
	"github.com/tandemrun/tandem/internal/leanwire"
)

// Config says which module to host and within what limits.
type Config struct {
	// Path is the module's file.
	Path string
	// MemoryMiB bounds each instance's memory (0: 64).
	MemoryMiB int
	// Timeout bounds each request into the app, the app's own API calls
	// included (0: 1 minute).
	Timeout time.Duration
	// MaxInstances bounds the instances serving requests at once (0: 32).
	MaxInstances int
	// CacheDir, if set, keeps the compiled module on disk, so that the
	// next start of the sidecar does not compile it again.
	CacheDir string
	// Env is the guest's environment (GOGC, GOMEMLIMIT for a Go guest).
	Env map[string]string
	// APIToken is DAPR_API_TOKEN: the host adds it to the app's API calls
	// (the app runs inside the sidecar and is trusted as the app is).
	APIToken string
	Log      *slog.Logger
}

// Defaults of Config.
const (
	DefaultMemoryMiB    = httpwasm.DefaultMemoryMiB
	DefaultTimeout      = time.Minute
	DefaultMaxInstances = httpwasm.DefaultMaxInstances
)

// App is the hosted module and its instances.
type App struct {
	cfg   Config
	sum   string
	pool  *httpwasm.Pool
	serve http.Handler
	api   atomic.Pointer[http.Handler]
	cache wazero.CompilationCache // nil: the process's shared one
	// took is how long Load took (compile and first instance).
	took time.Duration
}

// Load reads, compiles (once per distinct module per process) and checks
// the module, and starts its first instance: a module that is not an
// http-wasm handler fails here, naming the export it lacks.
func Load(ctx context.Context, cfg Config) (*App, error) {
	start := time.Now()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	mod, err := os.ReadFile(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("wasm app: %w: give --app-wasm the path of a module built with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared", err)
	}
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		if cache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("wasm app: compilation cache %s: %w (give --app-wasm-cache-dir a writable folder, or \"\" for none)", cfg.CacheDir, err)
		}
	}
	sum := sha256.Sum256(mod)
	a := &App{cfg: cfg, sum: hex.EncodeToString(sum[:]), cache: cache}
	a.pool, err = httpwasm.New(ctx, httpwasm.Config{
		Guest: mod, Source: cfg.Path, Cache: cache, MemoryMiB: cfg.MemoryMiB, Timeout: cfg.Timeout, MaxInstances: cfg.MaxInstances,
		HostModules: a.hostModule, Fail: fail, Lean: true, Env: cfg.Env, Stdout: logWriter{cfg.Log}, Log: cfg.Log.With("component", "wasm app"),
	})
	if err != nil {
		if cache != nil {
			_ = cache.Close(context.Background())
		}
		return nil, fmt.Errorf("wasm app: %w", err)
	}
	a.serve = a.pool.Handler(http.NotFoundHandler())
	a.took = time.Since(start)
	cfg.Log.Info("wasm app loaded", "module", cfg.Path, "abi", a.pool.ABI(), "sha256", a.sum, "took", a.took.Round(time.Microsecond).String(),
		"max_instances", a.pool.Stats().Max, "memory_mib", cfg.MemoryMiB, "timeout", cfg.Timeout.String())
	return a, nil
}

// ServeHTTP runs the request through an instance of the app.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.serve.ServeHTTP(w, r) }

// UseAPI hands in the sidecar's HTTP API handler, for the app's own calls;
// until then they are answered 503.
func (a *App) UseAPI(h http.Handler) { a.api.Store(&h) }

// Extended is what /v1.0/metadata reports of the app (extended fields).
func (a *App) Extended() map[string]string {
	st := a.pool.Stats()
	return map[string]string{
		"appWasm.module":       a.cfg.Path,
		"appWasm.sha256":       a.sum,
		"appWasm.abi":          a.pool.ABI(),
		"appWasm.instances":    strconv.Itoa(st.Live),
		"appWasm.idle":         strconv.Itoa(st.Idle),
		"appWasm.maxInstances": strconv.Itoa(st.Max),
	}
}

// LoadTime is how long Load took: reading, compiling (or finding the
// compiled code in the cache) and starting the first instance.
func (a *App) LoadTime() time.Duration { return a.took }

// Stats reports the instances.
func (a *App) Stats() httpwasm.Stats { return a.pool.Stats() }

// Close closes the instances.
func (a *App) Close() error {
	err := a.pool.Close()
	if a.cache != nil {
		_ = a.cache.Close(context.Background())
	}
	return err
}

// fail answers a request the app failed.
func fail(w http.ResponseWriter, what string, err error) {
	httpwasm.Fail(w, "ERR_WASM_APP_FAILED", fmt.Sprintf("wasm app: %s: %v", what, err))
}

// hostModule defines the tandem host module: dapr_call (HTTP/1.1 on the
// wire, for net/http guests) and lean_dapr_call (leanwire's layout).
func (a *App) hostModule(ctx context.Context, rt wazero.Runtime) error {
	i32 := api.ValueTypeI32
	sig := []api.ValueType{i32, i32, i32, i32}
	_, err := rt.NewHostModuleBuilder("tandem").
		NewFunctionBuilder().WithGoModuleFunction(a.daprCall("tandem.dapr_call", a.call), sig, []api.ValueType{i32}).Export("dapr_call").
		NewFunctionBuilder().WithGoModuleFunction(a.daprCall("tandem.lean_dapr_call", a.leanCall), sig, []api.ValueType{i32}).Export("lean_dapr_call").
		Instantiate(ctx)
	return err
}

// daprCall is a host function of the dapr_call shape whose request and
// answer call reads and writes.
func (a *App) daprCall(name string, call func(ctx context.Context, raw, dst []byte) []byte) api.GoModuleFunc {
	return func(ctx context.Context, m api.Module, s []uint64) {
		reqPtr, reqLen, bufPtr, limit := uint32(s[0]), uint32(s[1]), uint32(s[2]), uint32(s[3])
		pending := httpwasm.Scratch(ctx)
		if pending == nil {
			panic(name + " called outside a request")
		}
		if reqLen > 0 {
			raw, ok := m.Memory().Read(reqPtr, reqLen)
			if !ok {
				panic(name + ": request out of the guest's memory")
			}
			*pending = call(ctx, raw, (*pending)[:0])
			if err := ctx.Err(); err != nil {
				// The request's time ran out during the call: the guest does
				// not go on (the request fails, the instance is replaced).
				panic(fmt.Sprintf("%s: %v", name, err))
			}
		}
		deliver(m, s, pending, bufPtr, limit, name)
	}
}

// deliver writes the pending answer into the guest's buffer when it fits
// and returns its length either way.
func deliver(m api.Module, s []uint64, pending *[]byte, bufPtr, limit uint32, name string) {
	out := *pending
	if uint32(len(out)) <= limit {
		if len(out) > 0 && !m.Memory().Write(bufPtr, out) {
			panic(name + ": buffer out of the guest's memory")
		}
		*pending = out[:0]
	}
	s[0] = uint64(len(out))
}

// call runs one wire request of the app's through the API handler and
// appends the wire answer to dst.
func (a *App) call(ctx context.Context, raw []byte, dst []byte) []byte {
	r, err := ReadRequest(raw)
	if err != nil {
		return AppendResponse(dst, http.StatusBadRequest, http.Header{"Content-Type": {"application/json"}},
			errorBody("ERR_MALFORMED_REQUEST", "wasm app: the request to tandem.dapr_call is not HTTP/1.1: "+err.Error()))
	}
	rec := a.serveAPI(ctx, r)
	return AppendResponse(dst, rec.status, rec.h, rec.body.Bytes())
}

// serveAPI runs one request of the app's through the API handler.
func (a *App) serveAPI(ctx context.Context, r *http.Request) *recorder {
	rec := &recorder{h: http.Header{}}
	h := a.api.Load()
	if h == nil {
		rec.h.Set("Content-Type", "application/json")
		rec.status = http.StatusServiceUnavailable
		rec.body.Write(errorBody("ERR_NOT_READY", "wasm app: the sidecar's API is not serving yet"))
		return rec
	}
	if a.cfg.APIToken != "" {
		r.Header.Set("Dapr-Api-Token", a.cfg.APIToken)
	}
	(*h).ServeHTTP(rec, r.WithContext(ctx))
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec
}

// leanCall runs one request of a lean app's (leanwire's layout) through
// the API handler and appends the answer in the same layout to dst.
func (a *App) leanCall(ctx context.Context, raw []byte, dst []byte) []byte {
	r, err := DecodeLeanRequest(raw)
	if err != nil {
		body := errorBody("ERR_MALFORMED_REQUEST", "wasm app: the request to tandem.lean_dapr_call: "+err.Error())
		return AppendLeanResponse(dst, http.StatusBadRequest, http.Header{"Content-Type": {"application/json"}}, body)
	}
	rec := a.serveAPI(ctx, r)
	return AppendLeanResponse(dst, rec.status, rec.h, rec.body.Bytes())
}

// DecodeLeanRequest reads a request in leanwire's layout, as a lean app
// sends it, into a server-side request.
func DecodeLeanRequest(raw []byte) (*http.Request, error) {
	var w leanwire.Request
	if err := leanwire.DecodeRequest(raw, &w); err != nil {
		return nil, err
	}
	method, uri := string(w.Method), string(w.URI)
	if !validMethod(method) {
		return nil, fmt.Errorf("invalid method %q", method)
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, err
	}
	h := make(http.Header, len(w.Header))
	for _, f := range w.Header {
		h.Add(string(f.Name), string(f.Value))
	}
	host := h.Get("Host")
	h.Del("Host")
	h.Del("Content-Length")
	h.Del("Transfer-Encoding")
	body := bytes.Clone(w.Body)
	r := &http.Request{
		Method: method, URL: u, RequestURI: uri, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, ContentLength: int64(len(body)), Host: cmp.Or(host, "dapr"),
		RemoteAddr: "127.0.0.1:0", // the app, as a process app on loopback would be
	}
	if len(body) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	return r, nil
}

// validMethod: a token of RFC 9110 (what http.ReadRequest accepts).
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// AppendLeanResponse appends an answer in leanwire's layout to dst.
func AppendLeanResponse(dst []byte, status int, h http.Header, body []byte) []byte {
	count := 0
	for k, vs := range h {
		if k != "Content-Length" && k != "Transfer-Encoding" {
			count += len(vs)
		}
	}
	dst = leanwire.AppendResponseHead(dst, uint32(status), count)
	for k, vs := range h {
		if k == "Content-Length" || k == "Transfer-Encoding" {
			continue
		}
		for _, v := range vs {
			dst = leanwire.AppendField(dst, k, v)
		}
	}
	return leanwire.AppendBytes(dst, body)
}

// ReadRequest parses an HTTP/1.1 request as the guest sends it.
func ReadRequest(raw []byte) (*http.Request, error) {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	r.RemoteAddr = "127.0.0.1:0" // the app, as a process app on loopback would be
	return r, nil
}

// AppendResponse appends an HTTP/1.1 response as on the wire to dst.
func AppendResponse(dst []byte, status int, h http.Header, body []byte) []byte {
	b := bytes.NewBuffer(dst)
	fmt.Fprintf(b, "HTTP/1.1 %03d %s\r\n", status, http.StatusText(status))
	h = h.Clone()
	h.Del("Transfer-Encoding")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_ = h.Write(b)
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

func errorBody(code, msg string) []byte {
	b, _ := json.Marshal(map[string]string{"errorCode": code, "message": msg})
	return b
}

// recorder keeps the API handler's answer.
type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}

// Flush is a no-op: the answer goes to the guest whole.
func (r *recorder) Flush() {}

// logWriter logs what the guest prints on stdout.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Info("wasm app: " + string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
