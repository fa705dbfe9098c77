package h1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/tandemrun/tandem/proxy/h1wire"
)

// The common case of an exchange with a local app (a request whose body is
// in memory, an answer with a Content-Length that arrived whole) is
// written and parsed here with fewer allocations and copies than
// http.Request.Write and http.ReadResponse. Anything else, or anything
// unusual, goes to those two: writeRequest and readResponse fall back to
// them before touching the connection, so the answer is always net/http's.

// maxFastHeaders bounds the header lines the fast parser takes.
const maxFastHeaders = 64

// DefaultUserAgent is what http.Request.Write sends without a User-Agent.
const DefaultUserAgent = "Go-http-client/1.1"

// writeRequest writes req to bw as http.Request.Write does (and closes its
// body), the headers in map order rather than sorted.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	path, ok := fastRequest(req)
	if !ok {
		return req.Write(bw)
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	_, _ = bw.WriteString(method)
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(path)
	if req.URL.RawQuery != "" {
		_ = bw.WriteByte('?')
		_, _ = bw.WriteString(req.URL.RawQuery)
	}
	_, _ = bw.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = bw.WriteString(requestHost(req))
	_, _ = bw.WriteString("\r\n")
	if ua, ok := req.Header["User-Agent"]; !ok {
		_, _ = bw.WriteString("User-Agent: " + DefaultUserAgent + "\r\n")
	} else if len(ua) > 0 && ua[0] != "" {
		WriteField(bw, "User-Agent", ua[0])
	}
	n := req.ContentLength
	if n > 0 || n == 0 && (method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch) {
		_, _ = bw.WriteString("Content-Length: ")
		// Formatted in the buffer's free space: no allocation.
		_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), n, 10))
		_, _ = bw.WriteString("\r\n")
	}
	for k, vv := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vv {
			WriteField(bw, k, v)
		}
	}
	_, err := bw.WriteString("\r\n")
	if req.Body == nil || req.Body == http.NoBody {
		return err
	}
	defer req.Body.Close()
	if err != nil {
		return err
	}
	// The body is exactly ContentLength bytes, as Request.Write insists.
	copied, err := io.CopyN(bw, req.Body, n)
	if err == io.EOF {
		return fmt.Errorf("http: ContentLength=%d with Body length %d", n, copied)
	}
	if err != nil {
		return err
	}
	var one [1]byte
	if m, _ := io.ReadFull(req.Body, one[:]); m > 0 {
		return fmt.Errorf("http: ContentLength=%d with Body length greater than it", n)
	}
	return nil
}

// WriteField writes one header line, the value without the spaces and tabs
// around it (as http.Header.Write does); name and value must be valid.
func WriteField(bw *bufio.Writer, k, v string) {
	_, _ = bw.WriteString(k)
	_, _ = bw.WriteString(": ")
	_, _ = bw.WriteString(h1wire.TrimOWS(v))
	_, _ = bw.WriteString("\r\n")
}

// requestHost is the Host header http.Request.Write sends.
func requestHost(req *http.Request) string {
	if req.Host != "" {
		return req.Host
	}
	return req.URL.Host
}

// fastRequest reports whether writeRequest may write req itself, and the
// path it writes: a plain request with a known length, an ASCII host, and
// header names and values that need no rewriting.
func fastRequest(req *http.Request) (path string, ok bool) {
	u := req.URL
	if u == nil || u.Opaque != "" || u.ForceQuery || req.Close || req.ContentLength < 0 ||
		len(req.TransferEncoding) > 0 || req.Trailer != nil || req.Method == http.MethodConnect {
		return "", false
	}
	if req.ContentLength == 0 && req.Body != nil && req.Body != http.NoBody {
		return "", false // Request.Write probes such a body for bytes
	}
	if req.ContentLength > 0 && (req.Body == nil || req.Body == http.NoBody) {
		return "", false
	}
	// A method is a token, as a header name is.
	if req.Method != "" && !httpguts.ValidHeaderFieldName(req.Method) {
		return "", false
	}
	host := requestHost(req)
	if host == "" || !ASCIIPrintable(host) || !httpguts.ValidHostHeader(host) || strings.IndexByte(host, '%') >= 0 {
		return "", false
	}
	path = u.EscapedPath()
	if !strings.HasPrefix(path, "/") || !ASCIIPrintable(path) || !ASCIIPrintable(u.RawQuery) || strings.IndexByte(u.RawQuery, '#') >= 0 {
		return "", false
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return "", false
		}
		for _, v := range vv {
			// No control bytes (CR and LF among them): nothing to rewrite.
			if !httpguts.ValidHeaderFieldValue(v) {
				return "", false
			}
		}
	}
	return path, true
}

