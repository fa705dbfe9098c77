package invoke

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/transport"
)

// UnaryLimit is the largest body of known size sent with CallLocal; larger
// or unknown-size bodies go over CallLocalStream.
const UnaryLimit = 64 << 10

// Invoker calls a method of an app by ID ("app" or "app.namespace"). It is
// the one service invocation interface: the HTTP and gRPC APIs take one,
// Client makes the calls, and proxy/resilient's decorator wraps another.
// The caller closes the returned Response's Body.
type Invoker interface {
	Invoke(ctx context.Context, target string, req *Request) (*Response, error)
}

// ClientOptions configure a Client.
type ClientOptions struct {
	Resolver resolve.Resolver
	Pool     *transport.Pool
	// AppID and Namespace are this sidecar's app (the caller).
	AppID     string
	Namespace string
	// Local, if set, serves calls addressed to this sidecar's own app
	// without a network hop, as daprd does.
	Local AppChannel
	// LeanHook, if set, observes the calls made over the lean transport
	// as the Pool's dial options observe gRPC calls (metrics, tracing).
	LeanHook LeanClientHook
	Log      *slog.Logger
}

// Client calls methods of other apps through their sidecars.
type Client struct {
	resolver  resolve.Resolver
	pool      *transport.Pool
	appID     string
	namespace string
	local     AppChannel
	leanHook  LeanClientHook
	log       *slog.Logger
}

var _ Invoker = (*Client)(nil)

// failureMarker is implemented by resolvers that cache addresses and can
// drop one that failed (the caching resolver); optional.
type failureMarker interface {
	MarkFailed(addr string)
}

