package bench

import (
	"context"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	"google.golang.org/grpc/metadata"
	xdsgrpc "google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/invoke/grpcproxy"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/invoke/transport/transporttest"
	"github.com/tandemrun/tandem/xds"
)

// echoCallback is the app: AppCallback OnInvoke echoes the data.
type echoCallback struct {
	runtimev1.UnimplementedAppCallbackServer
}

func (echoCallback) OnInvoke(_ context.Context, in *commonv1.InvokeRequest) (*commonv1.InvokeResponse, error) {
	return &commonv1.InvokeResponse{Data: in.GetData(), ContentType: in.GetContentType()}, nil
}

// oneApp is an xds.Source with one fixed app.
type oneApp struct{ app xds.App }

func (s oneApp) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (s oneApp) Apps() []xds.App               { return []xds.App{s.app} }
func (s oneApp) Changed() <-chan struct{}      { return nil }

func serveGRPC(tb testing.TB, g *grpc.Server) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	tb.Cleanup(g.Stop)
	return ln.Addr().String()
}

// BenchmarkProxylessVsSidecars compares, in one process and one run, a
// proxyless gRPC client (grpc-go's xDS resolver and credentials, fed by
// Tandem's xDS server) calling the app through the callee's sidecar only,
// with the same call through the caller's sidecar and then the callee's
// (Dapr's gRPC proxying). Both paths use the real handlers (grpcproxy
// Inbound and Outbound, the mTLS transport) and the same app: AppCallback
// OnInvoke with 1 KiB, 16 concurrent callers. cpu-ns/op is the whole
// process's CPU per call (client and app included in both), p50-ns/p99-ns
// the call latency.
func BenchmarkProxylessVsSidecars(b *testing.B) {
	ca := transporttest.NewCA(b)
	calleeSrc := ca.Source(b, "public", "default", "callee")
	callerSrc := ca.Source(b, "public", "default", "caller")
	proxylessSrc := ca.Source(b, "public", "default", "proxyless")

	appSrv := grpc.NewServer()
	runtimev1.RegisterAppCallbackServer(appSrv, echoCallback{})
	appAddr := serveGRPC(b, appSrv)
	appConn, err := grpc.NewClient(appAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = appConn.Close() })

	// The callee sidecar's internal port: mTLS, the gRPC proxy's inbound.
	inbound, err := grpcproxy.NewInbound(grpcproxy.InboundOptions{AppID: "callee", Namespace: "default", App: appConn, Direct: true})
	if err != nil {
		b.Fatal(err)
	}
	internal := grpc.NewServer(append(transport.ServerOptions(transport.ServerConfig{Source: calleeSrc}),
		grpcproxy.ServerOption(), grpc.UnknownServiceHandler(inbound.Handler()))...)
	internalAddr := serveGRPC(b, internal)

	// The caller sidecar's public gRPC port: the gRPC proxy's outbound.
	pool := transport.NewPool(transport.Options{Source: callerSrc})
	b.Cleanup(func() { _ = pool.Close() })
	outbound, err := grpcproxy.NewOutbound(grpcproxy.OutboundOptions{AppID: "caller", Namespace: "default", Resolver: staticResolver(internalAddr), Pool: pool})
	if err != nil {
		b.Fatal(err)
	}
	public := grpc.NewServer(grpcproxy.ServerOption(), grpc.UnknownServiceHandler(outbound.Handler()))
	publicAddr := serveGRPC(b, public)

	// The xDS server and a proxyless client.
	host, port, _ := net.SplitHostPort(internalAddr)
	var p uint64
	for _, c := range port {
		p = p*10 + uint64(c-'0')
	}
	srv, err := xds.New(xds.Options{
		Source: oneApp{xds.App{ID: "callee", Namespace: "default", Endpoints: []xds.Endpoint{{Host: host, Port: uint32(p)}}}},
		Build:  xds.BuildOptions{TrustDomain: spiffeid.RequireTrustDomainFromString("public")},
	})
	if err != nil {
		b.Fatal(err)
	}
	xln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, xln, nil, spiffeid.TrustDomain{}) }()
	b.Cleanup(func() { cancel(); <-done })
	dir := b.TempDir()
	files := xds.Files{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), CA: filepath.Join(dir, "ca.pem")}
	svid, _ := proxylessSrc.GetX509SVID()
	certPEM, keyPEM, err := svid.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	var caPEM []byte
	for _, c := range proxylessSrc.TrustAnchors() {
		caPEM = append(caPEM, pemCert(c.Raw)...)
	}
	for path, data := range map[string][]byte{files.Cert: certPEM, files.Key: keyPEM, files.CA: caPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	boot, err := xds.Bootstrap(xds.BootstrapOptions{Server: xln.Addr().String(), Files: files, Plaintext: true})
	if err != nil {
		b.Fatal(err)
	}
	builder, err := xdsgrpc.NewXDSResolverWithConfigForTesting(boot)
	if err != nil {
		b.Fatal(err)
	}
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		b.Fatal(err)
	}
	proxyless, err := grpc.NewClient("xds:///callee", grpc.WithResolvers(builder), grpc.WithTransportCredentials(creds))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = proxyless.Close() })
	viaSidecar, err := grpc.NewClient(publicAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = viaSidecar.Close() })

	req := &commonv1.InvokeRequest{Method: "echo", Data: nil, ContentType: "application/octet-stream"}
	req.Data = anyOf(payload(1024))
	run := func(b *testing.B, cc *grpc.ClientConn, md metadata.MD) {
		cb := runtimev1.NewAppCallbackClient(cc)
		call := func() error {
			ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), md), 10*time.Second)
			defer cancel()
			_, err := cb.OnInvoke(ctx, req)
			return err
		}
		for deadline := time.Now().Add(30 * time.Second); ; {
			err := call()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("first call: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		var mu sync.Mutex
		var lat []time.Duration
		b.SetParallelism(8)
		cpu0 := selfCPU()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			local := make([]time.Duration, 0, 1024)
			for pb.Next() {
				t0 := time.Now()
				if err := call(); err != nil {
					b.Error(err)
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
		b.StopTimer()
		b.ReportMetric(float64(selfCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		slices.Sort(lat)
		b.ReportMetric(float64(percentile(lat, 50)), "p50-ns")
		b.ReportMetric(float64(percentile(lat, 99)), "p99-ns")
	}
	b.Run("proxyless", func(b *testing.B) { run(b, proxyless, metadata.MD{}) })
	b.Run("two-sidecars", func(b *testing.B) { run(b, viaSidecar, metadata.Pairs("dapr-app-id", "callee")) })
}

func anyOf(b []byte) *anypb.Any { return &anypb.Any{Value: b} }

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
