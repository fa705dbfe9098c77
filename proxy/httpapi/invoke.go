package httpapi

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // registers detail types for the JSON of gRPC statuses
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/proxy/headers"
)

// Dapr API areas other than invocation. A request to one of them that no
// route serves gets 501 rather than the invocation fallback's 404, so a
// client learns the API is missing, not that an app is.
var knownAPIs = [...]string{
	"state", "publish", "secrets", "bindings", "actors", "configuration",
	"lock", "unlock", "crypto", "subtlecrypto", "workflows", "jobs",
	"conversation",
}

// isKnownAPI reports whether a cleaned path is under /<version>/<known API>.
func isKnownAPI(p string) bool {
	rest, ok := strings.CutPrefix(p, "/v1.0")
	if !ok {
		return false
	}
	// Versions v1.0, v1.0-alpha1, v1.0-beta1 ...
	if i := strings.IndexByte(rest, '/'); i >= 0 && (i == 0 || rest[0] == '-') {
		rest = rest[i+1:]
	} else {
		return false
	}
	seg, _, _ := strings.Cut(rest, "/")
	for _, api := range knownAPIs {
		if seg == api {
			return true
		}
	}
	return false
}

// copyBufs holds buffers for streaming response bodies.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// requestAlloc groups the parts of one invoke.Request.
type requestAlloc struct {
	req      invoke.Request
	internal internalsv1.InternalInvokeRequest
	msg      commonv1.InvokeRequest
	ext      commonv1.HTTPExtension
	routing  invoke.RoutingRoom
	// entries back the metadata of a request with this many headers or
	// fewer, forwarded the forwarding entries.
	entries   [6]internalsv1.ListStringValue
	forwarded [3]internalsv1.ListStringValue
}