// NewClient checks o and returns a Client.
func NewClient(o ClientOptions) (*Client, error) {
	switch {
	case o.Resolver == nil:
		return nil, errors.New("invoker: a name resolver is required")
	case o.Pool == nil:
		return nil, errors.New("invoker: a connection pool is required")
	case o.AppID == "" || o.Namespace == "":
		return nil, errors.New("invoker: this sidecar's app id and namespace are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		resolver: o.Resolver, pool: o.Pool, appID: o.AppID, namespace: o.Namespace,
		local: o.Local, leanHook: o.LeanHook, log: o.Log,
	}, nil
}

// Invoke calls req's method on target ("app" or "app.namespace").
//
// Invoke takes ownership of req: it adds Dapr's routing metadata to
// req.Message and reads req.Body. A body of known size up to UnaryLimit is
// sent with CallLocal (unless req.StreamResponse) and retried once on another connection if the sidecar
// was unreachable; anything else is streamed with CallLocalStream and not
// retried. The response body is streamed as it arrives; close it.
//
// Errors: resolution failures wrap resolve.ErrNotFound (or the resolver's
// error); gRPC status errors from the remote sidecar are returned as they
// are, and transport failures (codes.Unavailable) keep their status but
// name the app and address.
func (iv *Client) Invoke(ctx context.Context, target string, req *Request) (*Response, error) {
	if req == nil || req.Message == nil || req.Message.GetMessage() == nil {
		return nil, errors.New("invoke: request has no message")
	}
	if err := normalizeRequest(req); err != nil {
		return nil, err
	}
	appID, ns, err := SplitAppID(target, iv.namespace)
	if err != nil {
		return nil, err
	}
	msg := req.Message
	if msg.Ver == internalsv1.APIVersion_APIVERSION_UNSPECIFIED {
		msg.Ver = internalsv1.APIVersion_V1
	}
	if msg.Metadata == nil {
		msg.Metadata = make(map[string]*internalsv1.ListStringValue, 4)
	}
	// Always at least one entry: daprd rejects a streamed request whose
	// metadata map is empty (indistinguishable from absent on the wire).
	var slab *metaSlab
	if req.Routing != nil {
		slab = &req.Routing.slab
	} else {
		slab = new(metaSlab)
	}
	slab.set(msg.Metadata, DestinationAppIDKey, appID)
	slab.set(msg.Metadata, CallerAppIDKey, iv.appID)
	slab.set(msg.Metadata, CalleeAppIDKey, appID)
	// The callee trusts this only without mTLS (then it is all it has).
	slab.set(msg.Metadata, CallerNamespaceKey, iv.namespace)

	if iv.local != nil && appID == iv.appID && ns == iv.namespace {
		return iv.local.Invoke(ctx, req)
	}

	addr, err := iv.resolve(ctx, appID, ns)
	if err != nil {
		return nil, err
	}
	// The trace context goes on as gRPC metadata, as daprd sends it. The
	// lean transport carries it in the message's metadata; there the
	// hook's spans take their parent from the same gRPC metadata as the
	// gRPC path's interceptors.
	if iv.leanHook != nil {
		ctx = withTraceContext(ctx, msg.Metadata)
	}
	resp, at, lean, err := iv.invokeLean(ctx, appID, ns, addr, req)
	if lean {
		return resp, err
	}
	addr = at // the peer speaks only Dapr's gRPC (a daprd)
	if iv.leanHook == nil {
		ctx = withTraceContext(ctx, msg.Metadata)
	}

	if !req.StreamResponse && req.ContentLength >= 0 && req.ContentLength <= UnaryLimit {
		return iv.invokeUnary(ctx, appID, ns, addr, req)
	}
	if err := req.holdSmall(); err != nil {
		return nil, err
	}
	replay, canReplay := replayable(req)
	resp, err = iv.invokeStream(ctx, appID, addr, req)
	if err != nil && canReplay && status.Code(err) == codes.Unavailable && ctx.Err() == nil {
		// As for CallLocal: a body in memory (or none) can be sent again
		// on a fresh connection, possibly to another instance, when the
		// peer's sidecar was unreachable.
		if fm, ok := iv.resolver.(failureMarker); ok {
			fm.MarkFailed(addr)
		}
		next, rerr := iv.resolve(ctx, appID, ns)
		if rerr != nil {
			return nil, fmt.Errorf("%w (re-resolving after failure: %v)", err, rerr)
		}
		iv.log.Debug("retrying invocation after transport failure", "app_id", appID, "address", addr, "retry_address", next, "error", err)
		if replay != nil {
			req.Body = NewMemBody(replay)
		}
		resp, err = iv.invokeStream(ctx, appID, next, req)
	}
	return resp, err
}

// replayable returns the request body's bytes when it can be sent again:
// it is held whole in memory and nothing of it has been read, or there is
// none (then nil, true).
func replayable(req *Request) ([]byte, bool) {
	if req.Body == nil || req.ContentLength == 0 {
		return nil, true
	}
	if mb, ok := req.Body.(*MemBody); ok {
		if b, whole := mb.unread(); whole {
			return b, true
		}
	}
	return nil, false
}

func (iv *Client) resolve(ctx context.Context, appID, ns string) (string, error) {
	addr, err := iv.resolver.Resolve(ctx, resolve.Request{AppID: appID, Namespace: ns})
	if err != nil {
		if errors.Is(err, resolve.ErrNotFound) {
			return "", fmt.Errorf("app %q in namespace %q is not registered or not running; check the app id and that its sidecar has started: %w", appID, ns, err)
		}
		return "", fmt.Errorf("resolve app %q in namespace %q: %w", appID, ns, err)
	}
	return addr, nil
}

func (iv *Client) invokeUnary(ctx context.Context, appID, ns, addr string, req *Request) (*Response, error) {
	data, err := req.Bytes()
	if err != nil {
		return nil, err
	}
	m := req.Message.Message
	if m.Data == nil {
		m.Data = &anypb.Any{Value: data}
		defer func() { m.Data = nil }()
	} else {
		m.Data.Value = data
		defer func() { m.Data.Value = nil }()
	}

	out, err := iv.callUnary(ctx, addr, req.Message)
	if err != nil && status.Code(err) == codes.Unavailable && ctx.Err() == nil {
		// The body is in memory, so the call can be replayed on a fresh
		// connection, possibly to another instance.
		if fm, ok := iv.resolver.(failureMarker); ok {
			fm.MarkFailed(addr)
		}
		next, rerr := iv.resolve(ctx, appID, ns)
		if rerr != nil {
			return nil, fmt.Errorf("invoke app %q at %s: %w (re-resolving after failure: %v)", appID, addr, err, rerr)
		}
		iv.log.Debug("retrying invocation after transport failure", "app_id", appID, "address", addr, "retry_address", next, "error", err)
		addr = next
		out, err = iv.callUnary(ctx, addr, req.Message)
	}
	if err != nil {
		return nil, wrapCallErr(appID, addr, err)
	}
	var body []byte
	if d := out.GetMessage().GetData(); d != nil {
		body, d.Value = d.Value, nil
	}
	return &Response{Message: out, Body: newBytesBody(body)}, nil
}

// callUnary sends one CallLocal on the pooled connection to addr and drops
// the connection if it proved broken.
func (iv *Client) callUnary(ctx context.Context, addr string, in *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	cc, err := iv.pool.Get(addr)
	if err != nil {
		return nil, err
	}
	out := new(internalsv1.InternalInvokeResponse)
	err = cc.Invoke(ctx, internalsv1.ServiceInvocation_CallLocal_FullMethodName, in, out)
	if err != nil {
		if status.Code(err) == codes.Unavailable {
			iv.pool.Discard(addr, cc)
		}
		return nil, err
	}
	return out, nil
}

// wrapCallErr adds the app and address to transport failures. Statuses the
// remote sidecar chose are returned untouched so they map one to one onto
// Dapr's API errors; status.Code still sees through the wrapping.
func wrapCallErr(appID, addr string, err error) error {
	switch status.Code(err) {
	case codes.Unavailable:
		return fmt.Errorf("invoke app %q: sidecar at %s is unreachable (is it running?): %w", appID, addr, err)
	case codes.Unknown:
		return fmt.Errorf("invoke app %q at %s: %w", appID, addr, err)
	}
	return err
}

// withTraceContext forwards the request's W3C trace context as gRPC
// metadata the way daprd does (traceparent and grpc-trace-bin).
func withTraceContext(ctx context.Context, md map[string]*internalsv1.ListStringValue) context.Context {
	tp := firstMeta(md, traceparentKey)
	if tp == "" {
		return ctx
	}
	kv := make([]string, 0, 6)
	kv = append(kv, traceparentKey, tp)
	if bin, ok := TraceBinFromParent(tp); ok {
		kv = append(kv, traceBinKey, string(bin))
	}
	if ts := firstMeta(md, tracestateKey); ts != "" {
		kv = append(kv, tracestateKey, ts)
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// bytesBody is an in-memory response body.
type bytesBody struct{ bytes.Reader }

func newBytesBody(b []byte) *bytesBody {
	r := &bytesBody{}
	r.Reset(b)
	return r
}

func (*bytesBody) Close() error { return nil }
