package httpwasm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"slices"

	"github.com/tetratelabs/wazero/api"

	"github.com/tandemrun/tandem/internal/leanwire"
)

// The lean app ABI (wasmapp/lean), which a pool accepts with Config.Lean:
// the guest exports
//
//	lean_buffer(n i32) -> ptr i32   a buffer of at least n bytes, kept by
//	                                the guest until the next lean_buffer
//	lean_handle(n i32) -> i64       handle the request in the buffer's
//	                                first n bytes; the answer lies at
//	                                ptr = result>>32, of length result&0xffffffff
//
// and the layout of both is internal/leanwire's. A request costs one call
// into the guest (two when its buffer must grow), and no host call but the
// guest's own API calls.
const (
	leanHandle = "lean_handle"
	leanBuffer = "lean_buffer"
)

// checkLean checks the lean exports' signatures.
func checkLean(exports map[string]api.FunctionDefinition) error {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	for _, want := range []struct {
		name           string
		params, result []api.ValueType
	}{{leanHandle, []api.ValueType{i32}, []api.ValueType{i64}}, {leanBuffer, []api.ValueType{i32}, []api.ValueType{i32}}} {
		def := exports[want.name]
		if def == nil {
			return fmt.Errorf("exports %s but not %s: it is not a lean Wasm app (see wasmapp/lean)", leanHandle, want.name)
		}
		if !slices.Equal(def.ParamTypes(), want.params) || !slices.Equal(def.ResultTypes(), want.result) {
			return fmt.Errorf("exports %s with the signature %v -> %v, not %v -> %v (see wasmapp/lean)",
				want.name, typeNames(def.ParamTypes()), typeNames(def.ResultTypes()), typeNames(want.params), typeNames(want.result))
		}
	}
	return nil
}

func typeNames(ts []api.ValueType) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = api.ValueTypeName(t)
	}
	return out
}

// leanState is an instance's side of the lean ABI: its exports, where its
// request buffer lies, and buffers kept from one request to the next.
type leanState struct {
	handle, buffer api.Function
	ptr, size      uint32 // the guest's request buffer (size 0: none yet)
	body, msg      []byte
	resp           leanwire.Response
	stack          [1]uint64
}

// errBodyRead marks a request whose body could not be read.
var errBodyRead = errors.New("read the request body")

// serveLean runs r through in, a lean guest, and answers what it answered.
func (m *Pool) serveLean(w http.ResponseWriter, r *http.Request, in *instance) {
	st := &in.lean
	var err error
	if st.body, err = readAll(st.body[:0], r.Body); err != nil {
		m.put(in)
		if r.Context().Err() == nil {
			http.Error(w, fmt.Sprintf("%v: %v", errBodyRead, err), http.StatusBadRequest)
		}
		return
	}
	st.msg = encodeRequest(st.msg[:0], r, st.body)
	n := uint32(len(st.msg))
	if n > st.size {
		size := uint32(1) << bits.Len32(n) // room to grow before the next call
		if err := m.callStack(r.Context(), in, st.buffer, st.stack[:], uint64(size)); err != nil {
			m.trapped(w, in, leanBuffer, err)
			return
		}
		st.ptr, st.size = uint32(st.stack[0]), size
	}
	mem := in.mod.Memory()
	if !mem.Write(st.ptr, st.msg) {
		m.trapped(w, in, leanBuffer, fmt.Errorf("it returned a buffer at %d of %d bytes, out of its memory", st.ptr, st.size))
		return
	}
	if err := m.callStack(r.Context(), in, st.handle, st.stack[:], uint64(n)); err != nil {
		m.trapped(w, in, leanHandle, err)
		return
	}
	ptr, size := uint32(st.stack[0]>>32), uint32(st.stack[0])
	out, ok := mem.Read(ptr, size)
	if !ok {
		m.trapped(w, in, leanHandle, fmt.Errorf("it answered at %d, %d bytes, out of its memory", ptr, size))
		return
	}
	if err := leanwire.DecodeResponse(out, &st.resp); err != nil {
		m.trapped(w, in, leanHandle, fmt.Errorf("its answer: %w", err))
		return
	}
	if st.resp.Status < 100 || st.resp.Status > 999 {
		m.trapped(w, in, leanHandle, fmt.Errorf("it answered the status %d", st.resp.Status))
		return
	}
	// The answer lies in the guest's memory: it is written before the
	// instance goes back to the pool.
	h := w.Header()
	for _, f := range st.resp.Header {
		h.Add(string(f.Name), string(f.Value))
	}
	w.WriteHeader(int(st.resp.Status))
	_, _ = w.Write(st.resp.Body)
	m.put(in)
}

// encodeRequest appends r (with body) in leanwire's layout.
func encodeRequest(dst []byte, r *http.Request, body []byte) []byte {
	count := 0
	for _, vs := range r.Header {
		count += len(vs)
	}
	if r.Host != "" {
		count++ // a server moves Host out of the header
	}
	dst = leanwire.AppendRequestHead(dst, r.Method, r.URL.RequestURI(), count)
	if r.Host != "" {
		dst = leanwire.AppendField(dst, "Host", r.Host)
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			dst = leanwire.AppendField(dst, k, v)
		}
	}
	return leanwire.AppendBytes(dst, body)
}

// readAll appends what body holds to dst.
func readAll(dst []byte, body io.Reader) ([]byte, error) {
	if body == nil || body == http.NoBody {
		return dst, nil
	}
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := body.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// callStack calls fn with params in stack under the per-call deadline;
// the results replace them.
func (m *Pool) callStack(ctx context.Context, in *instance, fn api.Function, stack []uint64, params ...uint64) error {
	copy(stack, params)
	cctx, cancel := context.WithTimeout(context.WithValue(ctx, guestKey{}, in), m.timeout)
	defer cancel()
	if err := fn.CallWithStack(cctx, stack); err != nil {
		if cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			return fmt.Errorf("the guest ran past its deadline of %s (metadata timeout)", m.timeout)
		}
		return withStderr(err, &in.stderr)
	}
	return nil
}
