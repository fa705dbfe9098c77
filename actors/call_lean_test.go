package actors

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/invoke/transport/transporttest"
)

// echoActorApp hosts type "counter": method "fail" answers 500, method
// "block" waits for its context to end, any other echoes its body with the
// caller and the reentrancy ID it saw in headers.
type echoActorApp struct {
	calls     atomic.Int32
	started   chan struct{}
	cancelled chan error
}

func (a *echoActorApp) Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error) {
	method := req.Message.GetMessage().GetMethod()
	answer := func(code int32, body string, h map[string]*internalsv1.ListStringValue) (*invoke.Response, error) {
		return &invoke.Response{
			Message: &internalsv1.InternalInvokeResponse{Status: &internalsv1.Status{Code: code}, Headers: h, Message: &commonv1.InvokeResponse{ContentType: "text/plain"}},
			Body:    io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
		}, nil
	}
	if method == "dapr/config" {
		return answer(200, `{"entities":["counter"],"reentrancy":{"enabled":true}}`, nil)
	}
	a.calls.Add(1)
	switch {
	case strings.HasSuffix(method, "/method/fail"):
		return answer(500, "boom", nil)
	case strings.HasSuffix(method, "/method/block"):
		a.started <- struct{}{}
		<-ctx.Done()
		a.cancelled <- ctx.Err()
		return nil, ctx.Err()
	}
	if req.Body == nil { // a deactivation
		return answer(200, "", nil)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	md := req.Message.GetMetadata()
	return answer(200, string(body), map[string]*internalsv1.ListStringValue{
		"x-caller":     md[callerAppHeader],
		"x-reentrancy": md[strings.ToLower(ReentrancyIDHeader)],
	})
}

// serveActorHost serves r's CallActor on an internal server: gRPC, and
// the lean transport unless noLean (a daprd, as far as the transport
// goes). grpcCalls counts the calls that came over gRPC.
func serveActorHost(t *testing.T, src *identity.Source, r *Runtime, noLean bool) (addr string, grpcCalls *atomic.Int64) {
	t.Helper()
	s, err := invoke.NewServer(invoke.ServerOptions{AppID: "app", Namespace: "default", App: r.cfg.App, Actors: r})
	if err != nil {
		t.Fatal(err)
	}
	cfg := transport.ServerConfig{Source: src}
	if !noLean {
		cfg.Lean = transport.NewLeanServer(s, 0, nil)
		t.Cleanup(func() { _ = cfg.Lean.Close() })
	}
	grpcCalls = new(atomic.Int64)
	g := grpc.NewServer(append(transport.ServerOptions(cfg),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			grpcCalls.Add(1)
			return h(ctx, req)
		}))...)
	s.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return ln.Addr().String(), grpcCalls
}

func counterCall(method, data string) *internalsv1.InternalInvokeRequest {
	return &internalsv1.InternalInvokeRequest{
		Ver:   internalsv1.APIVersion_V1,
		Actor: &internalsv1.Actor{ActorType: "counter", ActorId: "1"},
		// What a client says of itself is replaced by the caller's stamp.
		Metadata: map[string]*internalsv1.ListStringValue{
			callerAppHeader:    {Values: []string{"impostor"}},
			ReentrancyIDHeader: {Values: []string{"r-1"}},
		},
		Message: &commonv1.InvokeRequest{Method: method, Data: &anypb.Any{Value: []byte(data)},
			HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_PUT}},
	}
}

// TestCallRemoteLeanAndGRPC: the router's call of an actor on another
// Tandem host goes over the lean transport, and over gRPC's CallActor to
// a host that offers only h2 (a daprd); either way the owner's runtime
// serves it in the actor's turn with the caller's identity and the
// reentrancy ID, app failures come back the same, an actor that moved is
// errMoved (which the router routes again), and cancelling the call
// cancels it on the owner.
func TestCallRemoteLeanAndGRPC(t *testing.T) {
	ca := transporttest.NewCA(t)
	for _, tc := range []struct {
		name   string
		noLean bool
	}{{"lean transport", false}, {"h2-only owner: gRPC", true}} {
		t.Run(tc.name, func(t *testing.T) {
			app := &echoActorApp{started: make(chan struct{}, 1), cancelled: make(chan error, 1)}
			owner, _, st, _ := runOnFakePlacement(t, app, 0)
			if _, err := st.Recv(); err != nil {
				t.Fatal(err)
			}
			placementRound(t, st, "lock", 1, nil)
			placementRound(t, st, "update", 1, counterTable("127.0.0.1:5000"))
			placementRound(t, st, "unlock", 1, nil)
			addr, grpcCalls := serveActorHost(t, ca.Source(t, "public", "default", "app"), owner, tc.noLean)

			pool := transport.NewPool(transport.Options{Source: ca.Source(t, "public", "default", "caller"), Lean: true})
			t.Cleanup(func() { _ = pool.Close() })
			caller := &Runtime{cfg: Config{AppID: "caller", Namespace: "default", Pool: pool}}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()

			resp, err := caller.callRemote(ctx, addr, counterCall("echo", "hello"))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(resp.GetMessage().GetData().GetValue()); got != "hello" {
				t.Errorf("answer %q, want the echo", got)
			}
			h := resp.GetHeaders()
			if v := h["x-caller"].GetValues(); len(v) != 1 || v[0] != "caller" {
				t.Errorf("owner's app saw caller %v, want the caller's stamp", v)
			}
			if v := h["x-reentrancy"].GetValues(); len(v) != 1 || v[0] != "r-1" {
				t.Errorf("owner's app saw reentrancy ID %v, want r-1", v)
			}

			_, err = caller.callRemote(ctx, addr, counterCall("fail", ""))
			var re *RemoteError
			if !errors.As(err, &re) || !strings.Contains(re.Error(), "boom") {
				t.Errorf("app failure: %v, want a *RemoteError with the app's answer", err)
			}

			// The owner's table moves the actor elsewhere.
			placementRound(t, st, "lock", 2, nil)
			placementRound(t, st, "update", 2, counterTable("10.9.9.9:5000"))
			placementRound(t, st, "unlock", 2, nil)
			if _, err := caller.callRemote(ctx, addr, counterCall("echo", "x")); !errors.Is(err, errMoved) {
				t.Errorf("call of a moved actor: %v, want errMoved", err)
			}
			placementRound(t, st, "lock", 3, nil)
			placementRound(t, st, "update", 3, counterTable("127.0.0.1:5000"))
			placementRound(t, st, "unlock", 3, nil)

			cctx, ccancel := context.WithCancel(ctx)
			errc := make(chan error, 1)
			go func() {
				_, err := caller.callRemote(cctx, addr, counterCall("block", ""))
				errc <- err
			}()
			<-app.started
			ccancel()
			if err := <-errc; err == nil || !strings.Contains(err.Error(), "context canceled") {
				t.Errorf("cancelled call: %v, want context canceled", err)
			}
			select {
			case <-app.cancelled:
			case <-time.After(5 * time.Second):
				t.Fatal("the owner's call was not cancelled with the caller's")
			}
			if _, err := caller.callRemote(ctx, addr, counterCall("echo", "again")); err != nil {
				t.Fatalf("call after the cancelled one: %v", err)
			}

			n := grpcCalls.Load()
			if tc.noLean && n != 5 || !tc.noLean && n != 0 {
				t.Errorf("%d calls came over gRPC (lean transport offered: %v)", n, !tc.noLean)
			}
		})
	}
}
