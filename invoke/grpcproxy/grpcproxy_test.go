package grpcproxy

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/invoke/transport/transporttest"
	"github.com/tandemrun/tandem/resiliency"
)

type staticResolver map[string]string

func (r staticResolver) Resolve(_ context.Context, req resolve.Request) (string, error) {
	if a, ok := r[req.AppID+"/"+req.Namespace]; ok {
		return a, nil
	}
	return "", resolve.ErrNotFound
}
func (staticResolver) Close() error { return nil }

func serve(t *testing.T, g *grpc.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// targetApp is a gRPC app serving the standard health service; it records
// the metadata of the last call and sets a header and a trailer.
type targetApp struct {
	mu   sync.Mutex
	last metadata.MD
	// calls counts unary calls; the first failFirst of them fail with
	// failCode.
	calls     atomic.Int32
	failFirst int32
	failCode  codes.Code
}

func (a *targetApp) record(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	a.mu.Lock()
	a.last = md
	a.mu.Unlock()
}

func (a *targetApp) seen(key string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return first(a.last, key)
}

func startTargetApp(t *testing.T) (*targetApp, string) {
	return startFlakyApp(t, 0, codes.OK)
}

// startFlakyApp is startTargetApp whose first failFirst unary calls fail
// with code.
func startFlakyApp(t *testing.T, failFirst int32, code codes.Code) (*targetApp, string) {
	app := &targetApp{failFirst: failFirst, failCode: code}
	hs := health.NewServer()
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_SERVING)
	g := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			app.record(ctx)
			if n := app.calls.Add(1); n <= app.failFirst {
				return nil, status.Errorf(app.failCode, "failing call %d", n)
			}
			_ = grpc.SetHeader(ctx, metadata.Pairs("x-app-header", "h"))
			_ = grpc.SetTrailer(ctx, metadata.Pairs("x-app-trailer", "t"))
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			app.record(ss.Context())
			return h(srv, ss)
		}),
	)
	healthpb.RegisterHealthServer(g, hs)
	return app, serve(t, g)
}

// world is: app client -> caller sidecar public port (Outbound) -> mTLS ->
// callee sidecar internal port (Inbound + invoke.Server) -> target app.
type world struct {
	app    *targetApp
	client healthpb.HealthClient
}

func newWorld(t *testing.T, secure bool) *world {
	t.Helper()
	app, appAddr := startTargetApp(t)
	return newWorldWith(t, secure, app, appAddr, nil)
}

// newWorldWith is newWorld with the given app and the Outbound's policy.
func newWorldWith(t *testing.T, secure bool, app *targetApp, appAddr string, policy func(string) *resiliency.Policy) *world {
	t.Helper()
	var callerSrc, calleeSrc *identity.Source
	if secure {
		ca := transporttest.NewCA(t)
		callerSrc = ca.Source(t, "public", "default", "caller")
		calleeSrc = ca.Source(t, "public", "default", "server")
	}

	in, err := NewInbound(InboundOptions{AppID: "server", Namespace: "default", App: dial(t, appAddr)})
	if err != nil {
		t.Fatal(err)
	}
	internalOpts := append(transport.ServerOptions(transport.ServerConfig{Source: calleeSrc}),
		ServerOption(), grpc.UnknownServiceHandler(in.Handler()))
	internal := grpc.NewServer(internalOpts...)
	srv, err := invoke.NewServer(invoke.ServerOptions{AppID: "server", Namespace: "default", App: nopApp{}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Register(internal) // proxied and ordinary services side by side
	internalAddr := serve(t, internal)

	pool := transport.NewPool(transport.Options{Source: callerSrc})
	t.Cleanup(func() { _ = pool.Close() })
	out, err := NewOutbound(OutboundOptions{
		AppID: "caller", Namespace: "default", Pool: pool,
		Resolver: staticResolver{"server/default": internalAddr}, Policy: policy,
	})
	if err != nil {
		t.Fatal(err)
	}
	public := grpc.NewServer(ServerOption(), grpc.UnknownServiceHandler(out.Handler()))
	publicAddr := serve(t, public)
	return &world{app: app, client: healthpb.NewHealthClient(dial(t, publicAddr))}
}

type nopApp struct{}

func (nopApp) Invoke(context.Context, *invoke.Request) (*invoke.Response, error) {
	return nil, status.Error(codes.Unimplemented, "nop")
}

func TestProxyUnary(t *testing.T) {
	for _, secure := range []bool{true, false} {
		t.Run(map[bool]string{true: "mtls", false: "plaintext"}[secure], func(t *testing.T) {
			w := newWorld(t, secure)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, invoke.AppIDKey, "server",
				invoke.CallerAppIDKey, "forged", "x-user", "u1")
			var hdr, trl metadata.MD
			resp, err := w.client.Check(ctx, &healthpb.HealthCheckRequest{Service: "orders"}, grpc.Header(&hdr), grpc.Trailer(&trl))
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("status = %v", resp.GetStatus())
			}
			if first(hdr, "x-app-header") != "h" || first(trl, "x-app-trailer") != "t" {
				t.Errorf("header %v trailer %v not relayed", hdr, trl)
			}
			// The calling sidecar replaces the app's forged claim; with mTLS
			// the callee then takes it from the certificate.
			wantCaller := "caller"
			for k, want := range map[string]string{
				invoke.CallerAppIDKey: wantCaller, invoke.CalleeAppIDKey: "server",
				invoke.AppIDKey: "", "x-user": "u1", // dapr-app-id is not forwarded to the app, as in daprd
			} {
				if g := w.app.seen(k); g != want {
					t.Errorf("app saw %s = %q, want %q", k, g, want)
				}
			}
			if secure {
				if g := w.app.seen(invoke.CallerNamespaceKey); g != "default" {
					t.Errorf("caller namespace = %q", g)
				}
			}
		})
	}
}

