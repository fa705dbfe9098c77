package appchannel

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
)

// InProcessHost is the host of the URLs of an app inside the sidecar
// (HTTPConfig.Handler).
const InProcessHost = "in-process-app"

// inProcess is the transport to an app inside the sidecar: the request is
// handed to its handler, no socket; the answer is buffered (the app is
// run to completion, as a Wasm app is).
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context()) // a RoundTripper leaves the request as it was
	if r.Body == nil {
		r.Body = http.NoBody
	}
	r.RequestURI = r.URL.RequestURI()
	r.RemoteAddr = "127.0.0.1:0"
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	w := &bufferedAnswer{h: http.Header{}}
	t.h.ServeHTTP(w, r)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	body := w.body.Bytes()
	w.h["Content-Length"] = []string{strconv.Itoa(len(body))}
	return &http.Response{
		Status: strconv.Itoa(w.status) + " " + http.StatusText(w.status), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: r,
	}, nil
}

// bufferedAnswer is the http.ResponseWriter of an in-process app.
type bufferedAnswer struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferedAnswer) Header() http.Header { return w.h }

func (w *bufferedAnswer) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *bufferedAnswer) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}
