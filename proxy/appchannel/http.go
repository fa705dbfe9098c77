package appchannel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/appchannel/h1"
	"github.com/tandemrun/tandem/proxy/headers"
)

// App protocols (--app-protocol) served by HTTP.
const (
	ProtocolHTTP  = "http"
	ProtocolHTTPS = "https"
	ProtocolH2C   = "h2c"
)

// HTTPConfig configures the channel to an HTTP app.
type HTTPConfig struct {
	// Address is --app-channel-address; "" means 127.0.0.1.
	Address string
	// Port is --app-port.
	Port int
	// Protocol is "http" (default), "https" (TLS without verification, as
	// in Dapr: the app is local) or "h2c" (HTTP/2 without TLS).
	Protocol string
	// APIToken is APP_API_TOKEN, sent as header dapr-api-token when set.
	APIToken string
	// MaxResponseHeaderBytes bounds the app's response headers
	// (--dapr-http-read-buffer-size); 0 means Go's default.
	MaxResponseHeaderBytes int64
	// Pipeline, if set, is the app's HTTP middleware pipeline: calls go
	// through it whenever it holds a middleware.
	Pipeline Pipeline
	// Handler, if set, is an app inside the sidecar (a Wasm app): calls
	// run it in process, and Address, Port and Protocol are not used.
	Handler http.Handler
}

// HTTP calls an HTTP app. It is safe for concurrent use and keeps a pool
// of keep-alive connections to the app.
type HTTP struct {
	client   *http.Client
	scheme   string
	host     string
	apiToken string
	pipeline Pipeline
	piped    http.Handler // the pipeline ending in send
	// lean is the h1 client of a plaintext app, which small calls take
	// straight from their metadata (newDirect); nil for other apps.
	lean *h1.Client
	// rt is the transport NewHTTP made; observed is the one WrapTransport
	// installed, and record what reports the direct calls it does not see.
	// Direct calls are made while the client's transport is one of those.
	rt       http.RoundTripper
	observed *observedTransport
	record   CallRecorder
}

// CallRecorder records a call to the app that was written without an
// http.Request, with what a transport wrapper measuring it would have
// taken from the request and its response: method, URL path, request body
// size, status and response Content-Length (0 and 0 when err is not nil),
// and the time to the response's headers.
type CallRecorder func(method, path string, sent int64, status int, received int64, err error, elapsed time.Duration)

// observedTransport is the transport WrapTransport installed.
type observedTransport struct{ http.RoundTripper }

// WrapTransport wraps the channel's transport with wrap (metrics, tracing),
// which sees every call that has an http.Request. With record nil, every
// call to the app gets one, so wrap sees them all; with record set, the
// calls the channel writes straight from their metadata are reported to
// record instead. Call it before the channel is used.
func (h *HTTP) WrapTransport(wrap func(http.RoundTripper) http.RoundTripper, record CallRecorder) {
	h.observed = &observedTransport{wrap(h.client.Transport)}
	h.client.Transport = h.observed
	h.record = record
}

// direct reports whether a call may be written straight from its metadata:
// a plaintext app, no middleware, and no transport wrapper that would not
// see it.
func (h *HTTP) direct(piped bool) bool {
	if h.lean == nil || piped {
		return false
	}
	switch t := h.client.Transport; {
	case t == h.rt:
		return true
	case h.observed != nil && t == http.RoundTripper(h.observed):
		return h.record != nil
	}
	return false
}

var _ invoke.AppChannel = (*HTTP)(nil)

