// Package leanwire is the memory layout of the lean Wasm app ABI: how a
// request and a response lie in a Wasm app's linear memory when the sidecar
// calls the app (export lean_handle) and when the app calls the Dapr API
// (host function tandem.lean_dapr_call). Both sides use it: the sidecar
// (proxy/wasmhost, internal/httpwasm) and the guest package wasmapp/lean,
// which is compiled into every lean app's module; so it imports nothing but
// errors, and decoding allocates nothing once the header slice has grown.
//
// Every integer is a little-endian uint32; a string is its length and its
// bytes:
//
//	request  = method uri count field* body
//	response = status count field* body
//	field    = name value
//
// method, uri (path and query, "/orders/1?x=y"), name, value and body are
// strings; count is the number of fields (header lines; a header with two
// values is two fields). A message is exactly its parts: trailing bytes are
// an error.
package leanwire

import "errors"

// Field is one header line.
type Field struct{ Name, Value []byte }

// Request is a decoded request; its slices point into the decoded bytes.
type Request struct {
	Method, URI []byte
	Header      []Field
	Body        []byte
}

// Response is a decoded response; its slices point into the decoded bytes.
type Response struct {
	Status uint32
	Header []Field
	Body   []byte
}

// ErrMalformed is the error of every decoding failure.
var ErrMalformed = errors.New("leanwire: malformed message")

// AppendUint32 appends v little-endian.
func AppendUint32(dst []byte, v uint32) []byte {
	return append(dst, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}

// AppendString appends s as a string of the layout.
func AppendString(dst []byte, s string) []byte {
	return append(AppendUint32(dst, uint32(len(s))), s...)
}

// AppendBytes appends b as a string of the layout.
func AppendBytes(dst, b []byte) []byte {
	return append(AppendUint32(dst, uint32(len(b))), b...)
}

// AppendRequestHead appends a request's method, uri and field count; the
// count fields (AppendField) and the body (AppendBytes) follow.
func AppendRequestHead(dst []byte, method, uri string, count int) []byte {
	return AppendUint32(AppendString(AppendString(dst, method), uri), uint32(count))
}

// AppendResponseHead appends a response's status and field count; the
// count fields (AppendField) and the body (AppendBytes) follow.
func AppendResponseHead(dst []byte, status uint32, count int) []byte {
	return AppendUint32(AppendUint32(dst, status), uint32(count))
}

// AppendField appends one header line.
func AppendField(dst []byte, name, value string) []byte {
	return AppendString(AppendString(dst, name), value)
}

// DecodeRequest decodes b into r, reusing r.Header's array.
func DecodeRequest(b []byte, r *Request) error {
	d := decoder{b: b}
	r.Method = d.str()
	r.URI = d.str()
	r.Header = d.fields(r.Header[:0])
	r.Body = d.str()
	return d.end()
}

// DecodeResponse decodes b into r, reusing r.Header's array.
func DecodeResponse(b []byte, r *Response) error {
	d := decoder{b: b}
	r.Status = d.u32()
	r.Header = d.fields(r.Header[:0])
	r.Body = d.str()
	return d.end()
}

// decoder reads the layout; after the first error every read returns
// zero values and bad stays set.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) u32() uint32 {
	if d.bad || len(d.b) < 4 {
		d.bad = true
		return 0
	}
	v := uint32(d.b[0]) | uint32(d.b[1])<<8 | uint32(d.b[2])<<16 | uint32(d.b[3])<<24
	d.b = d.b[4:]
	return v
}

func (d *decoder) str() []byte {
	n := d.u32()
	if d.bad || uint64(n) > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) fields(dst []Field) []Field {
	n := d.u32()
	// Each field takes at least 8 bytes: a count beyond that is a lie,
	// and would otherwise make us allocate for it.
	if d.bad || uint64(n) > uint64(len(d.b))/8 {
		d.bad = true
		return dst
	}
	for range n {
		name := d.str()
		value := d.str()
		if d.bad {
			return dst
		}
		dst = append(dst, Field{Name: name, Value: value})
	}
	return dst
}

func (d *decoder) end() error {
	if d.bad || len(d.b) != 0 {
		return ErrMalformed
	}
	return nil
}
