package invoke

import (
	"bytes"
	"context"
	"fmt"
	"io"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
)

// Metadata keys the callee's sidecar sets from the caller's certificate. Any
// values a client sent under these names are replaced, never trusted.
const (
	CallerAppIDKey     = "dapr-caller-app-id"
	CallerNamespaceKey = "dapr-caller-namespace"
	CalleeAppIDKey     = "dapr-callee-app-id"
)

// Request is one invocation of a method of an app.
//
// Message carries the method, HTTP verb and query (Message.Message.HttpExtension),
// content type and metadata (lower-cased header names). Its
// Message.Message.Data is left nil: the body is in Body.
type Request struct {
	Message *internalsv1.InternalInvokeRequest
	// Body is the request payload; nil means empty. It is read once.
	Body io.Reader
	// ContentLength is the size of Body, or -1 when unknown (streamed).
	ContentLength int64
	// StreamResponse says the caller relays the answer as it arrives (the
	// HTTP API): a peer sidecar is then called with CallLocalStream
	// whatever the body size, as daprd does, because a unary CallLocal
	// answers only once the app has finished, in one message of bounded
	// size (no chunked or server-sent events, nothing over the limit).
	StreamResponse bool

	// Routing, when set, is room for the metadata entries Client.Invoke
	// adds, allocated by the caller with the request; nil: Invoke
	// allocates it.
	Routing *RoutingRoom

	// mem holds a small body read into memory by holdSmall.
	mem MemBody
}

// MemBody is a request body held whole in memory. The invoker sends its
// bytes as they are (a unary CallLocal) instead of copying them first.
type MemBody struct {
	bytes.Reader
	b []byte
}

// NewMemBody returns a body reading b, which must not change while in use:
// an attempt abandoned by a timeout may still send it after Invoke
// returned, so b is never pooled memory.
func NewMemBody(b []byte) *MemBody {
	m := new(MemBody)
	m.set(b)
	return m
}

// set makes m read b from its start (NewMemBody for a MemBody that is part
// of a larger allocation).
func (m *MemBody) set(b []byte) {
	m.b = b
	m.Reset(b)
}

// Close does nothing: the bytes are the caller's. It lets the body go out
// as an io.ReadCloser (an HTTP request's) without a wrapper.
func (m *MemBody) Close() error { return nil }

// unread returns the whole content when nothing has been read yet.
func (m *MemBody) unread() ([]byte, bool) {
	return m.b, m.Len() == len(m.b)
}

// Bytes returns the whole body of a request of known length: a MemBody's
// own bytes when nothing has been read from it and it has the announced
// length (no copy), else ContentLength bytes read from Body. It is nil
// without a body or a known, non-zero length.
func (r *Request) Bytes() ([]byte, error) {
	if r.Body == nil || r.ContentLength <= 0 {
		return nil, nil
	}
	if mb, ok := r.Body.(*MemBody); ok {
		if b, whole := mb.unread(); whole && int64(len(b)) == r.ContentLength {
			return b, nil
		}
	}
	data := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, data); err != nil {
		return nil, fmt.Errorf("read request body (%d bytes announced): %w", r.ContentLength, err)
	}
	return data, nil
}

// holdSmall reads a small body of known size into memory (a MemBody), as
// CallLocal has it, so that the call can be sent again after a transport
// failure.
func (r *Request) holdSmall() error {
	if _, mem := r.Body.(*MemBody); mem || r.ContentLength > UnaryLimit {
		return nil
	}
	data, err := r.Bytes()
	if err != nil || data == nil {
		return err
	}
	r.mem.set(data)
	r.Body = &r.mem
	return nil
}

// Response is the answer of the callee's app.
//
// Message.Status.Code is an HTTP status (>= 100) when the app speaks HTTP
// and a gRPC code (< 100) when it speaks gRPC, as in Dapr. Message.Headers
// holds the app's response headers (or gRPC header metadata), Trailers its
// gRPC trailers.
type Response struct {
	Message *internalsv1.InternalInvokeResponse
	// Body is the response payload. It is never nil and must be closed.
	Body io.ReadCloser
	// ContentLength is the size of Body when the app said it, 0 or -1
	// when unknown.
	ContentLength int64
}

// IsHTTP reports whether the status code is an HTTP status rather than a
// gRPC code (gRPC codes are 0-16, HTTP statuses start at 100).
func (r *Response) IsHTTP() bool {
	return r.Message.GetStatus().GetCode() >= 100
}

// AppChannel delivers a request to the app next to this sidecar.
type AppChannel interface {
	Invoke(ctx context.Context, req *Request) (*Response, error)
}
