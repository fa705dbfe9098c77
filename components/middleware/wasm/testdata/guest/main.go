//go:build wasip1

// Command guest is the http-wasm guest of the wasm middleware's tests,
// built at test time with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared.
// guestConfig picks what it does:
//
//	rewrite  replaces "old" with "new" in the URI and adds X-Wasm: rewritten
//	deny     answers 403 "denied by wasm" unless header x-allow is set (or
//	         the path is a health check)
//	trap     panics when the URI holds "trap", loops forever when it holds
//	         "loop", and otherwise passes the request on
//	header   reads header x-probe and passes the request on (benchmarks)
//	upper    buffers the answer and upper-cases its body in handle_response
package main

import "unsafe"

//go:wasmimport http_handler get_config
func getConfig(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler enable_features
func enableFeatures(features uint32) uint32

//go:wasmimport http_handler get_uri
func getURI(buf unsafe.Pointer, limit uint32) uint32

//go:wasmimport http_handler set_uri
func setURI(uri unsafe.Pointer, n uint32)

//go:wasmimport http_handler add_header_value
func addHeaderValue(kind uint32, name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32)

//go:wasmimport http_handler get_header_values
func getHeaderValues(kind uint32, name unsafe.Pointer, nameLen uint32, buf unsafe.Pointer, limit uint32) uint64

//go:wasmimport http_handler set_status_code
func setStatusCode(code uint32)

//go:wasmimport http_handler write_body
func writeBody(kind uint32, body unsafe.Pointer, n uint32)

//go:wasmimport http_handler read_body
func readBody(kind uint32, buf unsafe.Pointer, limit uint32) uint64

const (
	request  = 0
	response = 1
)

var (
	mode string
	buf  [4096]byte
)

func init() {
	n := getConfig(unsafe.Pointer(&buf[0]), uint32(len(buf)))
	mode = string(buf[:n])
	if mode == "upper" {
		enableFeatures(2) // buffer the response
	}
}

func main() {}

func ptr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

func uri() string {
	n := getURI(unsafe.Pointer(&buf[0]), uint32(len(buf)))
	return string(buf[:n])
}

func header(name string) (string, bool) {
	r := getHeaderValues(request, ptr(name), uint32(len(name)), unsafe.Pointer(&buf[0]), uint32(len(buf)))
	count, n := uint32(r>>32), uint32(r)
	if count == 0 {
		return "", false
	}
	v := string(buf[:n])
	for i := 0; i < len(v); i++ {
		if v[i] == 0 {
			return v[:i], true
		}
	}
	return v, true
}

func contains(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

var spin int

//go:wasmexport handle_request
func handleRequest() uint64 {
	const next = 1
	switch mode {
	case "rewrite":
		u := uri()
		if i := contains(u, "old"); i >= 0 {
			u = u[:i] + "new" + u[i+3:]
			setURI(ptr(u), uint32(len(u)))
		}
		addHeaderValue(request, ptr("X-Wasm"), 6, ptr("rewritten"), 9)
		return next
	case "deny":
		if _, ok := header("x-allow"); ok || contains(uri(), "/v1.0/healthz") == 0 {
			return next
		}
		setStatusCode(403)
		msg := "denied by wasm"
		writeBody(response, ptr(msg), uint32(len(msg)))
		return 0
	case "trap":
		u := uri()
		if contains(u, "trap") >= 0 {
			panic("guest asked to trap")
		}
		if contains(u, "loop") >= 0 {
			for {
				spin++
			}
		}
		return next
	case "header":
		header("x-probe")
		return next
	case "upper":
		return next
	}
	return next
}

//go:wasmexport handle_response
func handleResponse(reqCtx uint32, isError uint32) {
	if mode != "upper" || isError != 0 {
		return
	}
	var body []byte
	for {
		r := readBody(response, unsafe.Pointer(&buf[0]), uint32(len(buf)))
		body = append(body, buf[:uint32(r)]...)
		if r>>32 == 1 {
			break
		}
	}
	for i, c := range body {
		if 'a' <= c && c <= 'z' {
			body[i] = c - 32
		}
	}
	if len(body) > 0 {
		writeBody(response, unsafe.Pointer(&body[0]), uint32(len(body)))
	}
	addHeaderValue(response, ptr("X-Wasm"), 6, ptr("upper"), 5)
}
