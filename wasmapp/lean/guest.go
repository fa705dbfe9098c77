//go:build wasip1

package lean

import (
	"unsafe"

	"github.com/tandemrun/tandem/internal/leanwire"
)

//go:wasmimport tandem lean_dapr_call
func leanDaprCall(req unsafe.Pointer, reqLen uint32, buf unsafe.Pointer, limit uint32) uint32

// The buffers, kept from one request to the next: in is where the sidecar
// writes a request (lean_buffer), out the encoded answer, call a Dapr
// request and answer a Dapr answer.
var (
	in, out, call []byte
	answer        = make([]byte, 16<<10)
	wireReq       leanwire.Request
	wireResp      leanwire.Response
	req           Request
	resp          Response
	daprResp      Response
)

// Main does nothing in a Wasm app: the module is a reactor whose exports
// the sidecar calls; main never runs.
func Main() {}

//lint:ignore U1000 the host calls it (go:wasmexport)
//go:wasmexport lean_buffer
func leanBuffer(n uint32) unsafe.Pointer {
	if uint32(cap(in)) < n || cap(in) == 0 {
		in = make([]byte, max(n, 4<<10))
	}
	return unsafe.Pointer(unsafe.SliceData(in[:cap(in)]))
}

//lint:ignore U1000 the host calls it (go:wasmexport)
//go:wasmexport lean_handle
func leanHandle(n uint32) uint64 {
	resp.reset()
	if err := leanwire.DecodeRequest(in[:n], &wireReq); err != nil {
		resp.Status = 400
		resp.Body = append(resp.Body, "lean: the request is malformed"...)
	} else {
		req.Method, req.URI, req.Body = str(wireReq.Method), str(wireReq.URI), wireReq.Body
		req.Header = fields(req.Header[:0], wireReq.Header)
		handler(&resp, &req)
	}
	out = encode(out[:0], &resp)
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(out))))<<32 | uint64(len(out))
}

// reset empties w for the next request, keeping its arrays.
func (w *Response) reset() {
	w.Status = 0
	w.Header = w.Header[:0]
	w.Body = w.Body[:0]
}

func encode(dst []byte, w *Response) []byte {
	status := w.Status
	if status == 0 {
		status = 200
	}
	dst = leanwire.AppendResponseHead(dst, uint32(status), len(w.Header))
	for _, h := range w.Header {
		dst = leanwire.AppendField(dst, h.Name, h.Value)
	}
	return leanwire.AppendBytes(dst, w.Body)
}

// str views b as a string, without a copy: valid while b is not reused.
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func fields(dst Headers, f []leanwire.Field) Headers {
	for _, x := range f {
		dst = append(dst, Header{Name: str(x.Name), Value: str(x.Value)})
	}
	return dst
}

// Dapr calls the Dapr API of the sidecar hosting the app: method, path
// ("/v1.0/state/statestore"), body and header lines. The call runs in the
// sidecar in process, under the deadline of the request being handled.
// The answer is valid until the next call of Dapr; an error means the
// sidecar's answer could not be read.
func Dapr(method, path string, body []byte, header ...Header) (*Response, error) {
	call = leanwire.AppendRequestHead(call[:0], method, path, len(header))
	for _, h := range header {
		call = leanwire.AppendField(call, h.Name, h.Value)
	}
	call = leanwire.AppendBytes(call, body)
	n := leanDaprCall(unsafe.Pointer(unsafe.SliceData(call)), uint32(len(call)), unsafe.Pointer(unsafe.SliceData(answer)), uint32(len(answer)))
	if int(n) > len(answer) {
		// Too big for answer: the host kept it; fetch it into a buffer that fits.
		answer = make([]byte, n)
		leanDaprCall(nil, 0, unsafe.Pointer(unsafe.SliceData(answer)), n)
	}
	if err := leanwire.DecodeResponse(answer[:n], &wireResp); err != nil {
		return nil, err
	}
	daprResp.Status, daprResp.Body = int(wireResp.Status), wireResp.Body
	daprResp.Header = fields(daprResp.Header[:0], wireResp.Header)
	return &daprResp, nil
}
