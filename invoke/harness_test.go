package invoke

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/invoke/transport/transporttest"
)

const testTD = "public"

// mapResolver resolves from a map; MarkFailed drops an address.
type mapResolver struct {
	mu     sync.Mutex
	addrs  map[string][]string // "app/ns" -> addresses, first is used
	failed []string
}

func (r *mapResolver) Resolve(_ context.Context, req resolve.Request) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.addrs[req.AppID+"/"+req.Namespace]
	if len(a) == 0 {
		return "", resolve.ErrNotFound
	}
	return a[0], nil
}

func (r *mapResolver) MarkFailed(addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, addr)
	for k, list := range r.addrs {
		out := list[:0:0]
		for _, a := range list {
			if a != addr {
				out = append(out, a)
			}
		}
		r.addrs[k] = out
	}
}

func (r *mapResolver) Close() error { return nil }

// echoApp is a fake app: it echoes the body and reports what it saw in
// response headers. Metadata "x-status" sets the status code.
type echoApp struct {
	// block, if set, serves method "block": it waits for the call's
	// context to end.
	block *blockingApp
	calls atomic.Int64
	mu    sync.Mutex
	last  *internalsv1.InternalInvokeRequest
}

func (a *echoApp) Invoke(ctx context.Context, req *Request) (*Response, error) {
	a.calls.Add(1)
	a.mu.Lock()
	a.last = req.Message
	a.mu.Unlock()
	m := req.Message.GetMessage()
	md := req.Message.GetMetadata()
	switch m.GetMethod() {
	case "fail":
		return nil, status.Error(codes.NotFound, "no such thing")
	case "broken":
		return nil, io.ErrUnexpectedEOF
	case "slow":
		// Longer than the lean server's watchAfter: the call is watched.
		time.Sleep(20 * time.Millisecond)
	case "block":
		a.block.started <- struct{}{}
		select {
		case <-ctx.Done():
			a.block.done <- ctx.Err()
			return nil, ctx.Err()
		case <-time.After(5 * time.Second):
			a.block.done <- nil
			return nil, errors.New("block: the call's context did not end")
		}
	}
	var body io.ReadCloser = io.NopCloser(bytes.NewReader(nil))
	if req.Body != nil {
		if m.GetMethod() == "stream-echo" {
			// Answer while still reading: the response streams the request.
			body = io.NopCloser(req.Body)
		} else {
			b, err := io.ReadAll(req.Body)
			if err != nil {
				return nil, err
			}
			body = newBytesBody(b)
		}
	}
	code := int32(200)
	if s := firstMeta(md, "x-status"); s != "" {
		n, _ := strconv.Atoi(s)
		code = int32(n)
	}
	h := map[string]*internalsv1.ListStringValue{
		"x-method":       {Values: []string{m.GetMethod()}},
		"x-verb":         {Values: []string{m.GetHttpExtension().GetVerb().String()}},
		"x-query":        {Values: []string{m.GetHttpExtension().GetQuerystring()}},
		"x-caller":       {Values: []string{firstMeta(md, CallerAppIDKey)}},
		"x-caller-ns":    {Values: []string{firstMeta(md, CallerNamespaceKey)}},
		"x-callee":       {Values: []string{firstMeta(md, CalleeAppIDKey)}},
		"x-traceparent":  {Values: []string{firstMeta(md, traceparentKey)}},
		"x-content-type": {Values: []string{m.GetContentType()}},
		"x-length":       {Values: []string{strconv.FormatInt(req.ContentLength, 10)}},
		"x-custom":       md["x-custom"],
	}
	if h["x-custom"] == nil {
		delete(h, "x-custom")
	}
	return &Response{
		Message: &internalsv1.InternalInvokeResponse{
			Status:  &internalsv1.Status{Code: code},
			Headers: h,
			Message: &commonv1.InvokeResponse{ContentType: m.GetContentType()},
		},
		Body: body,
	}, nil
}

