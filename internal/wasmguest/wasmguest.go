// Package wasmguest loads WebAssembly guests for the wasm components
// (middleware.http.wasm, bindings.wasm): it reads a module from a file://
// or http(s):// URL and compiles each distinct module once into a
// compilation cache that every runtime shares, so a reload, or a second
// component with the same guest, does not compile it again.
package wasmguest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
)

// MaxModuleBytes is the largest guest Fetch accepts.
const MaxModuleBytes = 256 << 20

// cache shares compiled modules between components and reloads of one.
var cache = wazero.NewCompilationCache()

// Fetch reads the guest from a file:// or http(s):// URL (metadata url). A
// file:// path is relative to the sidecar's working folder unless it
// starts with /. Errors that a retry cannot mend say so with a
// Permanent() bool method, which components.IsPermanent reads.
func Fetch(ctx context.Context, u string) ([]byte, error) {
	scheme, rest, ok := strings.Cut(u, "://")
	switch {
	case !ok:
		return nil, permanent(fmt.Errorf("metadata url %q has no scheme: use file:// or https://", u))
	case scheme == "file":
		b, err := os.ReadFile(rest)
		if err != nil {
			return nil, permanent(fmt.Errorf("read the guest: %w", err))
		}
		return b, nil
	case scheme == "http" || scheme == "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, permanent(fmt.Errorf("metadata url %q: %w", u, err))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetch the guest (retried): %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("fetch the guest from %s: status %d (retried)", u, resp.StatusCode)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, MaxModuleBytes+1))
		if err != nil {
			return nil, fmt.Errorf("fetch the guest from %s: %w", u, err)
		}
		if len(b) > MaxModuleBytes {
			return nil, permanent(fmt.Errorf("the guest at %s is larger than %d MiB", u, MaxModuleBytes>>20))
		}
		return b, nil
	}
	return nil, permanent(fmt.Errorf("metadata url %q: unsupported scheme %s: use file:// or https://", u, scheme))
}

// configError is a failure only an edit of the component can mend.
type configError struct{ err error }

func (e configError) Error() string   { return e.err.Error() }
func (e configError) Unwrap() error   { return e.err }
func (e configError) Permanent() bool { return true }

func permanent(err error) error { return configError{err} }

// Load fetches the module at u (Fetch) and waits until it is compiled into
// the shared cache (Precompile). what names it in errors ("guest",
// "program"). A module that does not compile is a permanent error; one still
// compiling when ctx ends is not (the next attempt finds it compiled).
func Load(ctx context.Context, u, what string) ([]byte, error) {
	mod, err := Fetch(ctx, u)
	if err != nil {
		return nil, err
	}
	if err := Precompile(ctx, mod); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("the %s at %s is still being compiled (it goes on in the background; raise spec.initTimeout to wait for it in one attempt): %w", what, u, err)
		}
		return nil, permanent(fmt.Errorf("the %s at %s is not a valid wasm module: %w", what, u, err))
	}
	return mod, nil
}

// Compiling a guest (a Go guest is some MiB) can take longer than a
// component's spec.initTimeout on a busy machine. So each distinct module is
// compiled once, on its own goroutine that outlives the Init that started
// it, into the shared compilation cache; an Init that runs out of time
// fails (and is retried by the component manager) while the compilation
// goes on, and its retry, or any other component with the same guest,
// waits for that same compilation and then finds the result in the cache.
var compiles = struct {
	sync.Mutex
	m map[[32]byte]*compilation
}{m: map[[32]byte]*compilation{}}

type compilation struct {
	done chan struct{}
	err  error
}

// Precompile waits until guest is in the compilation cache (or failed to
// compile), or ctx ends.
func Precompile(ctx context.Context, guest []byte) error {
	key := sha256.Sum256(guest)
	compiles.Lock()
	c, ok := compiles.m[key]
	if !ok {
		c = &compilation{done: make(chan struct{})}
		compiles.m[key] = c
		go func() {
			defer close(c.done)
			bg := context.Background()
			rt := wazero.NewRuntimeWithConfig(bg, RuntimeConfig(0))
			defer rt.Close(bg)
			mod, err := rt.CompileModule(bg, guest)
			if err != nil {
				c.err = err
				// Not kept: the next attempt tries again (and fails the
				// same way, with the same message).
				compiles.Lock()
				delete(compiles.m, key)
				compiles.Unlock()
				return
			}
			_ = mod.Close(bg)
		}()
	}
	compiles.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RuntimeConfig is the configuration of every runtime: the compiler, a
// deadline that closes the module, the shared cache and, for an instance
// runtime, its memory limit in 64 KiB pages (0: none).
func RuntimeConfig(memoryPages uint32) wazero.RuntimeConfig {
	cfg := wazero.NewRuntimeConfig().WithCloseOnContextDone(true).WithCompilationCache(cache)
	if memoryPages > 0 {
		cfg = cfg.WithMemoryLimitPages(memoryPages)
	}
	return cfg
}

// LimitedWriter keeps the first Max bytes written to B and drops the rest
// (a guest's stderr, quoted in errors).
type LimitedWriter struct {
	B   *bytes.Buffer
	Max int
}

func (w LimitedWriter) Write(p []byte) (int, error) {
	if room := w.Max - w.B.Len(); room > 0 {
		w.B.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
