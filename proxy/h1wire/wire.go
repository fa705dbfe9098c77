// Package h1wire holds the HTTP/1.1 field rules of net/http's parsers that
// Tandem's hand-written fast paths share: the app channel's response parser
// (proxy/appchannel/h1) and the API server's request parser
// (proxy/h1server). Each of them takes only what these rules accept and
// leaves anything else to net/http, so the result is always net/http's.
package h1wire

import (
	"bufio"
	"io"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// HasCTL reports whether s holds a control byte other than a tab (what
// net/http refuses in a field value).
func HasCTL[S ~string | ~[]byte](s S) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// TrimOWS trims the optional white space (spaces and tabs) around a field
// value.
func TrimOWS(v string) string { return strings.Trim(v, " \t") }

// CanonicalName returns the canonical form of a header name as net/http's
// parser gives it, without allocating when it already is; ok is false for
// a name that is not a token.
func CanonicalName(k string) (string, bool) {
	upper := true
	canonical := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !httpguts.IsTokenRune(rune(c)) {
			return "", false
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
		}
		upper = c == '-'
	}
	if canonical {
		return k, true
	}
	return http.CanonicalHeaderKey(k), true
}

// LenBody reads a Content-Length body from R as net/http's body does: the
// last bytes come with io.EOF, a connection that ends early is
// io.ErrUnexpectedEOF, and every Read after either is io.EOF.
type LenBody struct {
	R *bufio.Reader
	N int64 // bytes left

	sawEOF bool
}

// Read reads the body.
func (b *LenBody) Read(p []byte) (int, error) {
	if b.sawEOF || b.N <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.N {
		p = p[:b.N]
	}
	n, err := b.R.Read(p)
	b.N -= int64(n)
	switch {
	case err == io.EOF && b.N > 0:
		err = io.ErrUnexpectedEOF
		b.sawEOF = true
	case err == io.EOF:
		b.sawEOF = true
	case err == nil && b.N == 0:
		err = io.EOF
		b.sawEOF = true
	}
	return n, err
}

// Close does nothing: what is left of the body is its reader's to handle.
func (b *LenBody) Close() error { return nil }

// NextField reads the field line of s that starts at pos and ends with
// CRLF: its canonical name, its value without the white space around it,
// and where the next line starts. ok is false for a line the fast parsers
// leave to net/http: no CRLF, no colon or an empty name, a name that is
// not a token, a control byte in the value.
func NextField(s string, pos int) (name, value string, next int, ok bool) {
	e := strings.Index(s[pos:], "\r\n")
	if e < 0 {
		return "", "", 0, false
	}
	kv := s[pos : pos+e]
	colon := strings.IndexByte(kv, ':')
	if colon <= 0 {
		return "", "", 0, false
	}
	name, ok = CanonicalName(kv[:colon])
	if !ok {
		return "", "", 0, false
	}
	value = TrimOWS(kv[colon+1:])
	if HasCTL(value) {
		return "", "", 0, false
	}
	return name, value, pos + e + 2, true
}

// Header builds an http.Header for a known number of field lines, the
// first value of every name in one shared slice (two allocations for a
// header of up to eight names).
type Header struct {
	H    http.Header
	vals []string
}

// NewHeader returns a Header for up to lines field lines.
func NewHeader(lines int) Header {
	return Header{H: make(http.Header, lines), vals: make([]string, lines)}
}

// Add adds a value under a canonical name, after the ones it has.
func (h *Header) Add(name, v string) {
	if vv, ok := h.H[name]; ok {
		h.H[name] = append(vv, v)
		return
	}
	if len(h.vals) == 0 {
		h.H[name] = []string{v}
		return
	}
	h.vals[0] = v
	h.H[name] = h.vals[:1:1]
	h.vals = h.vals[1:]
}
