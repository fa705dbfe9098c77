// Package wasm is middleware.http.wasm: an http-wasm guest
// (https://http-wasm.io/http-handler-abi/) run on wazero around each
// request. Metadata, as in Dapr: url (file:// or https://, also http://)
// and guestConfig (bytes the guest reads with get_config); Tandem adds
// memoryLimit (MiB per instance, default 64), timeout (per call into the
// guest, default 1s) and maxInstances (default 32).
//
// Each request runs in an instance of its own (a pool reuses them): a guest
// that traps, panics or runs past its deadline fails that request with 500
// and its instance is thrown away; the others, and the sidecar, go on.
package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/middleware"
	"github.com/tandemrun/tandem/internal/wasmguest"
)

// Type is the spec.type.
const Type = "middleware.http.wasm"

// Defaults of Tandem's own metadata.
const (
	defaultMemoryMiB    = 64
	defaultTimeout      = time.Second
	defaultMaxInstances = 32
)

// Middleware is one wasm component.
type Middleware struct {
	log *slog.Logger

	name        string
	guestConfig []byte
	timeout     time.Duration
	max         int

	rt       wazero.Runtime
	compiled wazero.CompiledModule
	start    string

	mu     sync.Mutex
	idle   []*instance
	live   int           // instances in existence
	freed  chan struct{} // a slot or an idle instance became available
	closed bool
}

var _ middleware.Middleware = (*Middleware)(nil)

// New returns an uninitialised component.
func New(log *slog.Logger) func() middleware.Middleware {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func() middleware.Middleware { return &Middleware{log: log} }
}

// Init fetches and compiles the guest, checks its exports and starts one
// instance (so a guest that fails at start fails the component).
func (m *Middleware) Init(ctx context.Context, md components.Metadata) error {
	m.name = md.Name
	m.log = m.log.With("middleware", md.Name, "type", Type)
	u := md.String("url", "")
	if u == "" {
		return components.Permanent(errors.New("metadata url is missing: give the guest as file:///path/guest.wasm or https://host/guest.wasm"))
	}
	m.guestConfig = []byte(md.String("guestConfig", ""))
	mem, err := positive(md, "memoryLimit", defaultMemoryMiB)
	if err != nil {
		return err
	}
	if mem > 4096 {
		return components.Permanent(fmt.Errorf("metadata memoryLimit is %d MiB: a wasm32 guest addresses at most 4096", mem))
	}
	if m.max, err = positive(md, "maxInstances", defaultMaxInstances); err != nil {
		return err
	}
	m.timeout = defaultTimeout
	if v := md.String("timeout", ""); v != "" {
		if m.timeout, err = time.ParseDuration(v); err != nil || m.timeout <= 0 {
			return components.Permanent(fmt.Errorf("metadata timeout is %q: give a positive duration such as 500ms", v))
		}
	}
	guest, err := wasmguest.Load(ctx, u, "guest")
	if err != nil {
		return err
	}
	m.rt = wazero.NewRuntimeWithConfig(ctx, wasmguest.RuntimeConfig(uint32(mem)*16)) // 64 KiB pages
	fail := func(err error) error {
		_ = m.rt.Close(context.Background())
		return err
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, m.rt); err != nil {
		return fail(err)
	}
	if err := hostFunctions(ctx, m.rt, m.log); err != nil {
		return fail(err)
	}
	m.compiled, err = m.rt.CompileModule(ctx, guest)
	if err != nil {
		return fail(components.Permanent(fmt.Errorf("the guest at %s is not a valid wasm module: %w", u, err)))
	}
	exports := m.compiled.ExportedFunctions()
	for _, name := range []string{"handle_request", "handle_response"} {
		if _, ok := exports[name]; !ok {
			return fail(components.Permanent(fmt.Errorf("the guest at %s does not export %s: it is not an http-wasm handler (see https://http-wasm.io/http-handler-abi/)", u, name)))
		}
	}
	if _, ok := m.compiled.ExportedMemories()["memory"]; !ok {
		return fail(components.Permanent(fmt.Errorf("the guest at %s does not export its memory as \"memory\"", u)))
	}
	switch {
	case exports["_initialize"] != nil:
		m.start = "_initialize" // a reactor (Go's -buildmode=c-shared)
	case exports["_start"] != nil:
		m.start = "_start" // a command whose main returns (TinyGo)
	}
	m.freed = make(chan struct{}, 1)
	in, err := m.instantiate(ctx)
	if err != nil {
		return fail(components.Permanent(fmt.Errorf("the guest at %s fails at start: %w", u, err)))
	}
	m.live = 1
	m.idle = append(m.idle, in)
	return nil
}

func positive(md components.Metadata, name string, def int) (int, error) {
	v := md.String(name, "")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, components.Permanent(fmt.Errorf("metadata %s is %q: give a positive whole number", name, v))
	}
	return n, nil
}

// instance is one instantiated guest and the request it is handling.
type instance struct {
	mw       *Middleware
	mod      api.Module
	handleRq api.Function
	handleRs api.Function
	features uint32
	cur      *exchange
	stderr   bytes.Buffer
}

func (in *instance) ex() *exchange {
	if in.cur == nil {
		panic("http_handler: request functions called outside handle_request/handle_response")
	}
	return in.cur
}

// instantiate starts a fresh instance, with the guest's start function
// under the per-call deadline.
func (m *Middleware) instantiate(ctx context.Context) (*instance, error) {
	in := &instance{mw: m}
	mc := wazero.NewModuleConfig().WithName("").
		WithSysNanotime().WithSysWalltime().WithSysNanosleep().WithRandSource(rand.Reader).
		WithStderr(wasmguest.LimitedWriter{B: &in.stderr, Max: 4096}).WithStdout(io.Discard)
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

// get takes an idle instance, or starts one while under maxInstances, or
// waits for one.
func (m *Middleware) get(ctx context.Context) (*instance, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, errors.New("the middleware is closed (reloaded or removed)")
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
func (m *Middleware) put(in *instance) {
	in.cur = nil
	in.stderr.Reset()
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
func (m *Middleware) discard(in *instance) {
	_ = in.mod.Close(context.Background())
	m.drop()
}

func (m *Middleware) drop() {
	m.mu.Lock()
	m.live--
	m.mu.Unlock()
	m.signal()
}

func (m *Middleware) signal() {
	select {
	case m.freed <- struct{}{}:
	default:
	}
}

// Close closes the idle instances, waits (up to twice the call timeout)
// for those in use, and closes the runtime, which ends any still running.
func (m *Middleware) Close() error {
	m.mu.Lock()
	m.closed = true
	idle := m.idle
	m.idle = nil
	m.live -= len(idle)
	m.mu.Unlock()
	for _, in := range idle {
		_ = in.mod.Close(context.Background())
	}
	if m.rt == nil {
		return nil
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
