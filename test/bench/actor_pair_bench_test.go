package bench

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tandemrun/tandem/actors"
	actorplacement "github.com/tandemrun/tandem/actors/placement"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/invoke/transport/transporttest"
	"github.com/tandemrun/tandem/placement"
	"github.com/tandemrun/tandem/proxy/appchannel"
	"github.com/tandemrun/tandem/proxy/httpapi"
)

// BenchmarkActorPair compares, in one process, an actor method call with
// a plain service invocation over the same two sidecars, wired as tandemd
// wires them (mTLS, the lean transport offered and used): HTTP client →
// caller's Dapr HTTP API → (actor: placement table lookup → CallActor;
// invocation: CallLocal) → callee → (actor: turn lock → PUT
// /actors/bench/{id}/method/echo) → echo app, with 1 KiB bodies and 16
// concurrent clients, each calling its own actor. An in-process placement
// service gives the callee the actors. allocs/op and B/op are the whole
// process's (client and app included) and do not depend on other load on
// the machine; cpu-ns/op does. Use -cpuprofile to see where a path's cost
// goes, e.g.
//
//	go test ./test/bench -run '^$' -bench 'ActorPair/path=actor' -benchtime 20000x -cpuprofile /tmp/actor.cpu
func BenchmarkActorPair(b *testing.B) {
	ca := transporttest.NewCA(b)
	callerSrc := ca.Source(b, "public", "default", "caller")
	calleeSrc := ca.Source(b, "public", "default", "callee")
	ctx, cancel := context.WithCancel(context.Background())
	var ran []chan error
	run := func(f func(context.Context) error) {
		done := make(chan error, 1)
		go func() { done <- f(ctx) }()
		ran = append(ran, done)
	}
	b.Cleanup(func() {
		cancel()
		for _, done := range ran {
			<-done
		}
	})

	// Placement, in process, plaintext.
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ps := placement.New(placement.Options{Listener: pln, NodeID: "bench", DisseminateTimeout: time.Minute})
	run(ps.Run)
	ps.SetLeader(true)
	placementAt := func(host, app string) *actorplacement.Config {
		return &actorplacement.Config{
			Addresses: []string{pln.Addr().String()}, HostName: host, AppID: app, Namespace: "default",
			DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		}
	}

	// The app: hosts type bench and echoes method echo, as an actor and as
	// a service.
	echo := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header()["Content-Type"] = r.Header["Content-Type"]
		_, _ = w.Write(body)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dapr/config", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"entities":["bench"]}`)
	})
	mux.HandleFunc("PUT /actors/bench/{id}/method/echo", echo)
	mux.HandleFunc("DELETE /actors/bench/{id}", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("POST /echo", echo)
	app := serveHTTP(b, mux)
	_, portStr, _ := net.SplitHostPort(app)
	appPort, _ := strconv.Atoi(portStr)
	ch, err := appchannel.NewHTTP(appchannel.HTTPConfig{Port: appPort})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ch.Close() })

	// Callee: actor host and internal server (gRPC and the lean transport).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	calleePool := transport.NewPool(transport.Options{Source: calleeSrc, Lean: true})
	b.Cleanup(func() { _ = calleePool.Close() })
	calleeRT, err := actors.New(actors.Config{AppID: "callee", Namespace: "default", Placement: placementAt(ln.Addr().String(), "callee"), Pool: calleePool, App: ch})
	if err != nil {
		b.Fatal(err)
	}
	run(calleeRT.Run)
	srv, err := invoke.NewServer(invoke.ServerOptions{AppID: "callee", Namespace: "default", App: ch, Actors: calleeRT})
	if err != nil {
		b.Fatal(err)
	}
	lean := transport.NewLeanServer(srv, 0, nil)
	g := grpc.NewServer(transport.ServerOptions(transport.ServerConfig{Source: calleeSrc, Lean: lean})...)
	srv.Register(g)
	go func() { _ = g.Serve(ln) }()
	b.Cleanup(func() { g.Stop(); _ = lean.Close() })

	// Caller: no app, the Dapr HTTP API.
	pool := transport.NewPool(transport.Options{Source: callerSrc, Lean: true})
	b.Cleanup(func() { _ = pool.Close() })
	inv, err := invoke.NewClient(invoke.ClientOptions{
		Resolver: staticResolver(ln.Addr().String()), Pool: pool, AppID: "caller", Namespace: "default",
	})
	if err != nil {
		b.Fatal(err)
	}
	callerRT, err := actors.New(actors.Config{AppID: "caller", Namespace: "default", Placement: placementAt("127.0.0.1:1", "caller"), Pool: pool})
	if err != nil {
		b.Fatal(err)
	}
	run(callerRT.Run)
	api := serveAPI(b, httpapi.New(httpapi.Config{AppID: "caller", Invoker: inv, Actors: callerRT}))
	lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
	defer lcancel()
	for {
		h, err := callerRT.LookupHost(lctx, "bench", "w-0")
		if err == nil && h == ln.Addr().String() {
			break
		}
		if lctx.Err() != nil {
			b.Fatalf("the caller's table never gave type bench to the callee: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	body := payload(1024)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	b.Cleanup(client.CloseIdleConnections)
	post := func(url string) error {
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
	for _, path := range []string{"invoke", "actor"} {
		b.Run("path="+path, func(b *testing.B) {
			url := func(worker int64) string {
				if path == "invoke" {
					return "http://" + api + "/v1.0/invoke/callee/method/echo"
				}
				return "http://" + api + "/v1.0/actors/bench/w-" + strconv.FormatInt(worker, 10) + "/method/echo"
			}
			var workers atomic.Int64
			if err := post(url(0)); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetParallelism(8) // 16 clients on 2 CPUs, like the harness
			cpu0 := selfCPU()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				u := url(workers.Add(1)) // each client its own actor
				for pb.Next() {
					if err := post(u); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(selfCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
