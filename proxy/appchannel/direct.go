package appchannel

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	"golang.org/x/net/http/httpguts"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/appchannel/h1"
	"github.com/tandemrun/tandem/proxy/headers"
)

// The common invocation of a plaintext app (no middleware, a body that is
// in memory and small, metadata that needs no rewriting) is written to the
// wire straight from the invocation's metadata, with no http.Request and
// no http.Header built for it: directRequest writes what NewRequest and
// Invoke's header rules would have h1 write for the same call, and
// anything else takes that road (TestDirectWritesWhatNewRequestWould).

// directRequest is one call written as it is sent (an h1.WireRequest).
type directRequest struct {
	method string
	path   string // cleaned and plain (plainPath): written as it is
	query  string
	host   string
	md     headers.Metadata
	ctype  string // the message's content type
	token  string // APP_API_TOKEN, which replaces a dapr-api-token entry
	// trace is the Traceparent written when the metadata has none with a
	// value (from grpc-trace-bin, or the empty span context); "" when the
	// metadata's traceparent goes out.
	trace string
	body  memReader // nil without a body
	n     int64     // the body's length
}

var directPool = sync.Pool{New: func() any { return new(directRequest) }}

// newDirect returns req as a directRequest when it can be written
// directly, or nil. The caller puts it back with releaseDirect.
func (h *HTTP) newDirect(req *invoke.Request) *directRequest {
	msg := req.Message.GetMessage()
	ext := msg.GetHttpExtension()
	if ext == nil {
		return nil
	}
	verb := ext.GetVerb()
	if verb == commonv1.HTTPExtension_NONE || verb == commonv1.HTTPExtension_CONNECT {
		return nil
	}
	query := ext.GetQuerystring()
	if !h1.ASCIIPrintable(query) || strings.IndexByte(query, '#') >= 0 {
		return nil
	}
	ctype := msg.GetContentType()
	if !httpguts.ValidHeaderFieldValue(ctype) {
		return nil
	}
	var body memReader
	var n int64
	if req.Body != nil && req.ContentLength != 0 {
		br, ok := req.Body.(memReader)
		if !ok || req.ContentLength < 0 || req.ContentLength > leanMax || br.Size() != req.ContentLength || int64(br.Len()) != br.Size() {
			return nil
		}
		body, n = br, req.ContentLength
	}
	md := req.Message.GetMetadata()
	for k, lv := range md {
		vals := lv.GetValues()
		if len(vals) == 0 {
			continue
		}
		if k == "connection" || hasUpper(k) {
			return nil // Connection's nominations, spellings to merge: NewRequest's case
		}
		if _, ok := headers.HTTPName(k); !ok {
			continue
		}
		for _, v := range vals {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil
			}
		}
	}
	clean := path.Clean("/" + msg.GetMethod())
	if !plainPath(clean) {
		return nil
	}
	d := directPool.Get().(*directRequest)
	*d = directRequest{method: verb.String(), path: clean, query: query, host: h.host, md: md, ctype: ctype,
		token: h.apiToken, body: body, n: n}
	if headers.First(md, "traceparent") == "" {
		d.trace = emptyTraceparent
		if bin, ok := headers.DecodeBin(headers.First(md, "grpc-trace-bin")); ok {
			if tp, ok := invoke.TraceParentFromBin(bin); ok {
				d.trace = tp
			}
		}
	}
	return d
}

func releaseDirect(d *directRequest) {
	*d = directRequest{}
	directPool.Put(d)
}

// hasUpper reports whether s holds an upper-case ASCII letter.
func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

func (d *directRequest) Method() string { return d.method }

// WriteRequest writes the request as h1 writes NewRequest's (see
// h1.writeRequest): the request line, Host, User-Agent (Go's when the
// metadata has none), Content-Length, the content type, the API token,
// the trace context and the metadata as ToHTTP turns it into headers.
func (d *directRequest) WriteRequest(bw *bufio.Writer) error {
	_, _ = bw.WriteString(d.method)
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(d.path)
	if d.query != "" {
		_ = bw.WriteByte('?')
		_, _ = bw.WriteString(d.query)
	}
	_, _ = bw.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = bw.WriteString(d.host)
	_, _ = bw.WriteString("\r\n")
	if lv := d.md["user-agent"]; lv == nil || len(lv.Values) == 0 {
		_, _ = bw.WriteString("User-Agent: " + h1.DefaultUserAgent + "\r\n")
	} else if ua := lv.Values[0]; ua != "" {
		h1.WriteField(bw, "User-Agent", ua)
	}
	if d.n > 0 || d.method == http.MethodPost || d.method == http.MethodPut || d.method == http.MethodPatch {
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), d.n, 10))
		_, _ = bw.WriteString("\r\n")
	}
	if d.ctype != "" {
		h1.WriteField(bw, "Content-Type", d.ctype)
	}
	if d.token != "" {
		h1.WriteField(bw, "Dapr-Api-Token", d.token)
	}
	if d.trace != "" {
		h1.WriteField(bw, "Traceparent", d.trace)
	}
	for k, lv := range d.md {
		vals := lv.GetValues()
		if len(vals) == 0 {
			continue
		}
		name, ok := headers.HTTPName(k)
		if !ok {
			continue
		}
		switch name {
		case "host", "user-agent", "content-length", "transfer-encoding", "trailer":
			continue
		case "dapr-api-token":
			if d.token != "" {
				continue
			}
		case "traceparent":
			if d.trace != "" {
				continue
			}
		}
		key := headers.CanonicalKey(name)
		for _, v := range vals {
			h1.WriteField(bw, key, v)
		}
	}
	_, err := bw.WriteString("\r\n")
	if err != nil || d.body == nil {
		return err
	}
	// Written again when the request is sent once more: from the start.
	if _, err := d.body.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if wt, ok := d.body.(io.WriterTo); ok {
		_, err = wt.WriteTo(bw)
	} else {
		_, err = io.CopyN(bw, d.body, d.n)
	}
	return err
}

// invokeDirect sends d to the app; its errors are Invoke's.
func (h *HTTP) invokeDirect(ctx context.Context, d *directRequest) (*invoke.Response, error) {
	var start time.Time
	if h.record != nil {
		start = time.Now()
	}
	resp, err := h.lean.Send(ctx, d)
	if h.record != nil {
		status, received := 0, int64(0)
		if err == nil {
			status, received = resp.StatusCode, max(resp.ContentLength, 0)
		}
		h.record(d.method, d.path, d.n, status, received, err, time.Since(start))
	}
	if err != nil {
		u := url.URL{Scheme: h.scheme, Host: d.host, Path: d.path, RawQuery: d.query}
		op := urlErrorOp(d.method)
		releaseDirect(d)
		return nil, callErr(h.host, &url.Error{Op: op, URL: u.Redacted(), Err: err})
	}
	releaseDirect(d)
	return NewResponse(resp), nil
}
