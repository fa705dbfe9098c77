package h1server

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"strconv"

	"golang.org/x/net/http/httpguts"

	"github.com/tandemrun/tandem/proxy/h1wire"
)

// The common request (HTTP/1.1, a known method, a plain path, one Host,
// no body or a Content-Length one, its header received whole) is parsed
// here in one pass with a handful of allocations: the header's bytes are
// one string whose substrings are the names and values, the request, its
// URL and its body reader are one allocation. Anything else, or anything
// unusual, goes to http.ReadRequest and the server's checks: parseFast
// takes a request only when they would give the same result, and touches
// nothing otherwise. FuzzParseFastAsReadRequest holds it to that.

// fastRequest is what parseFast allocates for a request.
type fastRequest struct {
	req  http.Request
	url  url.URL
	body h1wire.LenBody
}

// maxFastLines bounds the header lines parseFast takes.
const maxFastLines = 64

// parseFast parses the request whose whole header is header (from
// bufferedHeader) as http.ReadRequest followed by check would, and
// consumes the header from br; ok is false, with br untouched, for a
// request it leaves to them.
func parseFast(br *bufio.Reader, header []byte) (*http.Request, bool) {
	if !bytes.HasSuffix(header, []byte("\r\n\r\n")) {
		return nil, false
	}
	eol := bytes.Index(header, []byte("\r\n"))
	line := header[:eol]
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return nil, false
	}
	method := knownMethod(line[:sp])
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if method == "" || sp < 0 || string(rest[sp+1:]) != "HTTP/1.1" {
		return nil, false
	}
	uri := rest[:sp]
	q := plainRequestURI(uri)
	if q < 0 {
		return nil, false
	}
	fields := header[eol+2 : len(header)-2]
	lines := bytes.Count(fields, []byte("\r\n"))
	if lines > maxFastLines {
		return nil, false
	}

	// One string holds the header; names and values are its substrings.
	s := string(header)
	pos := eol + 2
	f := &fastRequest{}
	r := &f.req
	r.Method = method
	r.RequestURI = s[len(method)+1 : len(method)+1+len(uri)]
	if q < len(uri) {
		f.url.Path = r.RequestURI[:q]
		f.url.RawQuery = r.RequestURI[q+1:]
	} else {
		f.url.Path = r.RequestURI
	}
	hdr := h1wire.NewHeader(lines)
	hosts := 0
	length := int64(0)
	sawLength := false
	for end := len(s) - 2; pos < end; {
		name, v, next, ok := h1wire.NextField(s, pos)
		if !ok {
			return nil, false
		}
		pos = next
		switch name {
		case "Host":
			hosts++
			r.Host = v
			continue // the server's checks take it out of the header
		case "Transfer-Encoding", "Trailer", "Pragma":
			return nil, false
		case "Content-Length":
			n, err := strconv.ParseUint(v, 10, 63)
			if sawLength || err != nil {
				return nil, false
			}
			sawLength, length = true, int64(n)
		}
		hdr.Add(name, v)
	}
	if hosts != 1 || !httpguts.ValidHostHeader(r.Host) {
		return nil, false
	}
	_, _ = br.Discard(len(header))
	r.URL = &f.url
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.Header = hdr.H
	r.Close = httpguts.HeaderValuesContainsToken(hdr.H["Connection"], "close")
	r.ContentLength = length
	if length == 0 {
		r.Body = http.NoBody
	} else {
		f.body = h1wire.LenBody{R: br, N: length}
		r.Body = &f.body
	}
	return r, true
}

// knownMethod returns the method's name, or "" for one parseFast leaves to
// http.ReadRequest.
func knownMethod(m []byte) string {
	switch string(m) {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodPost:
		return http.MethodPost
	case http.MethodPut:
		return http.MethodPut
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodPatch:
		return http.MethodPatch
	case http.MethodHead:
		return http.MethodHead
	case http.MethodOptions:
		return http.MethodOptions
	}
	return ""
}

// plainRequestURI reports where a request target's query starts (its
// length when it has none): the target is a path that url.ParseRequestURI
// keeps as it is (no escapes, nothing it would escape again), then
// optionally "?" and a non-empty query of visible ASCII. It is -1 for any
// other target.
func plainRequestURI(uri []byte) int {
	if len(uri) == 0 || uri[0] != '/' {
		return -1
	}
	q := bytes.IndexByte(uri, '?')
	path := uri
	if q >= 0 {
		path = uri[:q]
		query := uri[q+1:]
		if len(query) == 0 {
			return -1
		}
		for _, c := range query {
			if c <= ' ' || c >= 0x7f || c == '#' {
				return -1
			}
		}
	} else {
		q = len(uri)
	}
	for _, c := range path {
		if !pathByte(c) {
			return -1
		}
	}
	return q
}

// pathByte reports whether c stands for itself in a path: url.URL keeps
// it unescaped both ways (unreserved characters and the reserved ones a
// path needs no escape for).
func pathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', '~', '$', '&', '+', ',', '/', ':', ';', '=', '@':
		return true
	}
	return false
}
