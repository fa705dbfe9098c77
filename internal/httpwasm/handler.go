package httpwasm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/tetratelabs/wazero/sys"
)

// Handler runs each request through an instance: handle_request, then
// (when the guest asks for it) next and handle_response. It may be called
// any number of times; the handlers share the pool.
func (m *Pool) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.serve(w, r, next)
	})
}

func (m *Pool) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	in, err := m.get(r.Context())
	if err != nil {
		if r.Context().Err() != nil {
			return // the caller went away while waiting for an instance
		}
		m.fail(w, "no guest instance could be started", err)
		return
	}
	if m.lean {
		m.serveLean(w, r, in)
		return
	}
	ex := &exchange{r: r, w: w, status: http.StatusOK}
	in.cur = ex
	ctxNext, err := m.call(r.Context(), in, in.handleRq.Call)
	if err != nil {
		m.trapped(w, in, "handle_request", err)
		return
	}
	reqCtx := uint32(ctxNext >> 32)
	if ctxNext&1 == 0 {
		// The guest answered.
		m.put(in)
		m.writeGuestResponse(w, ex)
		return
	}
	r = ex.nextRequest()
	isError := uint64(0)
	if in.features&featureBufferResponse == 0 {
		// Unbuffered: the next handler answers the caller directly;
		// handle_response may look at the request only.
		if !serveNext(next, w, r) {
			isError = 1
		}
		ex.response = true
		if _, err := m.call(r.Context(), in, in.handleRs.Call, uint64(reqCtx), isError); err != nil {
			m.log.Error("wasm guest failed in handle_response after the answer was sent", "error", err)
			m.discard(in)
			return
		}
		m.put(in)
		return
	}
	rec := &recorder{h: w.Header(), status: http.StatusOK}
	if !serveNext(next, rec, r) {
		isError = 1
	}
	ex.response, ex.status, ex.respBody, ex.bodyWritten = true, rec.status, &rec.body, false
	if _, err := m.call(r.Context(), in, in.handleRs.Call, uint64(reqCtx), isError); err != nil {
		m.trapped(w, in, "handle_response", err)
		return
	}
	m.put(in)
	m.writeGuestResponse(w, ex)
}

// serveNext runs next; false if it panicked (is_error for handle_response).
func serveNext(next http.Handler, w http.ResponseWriter, r *http.Request) (ok bool) {
	defer func() {
		if rec := recover(); rec != nil {
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			ok = false
		}
	}()
	next.ServeHTTP(w, r)
	return true
}

// call calls fn under the per-call deadline.
func (m *Pool) call(ctx context.Context, in *instance, fn func(context.Context, ...uint64) ([]uint64, error), params ...uint64) (uint64, error) {
	cctx, cancel := context.WithTimeout(context.WithValue(ctx, guestKey{}, in), m.timeout)
	defer cancel()
	res, err := fn(cctx, params...)
	if err != nil {
		if cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			return 0, fmt.Errorf("the guest ran past its deadline of %s (metadata timeout)", m.timeout)
		}
		return 0, withStderr(err, &in.stderr)
	}
	if len(res) == 0 {
		return 0, nil
	}
	return res[0], nil
}

// trapped fails the request of an instance whose guest trapped, exited or
// ran out of time, and throws the instance away.
func (m *Pool) trapped(w http.ResponseWriter, in *instance, fn string, err error) {
	m.discard(in)
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeContextCanceled {
		return // the caller went away
	}
	m.fail(w, "the guest failed in "+fn+" and its instance was replaced", err)
}

// fail answers 500 (Config.Fail, or a plain answer in Dapr's error shape).
func (m *Pool) fail(w http.ResponseWriter, what string, err error) {
	m.log.Error("wasm guest failed a request: "+what, "error", err)
	if m.failFn != nil {
		m.failFn(w, what, err)
		return
	}
	Fail(w, "ERR_WASM_GUEST_FAILED", fmt.Sprintf("the wasm guest at %s: %s: %v", m.source, what, err))
}

// Fail answers 500 with Dapr's error body {"errorCode","message"}.
func Fail(w http.ResponseWriter, code, msg string) {
	body, _ := jsonError(code, msg)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write(body)
}

// writeGuestResponse sends the answer the guest made (or kept).
func (m *Pool) writeGuestResponse(w http.ResponseWriter, ex *exchange) {
	if ex.respBody != nil {
		w.Header().Del("Content-Length")
	}
	w.WriteHeader(ex.status)
	if ex.respBody != nil {
		_, _ = w.Write(ex.respBody.Bytes())
	}
}

// recorder buffers the next handler's answer for handle_response; it
// shares the caller's header map.
type recorder struct {
	h      http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}

// jsonError is Dapr's error body.
func jsonError(code, msg string) ([]byte, error) {
	return json.Marshal(map[string]string{"errorCode": code, "message": msg})
}