func TestProxyStatusAndStream(t *testing.T) {
	w := newWorld(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, invoke.AppIDKey, "server")

	_, err := w.client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("unknown service: err = %v, want the app's NotFound", err)
	}

	checkWatch(ctx, t, w)
}

// checkWatch reads the first message of a proxied server stream.
func checkWatch(ctx context.Context, t *testing.T, w *world) {
	t.Helper()
	stream, err := w.client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if msg.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("watch status = %v", msg.GetStatus())
	}
}

func TestProxyRefusals(t *testing.T) {
	w := newWorld(t, true)
	cases := []struct {
		name string
		md   []string
		code codes.Code
	}{
		{"no dapr-app-id", nil, codes.Unimplemented},
		{"unknown app", []string{invoke.AppIDKey, "ghost"}, codes.Unavailable},
		{"bad app id", []string{invoke.AppIDKey, "a.b.c"}, codes.InvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if tc.md != nil {
				ctx = metadata.AppendToOutgoingContext(ctx, tc.md...)
			}
			_, err := w.client.Check(ctx, &healthpb.HealthCheckRequest{Service: "orders"})
			if status.Code(err) != tc.code {
				t.Errorf("err = %v, want %v", err, tc.code)
			}
		})
	}
}

func TestInboundAuthorizeAndWrongTarget(t *testing.T) {
	ca := transporttest.NewCA(t)
	_, appAddr := startTargetApp(t)
	in, _ := NewInbound(InboundOptions{
		AppID: "server", Namespace: "default", App: dial(t, appAddr),
		Authorize: func(_ context.Context, caller identity.App, method string) error {
			if caller.AppID != "trusted" {
				return status.Error(codes.PermissionDenied, "not trusted")
			}
			return nil
		},
	})
	opts := append(transport.ServerOptions(transport.ServerConfig{Source: ca.Source(t, "public", "default", "server")}),
		ServerOption(), grpc.UnknownServiceHandler(in.Handler()))
	addr := serve(t, grpc.NewServer(opts...))
	pool := transport.NewPool(transport.Options{Source: ca.Source(t, "public", "default", "caller")})
	defer pool.Close()
	cc, _ := pool.Get(addr)
	client := healthpb.NewHealthClient(cc)
	for _, tc := range []struct {
		target, claim string
		code          codes.Code
	}{
		{"server", "", codes.PermissionDenied},
		{"server", "trusted", codes.PermissionDenied}, // a forged claim is ignored
		{"other", "", codes.NotFound},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ctx = metadata.AppendToOutgoingContext(ctx, invoke.AppIDKey, tc.target, invoke.CallerAppIDKey, tc.claim)
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "orders"})
		cancel()
		if status.Code(err) != tc.code {
			t.Errorf("target %s: err = %v, want %v", tc.target, err, tc.code)
		}
	}
}

// retryPolicy returns the policy "server" gets from a Resiliency document
// with a default app retry policy of maxRetries and the matching list.
func retryPolicy(t *testing.T, maxRetries int, grpcCodes string) func(string) *resiliency.Policy {
	t.Helper()
	doc := fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: r}
spec:
  policies:
    retries:
      DefaultAppRetryPolicy: {policy: constant, duration: 1ms, maxRetries: %d, matching: {gRPCStatusCodes: %q}}
`, maxRetries, grpcCodes)
	docs, _, err := resiliency.Parse("r.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	set, err := resiliency.Build("caller", docs)
	if err != nil {
		t.Fatal(err)
	}
	return set.ForApp
}

func TestProxyRetriesUnaryCalls(t *testing.T) {
	cases := []struct {
		name      string
		codes     string // matching gRPCStatusCodes; "" retries all
		failFirst int32
		code      codes.Code
		stream    bool
		wantCalls int32
		wantCode  codes.Code
	}{
		{"all codes retried by default", "", 2, codes.Canceled, false, 3, codes.OK},
		{"matched code retried", "3", 2, codes.InvalidArgument, false, 3, codes.OK},
		{"gives up after maxRetries", "3", 5, codes.InvalidArgument, false, 3, codes.InvalidArgument},
		{"unmatched code not retried", "1,12", 2, codes.Unknown, false, 1, codes.Unknown},
		{"stream: only opening is retried", "", 2, codes.Internal, true, 1, codes.Internal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app, addr := startFlakyApp(t, tc.failFirst, tc.code)
			w := newWorldWith(t, false, app, addr, retryPolicy(t, 2, tc.codes))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, invoke.AppIDKey, "server")
			if tc.stream {
				ctx = metadata.AppendToOutgoingContext(ctx, StreamKey, "true")
			}
			_, err := w.client.Check(ctx, &healthpb.HealthCheckRequest{Service: "orders"})
			if status.Code(err) != tc.wantCode {
				t.Errorf("err = %v, want code %v", err, tc.wantCode)
			}
			if g := app.calls.Load(); g != tc.wantCalls {
				t.Errorf("app called %d times, want %d", g, tc.wantCalls)
			}
		})
	}
}

func TestProxyWithPolicyStreams(t *testing.T) {
	// A server stream under a retry policy, marked or not, still flows.
	for _, marked := range []bool{true, false} {
		t.Run(fmt.Sprint("dapr-stream=", marked), func(t *testing.T) {
			app, addr := startTargetApp(t)
			w := newWorldWith(t, false, app, addr, retryPolicy(t, 2, ""))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, invoke.AppIDKey, "server")
			if marked {
				ctx = metadata.AppendToOutgoingContext(ctx, StreamKey, "true")
			}
			checkWatch(ctx, t, w)
		})
	}
}