// invoke serves a service invocation.
func (h *Handler) invoke(w http.ResponseWriter, r *http.Request, lb *limitedBody) {
	appID, method := findTarget(r)
	if appID == "" {
		if isKnownAPI(cleanPath(r.URL.Path)) {
			apierr.WriteHTTP(w, apierr.APIUnimplemented())
			return
		}
		apierr.WriteHTTP(w, apierr.DirectInvokeNoAppID())
		return
	}
	if h.cfg.Invoker == nil {
		apierr.WriteHTTP(w, apierr.DirectInvokeNotReady())
		return
	}
	verb, ok := commonv1.HTTPExtension_Verb_value[r.Method]
	if !ok || verb == int32(commonv1.HTTPExtension_CONNECT) {
		apierr.WriteHTTP(w, apierr.MalformedRequest("HTTP verb %q cannot be forwarded to an app: use GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS or TRACE", r.Method))
		return
	}

	// Room for the forwarding entries and the invoker's routing ones.
	// The request's messages (and the entries of a few headers) share one
	// allocation.
	a := &requestAlloc{}
	// The map is sized for what it will hold at most: a map of up to
	// eight entries is two allocations, a larger one four.
	n := len(r.Header) + h.cfg.Forwarded.Len() + invoke.RoutingEntries
	if _, ok := r.Header["Content-Length"]; ok {
		n-- // never relayed
	}
	md := make(headers.Metadata, n)
	headers.FromHTTPInto(r.Header, md, a.entries[:])
	if appID != h.cfg.AppID && (h.cfg.External == nil || !h.cfg.External(appID)) {
		// As daprd, only calls that leave for another sidecar say which
		// host they were forwarded by.
		h.cfg.Forwarded.AddToInto(md, a.forwarded[:])
	}
	a.ext.Verb = commonv1.HTTPExtension_Verb(verb)
	a.ext.Querystring = r.URL.RawQuery
	a.msg.Method = method
	a.msg.ContentType = firstHeader(r.Header, "Content-Type")
	a.msg.HttpExtension = &a.ext
	a.internal.Ver = internalsv1.APIVersion_V1
	a.internal.Message = &a.msg
	a.internal.Metadata = md
	req := &a.req
	req.Message = &a.internal
	req.Routing = &a.routing
	req.ContentLength = r.ContentLength
	req.StreamResponse = true // relayed as it comes, chunked or SSE, any size
	if r.ContentLength != 0 {
		req.Body = r.Body
	}

	resp, err := h.cfg.Invoker.Invoke(r.Context(), appID, req)
	if err != nil {
		if lb.tooLarge() || errors.Is(err, errBodyTooLarge) {
			apierr.WriteHTTP(w, apierr.BodyTooLarge(h.cfg.MaxRequestBodySize))
			return
		}
		h.log.Debug("service invocation failed", "app_id", appID, "method", method, "error", err)
		apierr.WriteHTTP(w, apierr.DirectInvoke(appID, err))
		return
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	defer resp.Body.Close()
	if _, held := req.Body.(*invoke.MemBody); held && req.Body != r.Body {
		// The invoker read the body into memory before sending it: it is
		// over, and closed now, net/http's server does not look for more
		// of it before writing the response.
		_ = r.Body.Close()
	}
	h.writeResponse(w, r, appID, resp)
}

// writeResponse streams resp to the caller: an HTTP app's status and
// headers as they are; a gRPC app's code mapped to an HTTP status, with the
// google.rpc.Status as JSON body when it is not OK.
func (h *Handler) writeResponse(w http.ResponseWriter, r *http.Request, appID string, resp *invoke.Response) {
	msg := resp.Message
	hdr := w.Header()
	headers.ToHTTP(msg.GetHeaders(), hdr)
	ct := msg.GetMessage().GetContentType()
	if msg.GetMessage().GetData().GetTypeUrl() != "" {
		ct = "application/x-protobuf"
	}
	code := int(msg.GetStatus().GetCode())
	if !resp.IsHTTP() {
		code = apierr.HTTPStatusFromCode(codes.Code(code))
		if code != http.StatusOK {
			body, err := protojson.Marshal(msg.GetStatus())
			if err != nil {
				apierr.WriteHTTP(w, apierr.MalformedResponse(err))
				return
			}
			hdr.Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = w.Write(body)
			return
		}
	}
	if ct != "" {
		if vv := msg.GetHeaders()["content-type"].GetValues(); len(vv) == 1 && vv[0] == ct {
			// The answer's own list, as ToHTTP shares the others'.
			hdr["Content-Type"] = vv[:1:1]
		} else {
			hdr["Content-Type"] = []string{ct}
		}
	}
	stream := isEventStream(ct) || strings.Contains(firstHeader(r.Header, "Accept"), "text/event-stream")
	if mem, ok := resp.Body.(inMemory); ok && !stream {
		// A unary answer is in memory whole: it goes out with its length,
		// headers and body in one write, instead of chunk by chunk.
		if n := mem.Len(); n > 0 && bodyAllowed(code) && r.Method != http.MethodHead && len(hdr["Content-Length"]) == 0 {
			hdr["Content-Length"] = []string{strconv.Itoa(n)}
		}
		w.WriteHeader(code)
		if r.Method != http.MethodHead {
			_, _ = mem.WriteTo(w) // an error means the caller went away
		}
		return
	}
	w.WriteHeader(code)
	if r.Method == http.MethodHead {
		return
	}
	if stream {
		// Server-sent events: the caller needs the headers before the first
		// event, which may be long in coming.
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	if err := copyFlush(w, resp.Body); err != nil {
		// Headers are gone: cut the connection so the caller sees a
		// truncated body rather than a complete-looking one.
		h.log.Warn("service invocation response broken off", "app_id", appID, "error", err)
		panic(http.ErrAbortHandler)
	}
}

// inMemory is a response body held whole in memory (a unary CallLocal's).
type inMemory interface {
	Len() int
	io.WriterTo
}

// bodyAllowed reports whether a response with this status may carry a body.
func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

// readyReader is a body that knows whether its next Read returns at once
// (the lean transport's answer).
type readyReader interface{ Ready() bool }

// copyFlush copies src to w, flushing whenever src has nothing more at
// hand, so streamed responses (server-sent events, long polls) reach the
// caller at once. A body whose next Read would not wait is not flushed
// in between: an answer that came whole leaves in one write with its end
// (net/http then sends it with its length instead of in chunks).
func copyFlush(w http.ResponseWriter, src io.Reader) error {
	f, _ := w.(http.Flusher)
	rr, _ := src.(readyReader)
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				// The caller went away; nothing to tell it.
				return nil
			}
			if f != nil && (rr == nil || !rr.Ready()) {
				f.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// isEventStream reports whether a content type is text/event-stream.
func isEventStream(ct string) bool {
	return strings.HasPrefix(ct, "text/event-stream")
}

// firstHeader returns the first value of a canonical header name.
func firstHeader(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}