// ASCIIPrintable reports whether s is printable ASCII without spaces (what a
// request target or Host can be written as without escaping).
func ASCIIPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// readResponse reads a response to a request with this method from br as
// http.ReadResponse does; req, when not nil, is the request (Send has
// none). A response whose head is already whole in br's buffer and that is
// plain (HTTP/1.1, a Content-Length body or none, no Transfer-Encoding, no
// trailers) is parsed in place; anything else is left to ReadResponse. A
// parsed answer comes with room for the client's body wrapper (spare), nil
// when ReadResponse parsed it.
func readResponse(br *bufio.Reader, req *http.Request, method string, limit int64) (resp *http.Response, spare *body, err error) {
	if br.Buffered() == 0 {
		if _, err := br.Peek(1); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, err
		}
	}
	if f, ok := parseResponse(br, method, limit); ok {
		f.resp.Request = req
		return &f.resp, &f.outer, nil
	}
	std := req
	if std == nil {
		// ReadResponse needs only the method (a HEAD answer has no body).
		std = &http.Request{Method: method}
	}
	resp, err = http.ReadResponse(br, std)
	if resp != nil {
		resp.Request = req
	}
	return resp, nil, err
}

// fastResponse is what parseResponse allocates for one answer, in one.
type fastResponse struct {
	resp  http.Response
	body  h1wire.LenBody
	outer body
}

// parseResponse parses a plain response head (to a request with this
// method) that is whole in br's buffer and at most limit bytes long (limit < 0: any), consuming it; ok is false,
// and nothing consumed, when the response is not plain or not all there.
func parseResponse(br *bufio.Reader, method string, limit int64) (*fastResponse, bool) {
	if method == http.MethodHead {
		return nil, false
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 || limit >= 0 && int64(end+4) > limit {
		return nil, false
	}
	head := buf[:end+2] // every line with its CRLF
	// Status line: "HTTP/1.1 200 OK".
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || len(line) > 12 && line[12] != ' ' {
		return nil, false
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return nil, false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil, false
	}
	if h1wire.HasCTL(line) {
		return nil, false
	}
	// Count the header lines first: the values share one slice.
	lines := bytes.Count(rest, []byte("\r\n"))
	if lines > maxFastHeaders {
		return nil, false
	}
	// One string holds the head; names and values are its substrings.
	s := string(head)
	status := s[9:len(line)]
	pos := len(line) + 2
	hdr := h1wire.NewHeader(lines)
	length := int64(-1)
	closing := false
	for pos < len(s) {
		name, v, next, ok := h1wire.NextField(s, pos)
		if !ok {
			return nil, false
		}
		pos = next
		switch name {
		case "Transfer-Encoding", "Trailer", "Pragma":
			return nil, false
		case "Content-Length":
			if length >= 0 {
				return nil, false
			}
			n, err := strconv.ParseUint(v, 10, 63)
			if err != nil {
				return nil, false
			}
			length = int64(n)
		case "Connection":
			switch {
			case strings.EqualFold(v, "close"):
				// ReadResponse takes a "close" out of the header.
				closing = true
				continue
			case strings.EqualFold(v, "keep-alive"):
			default:
				return nil, false
			}
		}
		hdr.Add(name, v)
	}
	if length < 0 {
		return nil, false // a body up to the close: ReadResponse's case
	}
	if closing && len(hdr.H["Connection"]) > 0 {
		return nil, false // "close" beside "keep-alive": ReadResponse's case
	}
	_, _ = br.Discard(end + 4)
	f := &fastResponse{}
	r := &f.resp
	r.Status = status
	r.StatusCode = code
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.Header = hdr.H
	r.ContentLength = length
	r.Close = closing
	if length == 0 {
		r.Body = http.NoBody
	} else {
		f.body = h1wire.LenBody{R: br, N: length}
		r.Body = &f.body
	}
	return f, true
}