// NewHTTP returns a channel to the app described by cfg.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	if cfg.Handler != nil {
		return newHTTP(cfg, &http.Client{Transport: inProcess{cfg.Handler}}, "http", InProcessHost), nil
	}
	if cfg.Port <= 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("app channel: invalid app port %d: set --app-port to the port the app listens on", cfg.Port)
	}
	addr := cfg.Address
	if addr == "" {
		addr = "127.0.0.1"
	}
	tr := &http.Transport{
		// Never Proxy: the app is local, HTTP_PROXY must not apply.
		DialContext: (&net.Dialer{
			Timeout:   15 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    1024,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    15 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: cfg.MaxResponseHeaderBytes,
		// Bodies pass through untouched: no transparent gzip.
		DisableCompression: true,
	}
	scheme := "http"
	switch cfg.Protocol {
	case "", ProtocolHTTP:
	case ProtocolHTTPS:
		scheme = "https"
		tr.TLSClientConfig = &tls.Config{
			InsecureSkipVerify: true, //nolint:gosec // Dapr's https app protocol does not verify the local app.
			MinVersion:         tls.VersionTLS12,
		}
	case ProtocolH2C:
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = p
	default:
		return nil, fmt.Errorf("app channel: protocol %q is not HTTP: use http, https or h2c (or the gRPC channel for grpc)", cfg.Protocol)
	}
	host := net.JoinHostPort(addr, strconv.Itoa(cfg.Port))
	var rt http.RoundTripper = tr
	var lean *h1.Client
	if scheme == "http" && tr.Protocols == nil {
		lean = h1.New(h1.Config{Addr: host, MaxIdle: 1024, MaxHeaderBytes: cfg.MaxResponseHeaderBytes})
		rt = &router{std: tr, lean: lean}
	}
	h := newHTTP(cfg, &http.Client{Transport: rt}, scheme, host)
	h.lean, h.rt = lean, rt
	return h, nil
}

func newHTTP(cfg HTTPConfig, client *http.Client, scheme, host string) *HTTP {
	// Redirects go back to the caller, as with a reverse proxy.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	h := &HTTP{client: client, scheme: scheme, host: host, apiToken: cfg.APIToken}
	if cfg.Pipeline != nil {
		h.pipeline = cfg.Pipeline
		h.piped = cfg.Pipeline.Wrap(http.HandlerFunc(h.send))
	}
	return h
}

// Client returns the pooled client to the app, for other callers of the app
// (health probes, subscriptions) to share its connections.
func (h *HTTP) Client() *http.Client { return h.client }

// BaseURL returns scheme://host:port of the app.
func (h *HTTP) BaseURL() string { return h.scheme + "://" + h.host }

// Close releases idle connections.
func (h *HTTP) Close() error {
	// The transport NewHTTP made holds them; a wrapper around it may not
	// pass CloseIdleConnections on.
	if c, ok := h.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	h.client.CloseIdleConnections()
	return nil
}

// leanMax is the largest request body the lean client carries: the size of
// a unary CallLocal (bigger bodies stream, through net/http).
const leanMax = 64 << 10

// router sends small requests whose body can be sent again (GetBody) to
// the plaintext app over h1, which spends no goroutine hand-offs on them,
// and everything else (streams, large bodies) over net/http.
type router struct {
	std  *http.Transport
	lean *h1.Client
}

func (r *router) RoundTrip(req *http.Request) (*http.Response, error) {
	if leanFits(req) {
		return r.lean.RoundTrip(req)
	}
	return r.std.RoundTrip(req)
}

// leanFits reports whether req goes over h1: plaintext, and no body or a
// small replayable one.
func leanFits(req *http.Request) bool {
	if req.URL.Scheme != "http" {
		return false
	}
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	return req.GetBody != nil && req.ContentLength > 0 && req.ContentLength <= leanMax
}

// CloseIdleConnections is what http.Client.CloseIdleConnections calls.
func (r *router) CloseIdleConnections() {
	r.std.CloseIdleConnections()
	r.lean.CloseIdleConnections()
}

// emptyTraceparent is the W3C form of an empty span context.
const emptyTraceparent = "00-00000000000000000000000000000000-0000000000000000-00"

// Invoke sends req to the app and returns its response with the body
// streaming; the caller must close Response.Body.
func (h *HTTP) Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error) {
	piped := h.pipeline != nil && !h.pipeline.Empty()
	if h.direct(piped) {
		if d := h.newDirect(req); d != nil {
			return h.invokeDirect(ctx, d)
		}
	}
	hreq, err := NewRequest(ctx, req, &url.URL{Scheme: h.scheme, Host: h.host})
	if err != nil {
		return nil, err
	}
	if h.apiToken != "" {
		hreq.Header["Dapr-Api-Token"] = []string{h.apiToken}
	}
	if hreq.Header.Get("Traceparent") == "" {
		// daprd hands the app the (empty) span context of a call that
		// came without trace context, all zeros, as it delivers events
		// published without one; tracing, when on, replaces it.
		hreq.Header["Traceparent"] = []string{emptyTraceparent}
	}
	if piped {
		return h.invokePiped(ctx, hreq)
	}
	resp, err := h.do(hreq)
	if err != nil {
		return nil, callErr(h.host, err)
	}
	return NewResponse(resp), nil
}

