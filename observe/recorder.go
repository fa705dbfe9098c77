package observe

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// statusRecorder captures the status and body size a handler wrote. One
// recorder is shared by every observe middleware on a request: an inner
// middleware that finds one reuses it.
type statusRecorder struct {
	w       http.ResponseWriter
	status  int
	written int64
	// errCode and errCategory are the API error the handler wrote, if
	// any (apierr.WriteHTTP reports it through RecordErrorCode).
	errCode, errCategory string
}

var recorderPool = sync.Pool{New: func() any { return new(statusRecorder) }}

// recorderFor returns the recorder wrapping w, and whether the caller
// created it (and must release it after the handler returned).
func recorderFor(w http.ResponseWriter) (*statusRecorder, bool) {
	if r, ok := w.(*statusRecorder); ok {
		return r, false
	}
	r := recorderPool.Get().(*statusRecorder)
	r.w, r.status, r.written = w, 0, 0
	r.errCode, r.errCategory = "", ""
	return r, true
}

func (r *statusRecorder) release() {
	r.w = nil
	recorderPool.Put(r)
}

// RecordErrorCode implements apierr.ErrorRecorder: it keeps the error
// written for the metrics middleware to count when the handler returns.
func (r *statusRecorder) RecordErrorCode(code, category string) {
	r.errCode, r.errCategory = code, category
}

// Status is the status written, 200 if the handler wrote none.
func (r *statusRecorder) Status() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

func (r *statusRecorder) Header() http.Header { return r.w.Header() }

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.w.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.w.Write(b)
	r.written += int64(n)
	return n, err
}

// Flush supports streaming responses through the wrapper.
func (r *statusRecorder) Flush() {
	if f, ok := r.w.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack is passed through for handlers that take over the connection.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.w).Hijack()
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.w }