// sidecar is a callee: an internal gRPC server with an invoke.Server.
type sidecar struct {
	addr string
	app  *echoApp
	srv  *grpc.Server
	// grpcCalls counts the calls that came over gRPC (not the lean
	// transport).
	grpcCalls *atomic.Int64
	stop      func()
}

func startSidecar(t testing.TB, src *identity.Source, appID string, authz AuthorizeFunc) *sidecar {
	return startSidecarWith(t, src, appID, authz, false)
}

// startSidecarWith starts a callee; noLean makes it offer only h2, as a
// daprd does.
func startSidecarWith(t testing.TB, src *identity.Source, appID string, authz AuthorizeFunc, noLean bool) *sidecar {
	t.Helper()
	return startSidecarOn(t, src, appID, authz, noLean, "127.0.0.1:0")
}

// startSidecarOn is startSidecarWith listening on addr; stop ends the
// callee (its gRPC server and lean connections) before the test does.
func startSidecarOn(t testing.TB, src *identity.Source, appID string, authz AuthorizeFunc, noLean bool, addr string) *sidecar {
	t.Helper()
	app := &echoApp{}
	s, err := NewServer(ServerOptions{AppID: appID, Namespace: "default", App: app, Authorize: authz})
	if err != nil {
		t.Fatal(err)
	}
	cfg := transport.ServerConfig{Source: src}
	if !noLean {
		cfg.Lean = transport.NewLeanServer(s, 0, nil)
		t.Cleanup(func() { _ = cfg.Lean.Close() })
	}
	grpcCalls := new(atomic.Int64)
	g := grpc.NewServer(append(transport.ServerOptions(cfg),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			grpcCalls.Add(1)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			grpcCalls.Add(1)
			return h(srv, ss)
		}))...)
	s.Register(g)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	stop := func() {
		g.Stop()
		if cfg.Lean != nil {
			_ = cfg.Lean.Close()
		}
	}
	return &sidecar{addr: ln.Addr().String(), app: app, srv: g, grpcCalls: grpcCalls, stop: stop}
}

// pair is a caller Client wired to a callee sidecar "server" (and any
// other apps added to res).
type pair struct {
	inv    *Client
	pool   *transport.Pool
	res    *mapResolver
	callee *sidecar
}

func newPair(t testing.TB, secure bool) *pair {
	t.Helper()
	var callerSrc, calleeSrc *identity.Source
	if secure {
		ca := transporttest.NewCA(t)
		callerSrc = ca.Source(t, testTD, "default", "caller")
		calleeSrc = ca.Source(t, testTD, "default", "server")
	}
	callee := startSidecar(t, calleeSrc, "server", nil)
	// TANDEM_TEST_LEAN=1 runs the suite's calls over the lean transport.
	pool := transport.NewPool(transport.Options{Source: callerSrc, Lean: os.Getenv("TANDEM_TEST_LEAN") == "1"})
	t.Cleanup(func() { _ = pool.Close() })
	res := &mapResolver{addrs: map[string][]string{"server/default": {callee.addr}}}
	inv, err := NewClient(ClientOptions{Resolver: res, Pool: pool, AppID: "caller", Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	return &pair{inv: inv, pool: pool, res: res, callee: callee}
}

func newReq(method string, verb commonv1.HTTPExtension_Verb, query string, body []byte, length int64, md map[string]string) *Request {
	meta := make(map[string]*internalsv1.ListStringValue, len(md))
	for k, v := range md {
		meta[k] = &internalsv1.ListStringValue{Values: []string{v}}
	}
	r := &Request{
		Message: &internalsv1.InternalInvokeRequest{
			Metadata: meta,
			Message: &commonv1.InvokeRequest{
				Method:        method,
				ContentType:   "application/octet-stream",
				HttpExtension: &commonv1.HTTPExtension{Verb: verb, Querystring: query},
			},
		},
		ContentLength: length,
	}
	if body != nil {
		r.Body = bytes.NewReader(body)
	}
	return r
}

// onlyReader hides bytes.Reader's other methods so nothing can take a
// shortcut around streaming.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// blockingApp reports calls of method "block" of an echoApp.
type blockingApp struct {
	started chan struct{}
	done    chan error
}