// do sends req with the client's transport. It is http.Client.Do for a
// client that follows no redirect and has no timeout or cookie jar, less
// the copies Do makes of every request for redirects it would follow (the
// header map, the URL): the same answer, and the same *url.Error on
// failure.
func (h *HTTP) do(req *http.Request) (*http.Response, error) {
	resp, err := h.client.Transport.RoundTrip(req)
	if err == nil && resp == nil {
		err = errors.New("http: RoundTripper returned a nil *Response with a nil error")
	}
	if err != nil {
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		return nil, &url.Error{Op: urlErrorOp(req.Method), URL: req.URL.Redacted(), Err: err}
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	return resp, nil
}

// urlErrorOp is the Op of http.Client's errors: "Post" for POST.
func urlErrorOp(method string) string {
	if method == "" {
		return "Get"
	}
	return method[:1] + strings.ToLower(method[1:])
}

func callErr(host string, err error) error { return fmt.Errorf("call app at %s: %w", host, err) }

// NewResponse turns an HTTP service's answer into an invocation response
// whose body streams from resp's.
func NewResponse(resp *http.Response) *invoke.Response {
	md := make(headers.Metadata, len(resp.Header))
	// The response's messages (and the entries of a few headers) share
	// one allocation.
	a := &responseAlloc{}
	headers.FromHTTPInto(resp.Header, md, a.entries[:])
	a.status.Code = int32(resp.StatusCode) //nolint:gosec // HTTP status fits.
	a.inner.ContentType = resp.Header.Get("Content-Type")
	a.msg.Status = &a.status
	a.msg.Headers = md
	a.msg.Message = &a.inner
	a.body.ReadCloser = resp.Body
	a.resp.Message = &a.msg
	a.resp.Body = &a.body
	a.resp.ContentLength = resp.ContentLength
	return &a.resp
}

// responseAlloc holds what NewResponse builds.
type responseAlloc struct {
	resp   invoke.Response
	msg    internalsv1.InternalInvokeResponse
	status internalsv1.Status
	inner  commonv1.InvokeResponse
	body   shortBodyOK
	// entries back the metadata of an answer with this many headers or
	// fewer (most apps send a handful).
	entries [4]internalsv1.ListStringValue
}

// shortBodyOK ends a response body that is shorter than the app's
// Content-Length normally, as daprd does: what came is the answer, and the
// caller gets it with its true length (Content-Length is never relayed).
type shortBodyOK struct{ io.ReadCloser }

func (b shortBodyOK) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}

// memReader is a body held whole in memory that can be read again: a
// *bytes.Reader, or a reader embedding one (invoke.MemBody).
type memReader interface {
	io.ReadSeeker
	Size() int64
	Len() int
}

