// Package httpwasm runs http-wasm guests (https://http-wasm.io/http-handler-abi/)
// on wazero, host side: the http_handler host module, a pool of guest
// instances, and the http.Handler that runs each request through one. The
// wasm middleware (components/middleware/wasm) and the Wasm app the sidecar
// hosts (proxy/wasmhost) are both built on it; they add their own host
// modules (Config.HostModules).
//
// Each request runs in an instance of its own: a guest that traps, panics
// or runs past its deadline fails that request with 500 and its instance is
// thrown away; the others go on.
package httpwasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/tandemrun/tandem/internal/wasmguest"
)

// Config says what guest to run and how.
type Config struct {
	// Guest is the module's bytes; Source says where it came from (a URL
	// or path), in errors.
	Guest  []byte
	Source string
	// GuestConfig is what the guest reads with get_config.
	GuestConfig []byte
	// MemoryMiB bounds each instance's memory (0: 64); at most 4096.
	MemoryMiB int
	// Timeout bounds each call into the guest (0: 1s); starting an
	// instance gets five times as long.
	Timeout time.Duration
	// MaxInstances bounds the instances alive at once (0: 32).
	MaxInstances int
	// HostModules, if set, defines more host modules on the runtime (the
	// guest may import them); their functions find the instance's request
	// with Request and a buffer of its own with Scratch.
	HostModules func(ctx context.Context, rt wazero.Runtime) error
	// Fail answers a request the guest failed (500); nil: a plain
	// {"errorCode":"ERR_WASM_GUEST_FAILED"} answer.
	Fail func(w http.ResponseWriter, what string, err error)
	// Cache, if set, is where compiled code is kept instead of the
	// process's shared in-memory cache (a folder cache survives restarts).
	Cache wazero.CompilationCache
	// Lean accepts a guest of the lean app ABI (exports lean_handle and
	// lean_buffer, see lean.go) as well; such a guest answers each request
	// itself (there is no next handler).
	Lean bool
	// Env is the guests' environment (GOGC for a Go guest, say).
	Env map[string]string
	// Stdout receives the guests' stdout (nil: dropped).
	Stdout io.Writer
	Log    *slog.Logger
}

// Defaults of Config.
const (
	DefaultMemoryMiB    = 64
	DefaultTimeout      = time.Second
	DefaultMaxInstances = 32
)

// Pool is one compiled guest and its instances.
type Pool struct {
	log         *slog.Logger
	source      string
	guestConfig []byte
	timeout     time.Duration
	max         int
	failFn      func(w http.ResponseWriter, what string, err error)
	stdout      io.Writer
	env         map[string]string
	lean        bool // the guest speaks the lean ABI, not http-wasm

	rt       wazero.Runtime
	compiled wazero.CompiledModule
	start    string

	mu     sync.Mutex
	idle   []*instance
	live   int           // instances in existence
	freed  chan struct{} // a slot or an idle instance became available
	closed bool
}

// New compiles the guest (from the shared cache when it was compiled
// before), checks that it exports handle_request, handle_response and its
// memory, and starts one instance, so that a guest that fails at start
// fails here. Its errors name what is missing.
func New(ctx context.Context, cfg Config) (*Pool, error) {
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = DefaultMemoryMiB
	}
	if cfg.MemoryMiB < 0 || cfg.MemoryMiB > 4096 {
		return nil, fmt.Errorf("memory limit %d MiB: give 1 to 4096 (a wasm32 guest addresses at most 4 GiB)", cfg.MemoryMiB)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxInstances <= 0 {
		cfg.MaxInstances = DefaultMaxInstances
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	p := &Pool{
		log: cfg.Log, source: cfg.Source, guestConfig: cfg.GuestConfig, timeout: cfg.Timeout, max: cfg.MaxInstances,
		failFn: cfg.Fail, stdout: cfg.Stdout, env: cfg.Env, freed: make(chan struct{}, 1),
	}
	rc := wasmguest.RuntimeConfig(uint32(cfg.MemoryMiB) * 16) // 64 KiB pages
	if cfg.Cache != nil {
		rc = rc.WithCompilationCache(cfg.Cache)
	}
	p.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	fail := func(err error) (*Pool, error) {
		_ = p.rt.Close(context.Background())
		return nil, err
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, p.rt); err != nil {
		return fail(err)
	}
	if err := hostFunctions(ctx, p.rt, p.log); err != nil {
		return fail(err)
	}
	if cfg.HostModules != nil {
		if err := cfg.HostModules(ctx, p.rt); err != nil {
			return fail(err)
		}
	}
	var err error
	p.compiled, err = p.rt.CompileModule(ctx, cfg.Guest)
	if err != nil {
		return fail(fmt.Errorf("the guest at %s is not a valid wasm module: %w", cfg.Source, err))
	}
	exports := p.compiled.ExportedFunctions()
	p.lean = cfg.Lean && exports[leanHandle] != nil
	if p.lean {
		if err := checkLean(exports); err != nil {
			return fail(fmt.Errorf("the guest at %s %w", cfg.Source, err))
		}
	} else {
		for _, name := range []string{"handle_request", "handle_response"} {
			if _, ok := exports[name]; !ok {
				also := ""
				if cfg.Lean {
					also = " nor a lean Wasm app (export " + leanHandle + ", see wasmapp/lean)"
				}
				return fail(fmt.Errorf("the guest at %s does not export %s: it is not an http-wasm handler (see https://http-wasm.io/http-handler-abi/)%s", cfg.Source, name, also))
			}
		}
	}
	if _, ok := p.compiled.ExportedMemories()["memory"]; !ok {
		return fail(fmt.Errorf("the guest at %s does not export its memory as \"memory\"", cfg.Source))
	}
	switch {
	case exports["_initialize"] != nil:
		p.start = "_initialize" // a reactor (Go's -buildmode=c-shared)
	case exports["_start"] != nil:
		p.start = "_start" // a command whose main returns (TinyGo)
	}
	in, err := p.instantiate(ctx)
	if err != nil {
		return fail(fmt.Errorf("the guest at %s fails at start: %w", cfg.Source, err))
	}
	p.live = 1
	p.idle = append(p.idle, in)
	return p, nil
}

// Stats is the pool's state: instances alive, of them idle, and the bound.
type Stats struct{ Live, Idle, Max int }

// Stats reports the instances.
func (m *Pool) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stats{Live: m.live, Idle: len(m.idle), Max: m.max}
}

