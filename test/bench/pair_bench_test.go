package bench

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/invoke/transport/transporttest"
	"github.com/tandemrun/tandem/proxy/appchannel"
	"github.com/tandemrun/tandem/proxy/h1server"
	"github.com/tandemrun/tandem/proxy/httpapi"
)

// BenchmarkSidecarPair runs the whole invocation path of the load harness
// in one process: HTTP client → Dapr HTTP API (caller) → mTLS between the
// sidecars → callee's invoke.Server → HTTP app channel → echo app, with
// 1 KiB bodies and 16 concurrent clients. "lean" is tandemd's default
// transport between sidecars (ALPN tandem-invoke), "grpc" Dapr's CallLocal
// (what a daprd peer gets). cpu-ns/op is this process's CPU time per
// request (client and app included); use -cpuprofile to see where it goes.
// It is a quick, quieter companion to TestInvokeLoad for A/B comparisons
// of the hot path, not a replacement for it.
//
// "direct" is the same client calling the echo app with no sidecar: its
// allocs/op and cpu-ns/op are the harness's own, so the sidecars' share of
// "lean" is lean's figure less direct's.
func BenchmarkSidecarPair(b *testing.B) {
	b.Run("lean", func(b *testing.B) { benchPair(b, true) })
	b.Run("grpc", func(b *testing.B) { benchPair(b, false) })
	b.Run("direct", func(b *testing.B) {
		app := serveHTTP(b, echoHandler())
		runPairLoad(b, "http://"+app+"/echo")
	})
}

// echoHandler answers with the request's body and content type.
func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header()["Content-Type"] = r.Header["Content-Type"]
		_, _ = w.Write(body)
	})
}

func benchPair(b *testing.B, lean bool) {
	ca := transporttest.NewCA(b)
	callerSrc := ca.Source(b, "public", "default", "caller")
	calleeSrc := ca.Source(b, "public", "default", "callee")

	app := serveHTTP(b, echoHandler())
	_, portStr, _ := net.SplitHostPort(app)
	appPort, _ := strconv.Atoi(portStr)
	ch, err := appchannel.NewHTTP(appchannel.HTTPConfig{Port: appPort})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ch.Close() })

	// Callee: internal gRPC server.
	srv, err := invoke.NewServer(invoke.ServerOptions{AppID: "callee", Namespace: "default", App: ch})
	if err != nil {
		b.Fatal(err)
	}
	cfg := transport.ServerConfig{Source: calleeSrc}
	if lean {
		cfg.Lean = transport.NewLeanServer(srv, 0, nil)
		b.Cleanup(func() { _ = cfg.Lean.Close() })
	}
	g := grpc.NewServer(transport.ServerOptions(cfg)...)
	srv.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	b.Cleanup(g.Stop)

	// Caller: HTTP API with an Invoker.
	pool := transport.NewPool(transport.Options{Source: callerSrc, Lean: lean})
	b.Cleanup(func() { _ = pool.Close() })
	inv, err := invoke.NewClient(invoke.ClientOptions{
		Resolver: staticResolver(ln.Addr().String()), Pool: pool, AppID: "caller", Namespace: "default",
	})
	if err != nil {
		b.Fatal(err)
	}
	api := serveAPI(b, httpapi.New(httpapi.Config{AppID: "caller", Invoker: inv}))

	runPairLoad(b, "http://"+api+"/v1.0/invoke/callee/method/echo")
}

// runPairLoad posts 1 KiB bodies to url from 16 concurrent clients and
// checks each echo.
func runPairLoad(b *testing.B, url string) {
	body := payload(1024)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	b.Cleanup(client.CloseIdleConnections)
	post := func() error {
		resp, err := client.Post(url, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			return err
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n != int64(len(body)) {
			return &badEcho{resp.StatusCode, n}
		}
		return nil
	}
	if err := post(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(8) // 16 clients on 2 CPUs, like the harness
	cpu0 := selfCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := post(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(selfCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

type badEcho struct {
	status int
	n      int64
}

func (e *badEcho) Error() string {
	return "echo: status " + strconv.Itoa(e.status) + ", " + strconv.FormatInt(e.n, 10) + " bytes"
}

// staticResolver resolves every app to one address.
type staticResolver string

func (r staticResolver) Resolve(context.Context, resolve.Request) (string, error) {
	return string(r), nil
}
func (staticResolver) Close() error { return nil }

// serveHTTP serves h with net/http's server (the apps).
func serveHTTP(tb testing.TB, h http.Handler) string {
	return serveOn(tb, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second})
}

// serveAPI serves a sidecar's HTTP API as tandemd does (proxy/h1server).
func serveAPI(tb testing.TB, h http.Handler) string {
	return serveOn(tb, &h1server.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second})
}

// serveOn runs srv on a new loopback listener until the test ends.
func serveOn(tb testing.TB, srv interface {
	Serve(net.Listener) error
	Close() error
}) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}
