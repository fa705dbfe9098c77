package wasm

import (
	"context"
	"crypto/sha256"
	"sync"

	"github.com/tetratelabs/wazero"
)

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

// precompile waits until guest is in the compilation cache (or failed to
// compile), or ctx ends.
func precompile(ctx context.Context, guest []byte) error {
	key := sha256.Sum256(guest)
	compiles.Lock()
	c, ok := compiles.m[key]
	if !ok {
		c = &compilation{done: make(chan struct{})}
		compiles.m[key] = c
		go func() {
			defer close(c.done)
			bg := context.Background()
			rt := wazero.NewRuntimeWithConfig(bg, runtimeConfig(0))
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

// runtimeConfig is the configuration of every runtime: the compiler, a
// deadline that closes the module, the shared cache and, for an instance
// runtime, its memory limit (0: none).
func runtimeConfig(memoryPages uint32) wazero.RuntimeConfig {
	cfg := wazero.NewRuntimeConfig().WithCloseOnContextDone(true).WithCompilationCache(cache)
	if memoryPages > 0 {
		cfg = cfg.WithMemoryLimitPages(memoryPages)
	}
	return cfg
}
