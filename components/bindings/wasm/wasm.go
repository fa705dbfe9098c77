// Package wasm is bindings.wasm: an output binding that runs a WASI
// (wasip1) program per call, as Dapr's does. Operation execute: the
// request's data is the program's stdin, its stdout is the response, and
// the request's args metadata (comma-separated) are its arguments after
// the component's name.
//
// Metadata, as in Dapr: url (file:// or http(s)://) and strictSandbox
// (true: the program sees a fixed clock and a deterministic random source
// instead of the host's). Tandem adds memoryLimit (MiB per run, default
// 64) and timeout (per run, default 30s). A program that exits non-zero,
// traps, or runs past its timeout fails that call with an error that says
// which, quoting the start of its stderr; the sidecar goes on.
//
// Dapr's guest HTTP client (wasi-http) is not offered: a program that
// imports it fails at Init with a message naming the missing import.
package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/internal/wasmguest"
)

// Type is the component's spec.type.
const Type = "bindings.wasm"

// OperationExecute runs the program.
const OperationExecute = "execute"

const (
	defaultMemoryMiB = 64
	defaultTimeout   = 30 * time.Second
	maxStdout        = 64 << 20
	maxStderr        = 4096
)

// Binding is one bindings.wasm component.
type Binding struct {
	name     string
	strict   bool
	timeout  time.Duration
	rt       wazero.Runtime
	compiled wazero.CompiledModule
}

var _ bindings.OutputBinding = (*Binding)(nil)

// New returns an uninitialised binding.
func New() *Binding { return &Binding{} }

// Init fetches and compiles the program and checks that it is a WASI
// command.
func (b *Binding) Init(ctx context.Context, md components.Metadata) error {
	b.name = md.Name
	u := md.String("url", "")
	if u == "" {
		return components.Permanent(fmt.Errorf("component %q: metadata url is missing: give the program as file:///path/program.wasm or https://host/program.wasm", md.Name))
	}
	var err error
	if b.strict, err = boolean(md, "strictSandbox"); err != nil {
		return err
	}
	mem := defaultMemoryMiB
	if v := md.String("memoryLimit", ""); v != "" {
		if mem, err = strconv.Atoi(v); err != nil || mem <= 0 || mem > 4096 {
			return components.Permanent(fmt.Errorf("component %q: metadata memoryLimit is %q: give MiB between 1 and 4096", md.Name, v))
		}
	}
	b.timeout = defaultTimeout
	if v := md.String("timeout", ""); v != "" {
		if b.timeout, err = time.ParseDuration(v); err != nil || b.timeout <= 0 {
			return components.Permanent(fmt.Errorf("component %q: metadata timeout is %q: give a positive duration such as 5s", md.Name, v))
		}
	}
	prog, err := wasmguest.Load(ctx, u, "program")
	if err != nil {
		return err
	}
	b.rt = wazero.NewRuntimeWithConfig(ctx, wasmguest.RuntimeConfig(uint32(mem)*16)) // 64 KiB pages
	fail := func(err error) error {
		_ = b.rt.Close(context.Background())
		b.rt = nil
		return err
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, b.rt); err != nil {
		return fail(err)
	}
	b.compiled, err = b.rt.CompileModule(ctx, prog)
	if err != nil {
		return fail(components.Permanent(fmt.Errorf("the program at %s is not a valid wasm module: %w", u, err)))
	}
	for _, f := range b.compiled.ImportedFunctions() {
		if mod, name, _ := f.Import(); mod != wasi_snapshot_preview1.ModuleName {
			return fail(components.Permanent(fmt.Errorf("the program at %s imports %s.%s, which bindings.wasm does not provide: build it for plain WASI (GOOS=wasip1 GOARCH=wasm)", u, mod, name)))
		}
	}
	if _, ok := b.compiled.ExportedFunctions()["_start"]; !ok {
		return fail(components.Permanent(fmt.Errorf("the program at %s does not export _start: it is not a WASI command (build a main package with GOOS=wasip1 GOARCH=wasm)", u)))
	}
	return nil
}

func boolean(md components.Metadata, name string) (bool, error) {
	v := md.String(name, "")
	if v == "" {
		return false, nil
	}
	t, err := strconv.ParseBool(v)
	if err != nil {
		return false, components.Permanent(fmt.Errorf("component %q: metadata %s is %q: give true or false", md.Name, name, v))
	}
	return t, nil
}

// Operations lists execute.
func (b *Binding) Operations() []string { return []string{OperationExecute} }

// Invoke runs the program once.
func (b *Binding) Invoke(ctx context.Context, req *bindings.InvokeRequest) (*bindings.InvokeResponse, error) {
	if req.Operation != OperationExecute {
		return nil, fmt.Errorf("operation %q is not supported by %s: use %s", req.Operation, Type, OperationExecute)
	}
	if b.rt == nil {
		return nil, errors.New("the binding is not initialised")
	}
	args := []string{b.name}
	if a := req.Metadata["args"]; a != "" {
		args = append(args, strings.Split(a, ",")...)
	}
	var stdout, stderr bytes.Buffer
	out := &cappedWriter{b: &stdout, max: maxStdout}
	mc := wazero.NewModuleConfig().WithName("").WithArgs(args...).
		WithStdin(bytes.NewReader(req.Data)).WithStdout(out).
		WithStderr(wasmguest.LimitedWriter{B: &stderr, Max: maxStderr})
	if !b.strict {
		mc = mc.WithSysWalltime().WithSysNanotime().WithSysNanosleep().WithRandSource(rand.Reader)
	}
	rctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	mod, err := b.rt.InstantiateModule(rctx, b.compiled, mc)
	if mod != nil {
		_ = mod.Close(context.Background())
	}
	if out.over {
		return nil, fmt.Errorf("the program wrote more than %d MiB to stdout", maxStdout>>20)
	}
	if err != nil {
		return nil, b.runError(ctx, rctx, err, &stderr)
	}
	return &bindings.InvokeResponse{Data: stdout.Bytes()}, nil
}

// runError says how a run ended: an exit code, a deadline, or a trap.
func (b *Binding) runError(ctx, rctx context.Context, err error, stderr *bytes.Buffer) error {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch {
		case exit.ExitCode() == 0:
			return nil
		case exit.ExitCode() == sys.ExitCodeDeadlineExceeded && ctx.Err() == nil && rctx.Err() != nil:
			err = fmt.Errorf("the program ran past its timeout of %s (metadata timeout)", b.timeout)
		case exit.ExitCode() == sys.ExitCodeDeadlineExceeded || exit.ExitCode() == sys.ExitCodeContextCanceled:
			err = fmt.Errorf("the call ended before the program did: %w", context.Cause(ctx))
		default:
			err = fmt.Errorf("the program exited with code %d", exit.ExitCode())
		}
	} else {
		err = fmt.Errorf("the program failed: %w", err)
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		return fmt.Errorf("%w (stderr: %s)", err, s)
	}
	return err
}

// Close releases the runtime.
func (b *Binding) Close() error {
	if b.rt == nil {
		return nil
	}
	err := b.rt.Close(context.Background())
	b.rt = nil
	return err
}

// cappedWriter fails writes past max bytes, so a runaway program cannot
// fill the sidecar's memory.
type cappedWriter struct {
	b    *bytes.Buffer
	max  int
	over bool
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > w.max {
		w.over = true
		return 0, errors.New("stdout is full")
	}
	return w.b.Write(p)
}
