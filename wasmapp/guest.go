//go:build wasip1

package wasmapp

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unsafe"
)

//go:wasmimport http_handler get_method
func getMethod(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler get_uri
func getURI(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler get_header_names
func getHeaderNames(kind uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport http_handler get_header_values
func getHeaderValues(kind uint32, name unsafe.Pointer, nameLen uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport http_handler add_header_value
func addHeaderValue(kind uint32, name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32)

//go:wasmimport http_handler read_body
func readBody(kind uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport http_handler write_body
func writeBody(kind uint32, body unsafe.Pointer, n uint32)

//go:wasmimport http_handler set_status_code
func setStatusCode(code uint32)

//go:wasmimport tandem dapr_call
func daprCall(req unsafe.Pointer, reqLen uint32, buf unsafe.Pointer, limit uint32) uint32

const (
	kindRequest  = 0
	kindResponse = 1
)

var buf = make([]byte, 16<<10)

// Main does nothing in a Wasm app: the module is a reactor whose exports
// the sidecar calls; main never runs.
func Main() {}

// Dapr is the client of the Dapr API of the sidecar hosting the app (see
// API). Its requests run in the sidecar in process, under the deadline of
// the request being handled.
var Dapr = &http.Client{Transport: Transport{}}

// Transport sends requests to the sidecar's Dapr API through the host
// function tandem.dapr_call.
type Transport struct{}

// RoundTrip implements http.RoundTripper.
func (Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	wire, err := EncodeRequest(r)
	if err != nil {
		return nil, err
	}
	n := daprCall(unsafe.Pointer(unsafe.SliceData(wire)), uint32(len(wire)), unsafe.Pointer(&buf[0]), uint32(len(buf)))
	out := buf[:min(int(n), len(buf))]
	if int(n) > len(buf) {
		// Too big for buf: the host kept it; fetch it into a buffer that fits.
		big := make([]byte, n)
		daprCall(nil, 0, unsafe.Pointer(&big[0]), n)
		out = big
	}
	return http.ReadResponse(bufio.NewReader(bytes.NewReader(bytes.Clone(out))), r)
}

// fetch calls get (one of the ABI's "write if it fits" functions) with buf,
// growing it when the value is longer.
func fetch(get func(p unsafe.Pointer, limit uint32) uint32) []byte {
	n := get(unsafe.Pointer(&buf[0]), uint32(len(buf)))
	if int(n) > len(buf) {
		buf = make([]byte, n)
		n = get(unsafe.Pointer(&buf[0]), uint32(len(buf)))
	}
	return buf[:n]
}

func ptr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

// request reads the request being handled from the host.
func request() (*http.Request, error) {
	method := string(fetch(getMethod))
	uri := string(fetch(getURI))
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	names := string(fetch(func(p unsafe.Pointer, limit uint32) uint32 {
		return uint32(getHeaderNames(kindRequest, p, limit))
	}))
	for name := range strings.SplitSeq(strings.TrimSuffix(names, "\x00"), "\x00") {
		if name == "" {
			continue
		}
		vals := string(fetch(func(p unsafe.Pointer, limit uint32) uint32 {
			return uint32(getHeaderValues(kindRequest, ptr(name), uint32(len(name)), p, limit))
		}))
		for v := range strings.SplitSeq(strings.TrimSuffix(vals, "\x00"), "\x00") {
			h.Add(name, v)
		}
	}
	var body []byte
	for {
		r := readBody(kindRequest, unsafe.Pointer(&buf[0]), uint32(len(buf)))
		body = append(body, buf[:uint32(r)]...)
		if r>>32 != 0 {
			break
		}
	}
	r := &http.Request{
		Method: method, URL: u, RequestURI: uri, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
		Host: h.Get("Host"),
	}
	if len(body) == 0 {
		r.Body = http.NoBody
	}
	return r, nil
}

//go:wasmexport handle_request
func handleRequest() uint64 {
	w := &writer{h: http.Header{}}
	r, err := request()
	if err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
	} else {
		current().ServeHTTP(w, r)
	}
	w.send()
	return 0 // answered: there is no next handler
}

//go:wasmexport handle_response
func handleResponse(uint32, uint32) {}

// writer buffers the handler's answer.
type writer struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (w *writer) Header() http.Header { return w.h }

func (w *writer) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *writer) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

func (w *writer) send() {
	w.WriteHeader(http.StatusOK)
	if w.h.Get("Content-Type") == "" && w.body.Len() > 0 {
		w.h.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
	for k, vs := range w.h {
		for _, v := range vs {
			addHeaderValue(kindResponse, ptr(k), uint32(len(k)), ptr(v), uint32(len(v)))
		}
	}
	setStatusCode(uint32(w.status))
	if b := w.body.Bytes(); len(b) > 0 {
		writeBody(kindResponse, unsafe.Pointer(&b[0]), uint32(len(b)))
	}
}
