package appchannel

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/tandemrun/tandem/invoke"
)

// Pipeline is the Configuration's spec.appHttpPipeline (proxy/middleware):
// middleware that see, and may change, every call to an HTTP app and its
// answer.
type Pipeline interface {
	// Wrap returns the pipeline ending in final; called once.
	Wrap(final http.Handler) http.Handler
	// Empty reports whether no middleware applies now.
	Empty() bool
}

// callKey carries a call's state through the pipeline to the handler
// that sends it, whatever the middleware did to the ResponseWriter.
type callKey struct{}

type call struct{ err error }

// send is the end of the pipeline: it sends the (possibly rewritten)
// request to the app and writes the app's answer back through the
// middleware.
func (h *HTTP) send(w http.ResponseWriter, r *http.Request) {
	r.RequestURI = "" // a middleware may have set it; a client request has none
	resp, err := h.do(r)
	if err != nil {
		if c, ok := r.Context().Value(callKey{}).(*call); ok {
			c.err = err
		}
		return
	}
	defer resp.Body.Close()
	dst := w.Header()
	for k, v := range resp.Header {
		dst[k] = v
	}
	// The middleware may change the body: its length goes with it.
	delete(dst, "Content-Length")
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// invokePiped runs hreq through the pipeline; the answer streams from the
// pipeline's goroutine through a pipe.
func (h *HTTP) invokePiped(ctx context.Context, hreq *http.Request) (*invoke.Response, error) {
	c := &call{}
	hreq = hreq.WithContext(context.WithValue(hreq.Context(), callKey{}, c))
	pr, pw := io.Pipe()
	rw := &pipeWriter{pw: pw, header: http.Header{}, ready: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			// The body is complete: a middleware that wrote nothing
			// answered 200 with no body, as net/http would.
			rw.signal()
			_ = pw.Close()
		}()
		h.piped.ServeHTTP(rw, hreq)
	}()
	select {
	case <-rw.ready:
	case <-ctx.Done():
		_ = pr.CloseWithError(ctx.Err())
		return nil, ctx.Err()
	}
	if !rw.wrote() {
		// The pipeline ended without an answer: the app call failed.
		<-done
		if c.err != nil {
			_ = pr.Close()
			return nil, callErr(h.host, c.err)
		}
	}
	status, hdr := rw.snapshot()
	resp := &http.Response{StatusCode: status, Header: hdr, Body: pr, ContentLength: -1}
	if cl := hdr.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil {
			resp.ContentLength = n
		}
	}
	return NewResponse(resp), nil
}

// pipeWriter is the ResponseWriter the pipeline writes the answer to:
// the header is handed over at the first write (or at the end), the body
// streams through the pipe.
type pipeWriter struct {
	pw     *io.PipeWriter
	header http.Header
	ready  chan struct{}

	mu     sync.Mutex
	status int
	sent   http.Header
	once   sync.Once
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(code int) {
	w.mu.Lock()
	if w.status == 0 {
		w.status = code
		w.sent = w.header.Clone()
	}
	w.mu.Unlock()
	w.signal()
}

func (w *pipeWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.pw.Write(p)
}

// Flush is a no-op: every Write goes through the pipe at once.
func (w *pipeWriter) Flush() {}

func (w *pipeWriter) signal() { w.once.Do(func() { close(w.ready) }) }

func (w *pipeWriter) wrote() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status != 0
}

func (w *pipeWriter) snapshot() (int, http.Header) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.status == 0 {
		return http.StatusOK, w.header.Clone()
	}
	return w.status, w.sent
}