// NewRequest builds the HTTP request for req: its method as a path under
// base (scheme, host and an optional path prefix), its query, body and
// metadata as headers. Used for the app and for HTTP endpoints.
func NewRequest(ctx context.Context, req *invoke.Request, base *url.URL) (*http.Request, error) {
	msg := req.Message.GetMessage()
	ext := msg.GetHttpExtension()
	if ext == nil {
		return nil, status.Error(codes.InvalidArgument, "missing HTTP extension field: an HTTP app needs message.http_extension.verb")
	}
	verb := ext.GetVerb()
	if verb == commonv1.HTTPExtension_NONE || verb == commonv1.HTTPExtension_CONNECT {
		return nil, status.Errorf(codes.InvalidArgument, "invalid HTTP verb %s for an HTTP app", verb)
	}
	// Cleaning a rooted path resolves "..": nothing escapes the app's root.
	// As in daprd, the method is taken as the URL's path in its escaped
	// form: "%41" reaches the app as "A", and a bare "%" is refused.
	clean := path.Clean("/" + msg.GetMethod())
	var u url.URL
	if plainPath(clean) {
		u.Path = clean // what url.Parse makes of it (FuzzPlainPath), without allocating
	} else {
		pu, err := url.Parse(clean)
		if err != nil || pu.Scheme != "" || pu.Host != "" || pu.RawQuery != "" || pu.Fragment != "" {
			return nil, status.Errorf(codes.InvalidArgument, "method %q is not a valid URL path for the app: %v", msg.GetMethod(), err)
		}
		u = *pu
	}
	if prefix := strings.TrimSuffix(base.Path, "/"); prefix != "" {
		if u.RawPath != "" {
			u.RawPath = strings.TrimSuffix(base.EscapedPath(), "/") + u.RawPath
		}
		u.Path = prefix + u.Path
	}
	u.Scheme, u.Host, u.RawQuery = base.Scheme, base.Host, ext.GetQuerystring()

	var body io.ReadCloser = http.NoBody
	if req.Body != nil && req.ContentLength != 0 {
		if rc, ok := req.Body.(io.ReadCloser); ok {
			body = rc
		} else {
			body = io.NopCloser(req.Body)
		}
	}
	hreq, err := http.NewRequestWithContext(ctx, verb.String(), "", nil)
	if err != nil {
		return nil, fmt.Errorf("build request for %s: %w", base.Host, err)
	}
	*hreq.URL = u
	hreq.Host = base.Host
	hreq.Body = body
	hreq.ContentLength = contentLength(req)
	if body == http.NoBody {
		hreq.ContentLength = 0
	}
	// A body held in memory (a unary CallLocal's, an actor call's
	// invoke.MemBody) can be sent again when the app closed a keep-alive
	// connection just as it was reused; it also lets the request go over
	// h1 (leanFits).
	if br, ok := req.Body.(memReader); ok && body != http.NoBody && br.Size() == hreq.ContentLength && int64(br.Len()) == br.Size() {
		hreq.GetBody = func() (io.ReadCloser, error) {
			if _, err := br.Seek(0, io.SeekStart); err != nil {
				return nil, err
			}
			return io.NopCloser(br), nil
		}
	}

	md := req.Message.GetMetadata()
	hdr := make(http.Header, len(md)+2)
	headers.ToHTTP(md, hdr)
	if ct := msg.GetContentType(); ct != "" {
		hdr["Content-Type"] = []string{ct}
	}
	if hdr.Get("Traceparent") == "" {
		if bin, ok := headers.DecodeBin(headers.First(md, "grpc-trace-bin")); ok {
			if tp, ok := invoke.TraceParentFromBin(bin); ok {
				hdr["Traceparent"] = []string{tp}
			}
		}
	}
	hreq.Header = hdr
	return hreq, nil
}

// plainPath reports whether p is a rooted path of bytes that a URL path
// carries as they are (unreserved, and the sub-delimiters, ':' and '@'
// that a path need not escape): url.Parse would give a URL with this Path
// and nothing else. ("//" would begin an authority; a cleaned path has
// none.)
func plainPath(p string) bool {
	if p == "" || p[0] != '/' || strings.HasPrefix(p, "//") {
		return false
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~/$&+,:;=@", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// contentLength is the body size from the request, or from the caller's
// content-length metadata when a peer sidecar sent it; -1 when unknown.
func contentLength(req *invoke.Request) int64 {
	if req.ContentLength >= 0 {
		return req.ContentLength
	}
	if v := headers.First(req.Message.GetMetadata(), "content-length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			return n
		}
	}
	return -1
}