// ABI is the guest's ABI: "lean" (wasmapp/lean) or "http-wasm".
func (m *Pool) ABI() string {
	if m.lean {
		return "lean"
	}
	return "http-wasm"
}

// instance is one instantiated guest and the request it is handling.
type instance struct {
	pool     *Pool
	mod      api.Module
	handleRq api.Function
	handleRs api.Function
	features uint32
	cur      *exchange
	stderr   bytes.Buffer
	scratch  []byte
	lean     leanState
}

func (in *instance) ex() *exchange {
	if in.cur == nil {
		panic("http_handler: request functions called outside handle_request/handle_response")
	}
	return in.cur
}

// Request is the request the instance calling a host function is
// handling; nil outside a request (while the guest starts).
func Request(ctx context.Context) *http.Request {
	if in := instanceOf(ctx); in != nil && in.cur != nil {
		return in.cur.r
	}
	return nil
}

// Scratch is a buffer of the calling instance's own that a host function
// may keep between calls (the rest of an answer too big for the guest's
// buffer); it is emptied for each request. Nil outside a guest call.
func Scratch(ctx context.Context) *[]byte {
	if in := instanceOf(ctx); in != nil {
		return &in.scratch
	}
	return nil
}

// instantiate starts a fresh instance, with the guest's start function
// under five times the per-call deadline.
func (m *Pool) instantiate(ctx context.Context) (*instance, error) {
	in := &instance{pool: m}
	mc := wazero.NewModuleConfig().WithName("").
		WithSysNanotime().WithSysWalltime().WithSysNanosleep().WithRandSource(rand.Reader).
		WithStderr(wasmguest.LimitedWriter{B: &in.stderr, Max: 4096}).WithStdout(m.stdout)
	for k, v := range m.env {
		mc = mc.WithEnv(k, v)
	}
	if m.start != "" {
		mc = mc.WithStartFunctions(m.start)
	} else {
		mc = mc.WithStartFunctions()
	}
	cctx, cancel := context.WithTimeout(context.WithValue(ctx, guestKey{}, in), m.timeout*5)
	defer cancel()
	mod, err := m.rt.InstantiateModule(cctx, m.compiled, mc)
	if err != nil {
		return nil, withStderr(err, &in.stderr)
	}
	in.mod = mod
	if m.lean {
		in.lean.handle, in.lean.buffer = mod.ExportedFunction(leanHandle), mod.ExportedFunction(leanBuffer)
		return in, nil
	}
	in.handleRq = mod.ExportedFunction("handle_request")
	in.handleRs = mod.ExportedFunction("handle_response")
	return in, nil
}

func withStderr(err error, stderr *bytes.Buffer) error {
	if s := strings.TrimSpace(stderr.String()); s != "" {
		return fmt.Errorf("%w (guest stderr: %s)", err, s)
	}
	return err
}

// get takes an idle instance, or starts one while under MaxInstances, or
// waits for one.
func (m *Pool) get(ctx context.Context) (*instance, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, errors.New("the guest's pool is closed (reloaded or removed)")
		}
		if n := len(m.idle); n > 0 {
			in := m.idle[n-1]
			m.idle = m.idle[:n-1]
			m.mu.Unlock()
			return in, nil
		}
		if m.live < m.max {
			m.live++
			m.mu.Unlock()
			in, err := m.instantiate(ctx)
			if err != nil {
				m.drop()
				return nil, err
			}
			return in, nil
		}
		m.mu.Unlock()
		select {
		case <-m.freed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// put returns a healthy instance to the pool.
func (m *Pool) put(in *instance) {
	in.cur = nil
	in.stderr.Reset()
	in.scratch = in.scratch[:0]
	m.mu.Lock()
	if m.closed {
		m.live--
		m.mu.Unlock()
		_ = in.mod.Close(context.Background())
		m.signal()
		return
	}
	m.idle = append(m.idle, in)
	m.mu.Unlock()
	m.signal()
}

// discard throws away an instance that trapped or ran out of time.
func (m *Pool) discard(in *instance) {
	_ = in.mod.Close(context.Background())
	m.drop()
}

func (m *Pool) drop() {
	m.mu.Lock()
	m.live--
	m.mu.Unlock()
	m.signal()
}

func (m *Pool) signal() {
	select {
	case m.freed <- struct{}{}:
	default:
	}
}

// Close closes the idle instances, waits (up to twice the call timeout)
// for those in use, and closes the runtime, which ends any still running.
func (m *Pool) Close() error {
	m.mu.Lock()
	m.closed = true
	idle := m.idle
	m.idle = nil
	m.live -= len(idle)
	m.mu.Unlock()
	for _, in := range idle {
		_ = in.mod.Close(context.Background())
	}
	deadline := time.NewTimer(2 * m.timeout)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		n := m.live
		m.mu.Unlock()
		if n <= 0 {
			break
		}
		select {
		case <-m.freed:
			continue
		case <-deadline.C:
		}
		break
	}
	return m.rt.Close(context.Background())
}
