// Package wasm is middleware.http.wasm: an http-wasm guest
// (https://http-wasm.io/http-handler-abi/) run on wazero around each
// request (internal/httpwasm). Metadata, as in Dapr: url (file:// or
// https://, also http://) and guestConfig (bytes the guest reads with
// get_config); Tandem adds memoryLimit (MiB per instance, default 64),
// timeout (per call into the guest, default 1s) and maxInstances (default
// 32).
//
// Each request runs in an instance of its own (a pool reuses them): a guest
// that traps, panics or runs past its deadline fails that request with 500
// and its instance is thrown away; the others, and the sidecar, go on.
package wasm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/middleware"
	"github.com/tandemrun/tandem/internal/httpwasm"
	"github.com/tandemrun/tandem/internal/wasmguest"
)

// Type is the spec.type.
const Type = "middleware.http.wasm"

// Middleware is one wasm component.
type Middleware struct {
	log  *slog.Logger
	name string
	pool *httpwasm.Pool
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
	mem, err := positive(md, "memoryLimit", httpwasm.DefaultMemoryMiB)
	if err != nil {
		return err
	}
	if mem > 4096 {
		return components.Permanent(fmt.Errorf("metadata memoryLimit is %d MiB: a wasm32 guest addresses at most 4096", mem))
	}
	maxInstances, err := positive(md, "maxInstances", httpwasm.DefaultMaxInstances)
	if err != nil {
		return err
	}
	timeout := httpwasm.DefaultTimeout
	if v := md.String("timeout", ""); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil || timeout <= 0 {
			return components.Permanent(fmt.Errorf("metadata timeout is %q: give a positive duration such as 500ms", v))
		}
	}
	guest, err := wasmguest.Load(ctx, u, "guest")
	if err != nil {
		return err
	}
	m.pool, err = httpwasm.New(ctx, httpwasm.Config{
		Guest: guest, Source: u, GuestConfig: []byte(md.String("guestConfig", "")),
		MemoryMiB: mem, Timeout: timeout, MaxInstances: maxInstances, Log: m.log, Fail: m.fail,
	})
	if err != nil {
		return components.Permanent(err)
	}
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

// Handler runs handle_request, then (when the guest asks for it) next and
// handle_response.
func (m *Middleware) Handler(next http.Handler) http.Handler { return m.pool.Handler(next) }

// fail answers 500 in Dapr's error shape, naming the middleware.
func (m *Middleware) fail(w http.ResponseWriter, what string, err error) {
	httpwasm.Fail(w, "ERR_MIDDLEWARE_FAILED", fmt.Sprintf("middleware %s (%s): %s: %v", m.name, Type, what, err))
}

// Close closes the instances and the runtime.
func (m *Middleware) Close() error {
	if m.pool == nil {
		return nil
	}
	return m.pool.Close()
}
