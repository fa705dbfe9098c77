// Command xdsclient is a proxyless gRPC client with no sidecar: it reads
// GRPC_XDS_BOOTSTRAP, dials xds:///<app-id> with xDS credentials (the
// certificates come from the bootstrap's certificate provider) and calls
// the app's own gRPC service, Dapr's AppCallback OnInvoke, straight through
// the callee's sidecar.
//
// It listens on 127.0.0.1:--port for the test driving it:
//
//	GET /call?app=echo&method=whoami[&data=ping]
//	-> {"code":"OK","data":"<answer>","peer":"<sidecar addr>","elapsed_ms":"3"}
//
// One connection per app, made on first use and kept.
//
// For the benchmark (test/bench TestProxylessLoad) it also drives load from
// its own process, so that the client's CPU is not the sidecars':
//
//	GET /load?target=xds:///echo&qps=1000&duration=10s&workers=16&size=1024
//	GET /load?target=127.0.0.1:50001&app_id=echo&...   (a sidecar's gRPC port)
//	-> {"requests":10000,"errors":0,"p50_ns":...,"p90_ns":...,"p99_ns":...}
//
// qps 0 (the default) calls as fast as the workers go.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	_ "google.golang.org/grpc/xds" // the xds:/// resolver and balancers
)

func main() {
	port := flag.Int("port", 0, "port of the control endpoint")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		log.Error("xds credentials", "error", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	conns := map[string]runtimev1.AppCallbackClient{}
	client := func(app string) (runtimev1.AppCallbackClient, error) {
		mu.Lock()
		defer mu.Unlock()
		if c, ok := conns[app]; ok {
			return c, nil
		}
		cc, err := grpc.NewClient("xds:///"+app, grpc.WithTransportCredentials(creds))
		if err != nil {
			return nil, err
		}
		conns[app] = runtimev1.NewAppCallbackClient(cc)
		return conns[app], nil
	}
	load := &loadConns{xds: creds, conns: map[string]runtimev1.AppCallbackClient{}}
	http.HandleFunc("/load", load.serveLoad)
	http.HandleFunc("/call", func(w http.ResponseWriter, r *http.Request) {
		cb, err := client(r.URL.Query().Get("app"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		data := r.URL.Query().Get("data")
		if data == "" {
			data = "ping"
		}
		var p peer.Peer
		start := time.Now()
		resp, err := cb.OnInvoke(ctx, &commonv1.InvokeRequest{
			Method: r.URL.Query().Get("method"), Data: &anypb.Any{Value: []byte(data)}, ContentType: "text/plain",
		}, grpc.Peer(&p))
		out := map[string]string{"code": status.Code(err).String(), "elapsed_ms": strconv.FormatInt(time.Since(start).Milliseconds(), 10)}
		if err != nil {
			out["error"] = err.Error()
		} else {
			out["data"] = string(resp.GetData().GetValue())
		}
		if p.Addr != nil {
			out["peer"] = p.Addr.String()
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		log.Error("listen", "error", err)
		os.Exit(1)
	}
	log.Info("xds client ready", "addr", ln.Addr().String())
	log.Error("serve", "error", http.Serve(ln, nil))
}
