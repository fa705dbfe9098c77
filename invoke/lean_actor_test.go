package invoke

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/invoke/transport/transporttest"
)

// fakeActorHost records the actor calls it serves; answer, if set,
// answers them, else the call's data comes back with the caller's app ID
// (from its certificate) in a header.
type fakeActorHost struct {
	answer func(ctx context.Context, in *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error)
	mu     sync.Mutex
	got    []*internalsv1.InternalInvokeRequest
}

func (f *fakeActorHost) CallActor(ctx context.Context, in *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	f.mu.Lock()
	f.got = append(f.got, proto.Clone(in).(*internalsv1.InternalInvokeRequest))
	f.mu.Unlock()
	if f.answer != nil {
		return f.answer(ctx, in)
	}
	app, _, err := PeerApp(ctx)
	if err != nil {
		return nil, err
	}
	out := &internalsv1.InternalInvokeResponse{
		Status:  &internalsv1.Status{Code: 200},
		Headers: map[string]*internalsv1.ListStringValue{"x-caller": {Values: []string{app.AppID}}},
		Message: &commonv1.InvokeResponse{ContentType: in.GetMessage().GetContentType()},
	}
	if d := in.GetMessage().GetData(); d != nil {
		out.Message.Data = &anypb.Any{TypeUrl: d.TypeUrl, Value: d.Value}
	}
	return out, nil
}

func (f *fakeActorHost) CallActorReminder(context.Context, *internalsv1.Reminder) error { return nil }

func (f *fakeActorHost) last() *internalsv1.InternalInvokeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got[len(f.got)-1]
}

// actorCallee is an internal server with an actor host.
type actorCallee struct {
	addr      string
	grpcCalls atomic.Int64
	// conns counts the connections accepted.
	conns atomic.Int64
	// methods are what the lean hook observed.
	mu      sync.Mutex
	methods []string
	// stop ends the callee before the test does.
	stop func()
}

// startActorCallee serves host (nil: no actors) on gRPC and, unless
// noLean, the lean transport.
func startActorCallee(t *testing.T, src *identity.Source, host ActorHost, noLean bool) *actorCallee {
	t.Helper()
	return startActorCalleeOn(t, src, host, noLean, "127.0.0.1:0")
}

// startActorCalleeOn is startActorCallee listening on addr.
func startActorCalleeOn(t *testing.T, src *identity.Source, host ActorHost, noLean bool, addr string) *actorCallee {
	t.Helper()
	c := &actorCallee{}
	o := ServerOptions{AppID: "server", Namespace: "default", App: &echoApp{},
		LeanHook: func(ctx context.Context, method string, _ *internalsv1.InternalInvokeRequest, serve func(context.Context) (*internalsv1.InternalInvokeResponse, error)) (*internalsv1.InternalInvokeResponse, error) {
			c.mu.Lock()
			c.methods = append(c.methods, method)
			c.mu.Unlock()
			return serve(ctx)
		}}
	if host != nil {
		o.Actors = host
	}
	s, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	cfg := transport.ServerConfig{Source: src}
	if !noLean {
		cfg.Lean = transport.NewLeanServer(s, 0, nil)
		t.Cleanup(func() { _ = cfg.Lean.Close() })
	}
	g := grpc.NewServer(append(transport.ServerOptions(cfg),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			c.grpcCalls.Add(1)
			return h(ctx, req)
		}))...)
	s.Register(g)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(countingListener{ln, &c.conns}) }()
	t.Cleanup(g.Stop)
	c.addr = ln.Addr().String()
	c.stop = func() {
		g.Stop()
		if cfg.Lean != nil {
			_ = cfg.Lean.Close()
		}
	}
	return c
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// grpcCallActor is the call over gRPC, for comparison.
func grpcCallActor(ctx context.Context, pool *transport.Pool, addr string, req *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	cc, err := pool.Get(addr)
	if err != nil {
		return nil, err
	}
	out := new(internalsv1.InternalInvokeResponse)
	if err := cc.Invoke(ctx, internalsv1.ServiceInvocation_CallActor_FullMethodName, req, out); err != nil {
		return nil, err
	}
	return out, nil
}

func actorReq(method string, data *anypb.Any) *internalsv1.InternalInvokeRequest {
	return &internalsv1.InternalInvokeRequest{
		Ver:   internalsv1.APIVersion_V1,
		Actor: &internalsv1.Actor{ActorType: "counter", ActorId: "c-1"},
		Metadata: map[string]*internalsv1.ListStringValue{
			"Dapr-Reentrancy-Id": {Values: []string{"r-1"}}, "dapr-caller-app-id": {Values: []string{"caller"}},
		},
		Message: &commonv1.InvokeRequest{Method: method, Data: data, ContentType: "application/json",
			HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_PUT, Querystring: "a=b"}},
	}
}

// TestLeanActorCall: an actor call over the lean transport reaches the
// host as the same request gRPC's CallActor delivers (data, type URL,
// metadata, caller identity from the certificate) and comes back as the
// same answer, for bodies of every size; the callee observes it as
// CallActor, and the caller's request is left as it was.
func TestLeanActorCall(t *testing.T) {
	ca := transporttest.NewCA(t)
	host := &fakeActorHost{}
	callee := startActorCallee(t, ca.Source(t, testTD, "default", "server"), host, false)
	pool := transport.NewPool(transport.Options{Source: ca.Source(t, testTD, "default", "caller"), Lean: true})
	t.Cleanup(func() { _ = pool.Close() })
	big := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16)
	for _, c := range []struct {
		name string
		data *anypb.Any
	}{
		{"small", &anypb.Any{Value: []byte(`{"n":1}`)}},
		{"no data", nil},
		{"empty data", &anypb.Any{}},
		{"typed data", &anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.Duration", Value: []byte{8, 7}}},
		{"type URL only", &anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.Empty"}},
		{"300 KiB", &anypb.Any{Value: big}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req := actorReq("echo", c.data)
			sent := proto.Clone(req)
			want, err := grpcCallActor(ctx, pool, callee.addr, req)
			if err != nil {
				t.Fatal(err)
			}
			viaGRPC := host.last()
			grpcN := callee.grpcCalls.Load()
			got, handled, err := CallActor(ctx, pool, callee.addr, req)
			if err != nil || !handled {
				t.Fatalf("lean CallActor: handled %v, %v", handled, err)
			}
			if callee.grpcCalls.Load() != grpcN {
				t.Error("the lean call went over gRPC")
			}
			if !proto.Equal(host.last(), viaGRPC) {
				t.Errorf("host got\n%v\nover the lean transport, and\n%v\nover gRPC", host.last(), viaGRPC)
			}
			if !proto.Equal(got, want) {
				t.Errorf("answer\n%v\nover the lean transport, and\n%v\nover gRPC", got, want)
			}
			if v := got.GetHeaders()["x-caller"].GetValues(); len(v) != 1 || v[0] != "caller" {
				t.Errorf("host saw caller %v, want the certificate's app", v)
			}
			if !proto.Equal(req, sent) {
				t.Error("CallActor changed the caller's request")
			}
		})
	}
	if n := callee.conns.Load(); n != 2 {
		t.Errorf("callee accepted %d connections, want 2 (gRPC's and one lean connection, reused)", n)
	}
	callee.mu.Lock()
	defer callee.mu.Unlock()
	for _, m := range callee.methods {
		if m != internalsv1.ServiceInvocation_CallActor_FullMethodName {
			t.Errorf("lean hook observed method %q, want CallActor", m)
		}
	}
	if len(callee.methods) != 6 {
		t.Errorf("lean hook observed %d calls, want 6", len(callee.methods))
	}
}

// TestLeanActorErrors: the host's errors reach the caller as the same
// status over both transports (the router maps them the same), and a
// sidecar without actors answers Unimplemented.
func TestLeanActorErrors(t *testing.T) {
	ca := transporttest.NewCA(t)
	errs := []error{
		status.Error(codes.FailedPrecondition, "actor moved: actor counter||c-1 is owned by 10.0.0.1:50002, not by this host"),
		status.Error(codes.ResourceExhausted, "maximum stack depth exceeded"),
		status.Error(codes.Internal, "error invoke actor method: boom"),
		status.Error(codes.Unavailable, "no placement table"),
		status.Error(codes.NotFound, "no such thing"),
	}
	var next atomic.Int64
	host := &fakeActorHost{answer: func(context.Context, *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
		if i := next.Load(); i >= 0 {
			return nil, errs[i]
		}
		return &internalsv1.InternalInvokeResponse{Status: &internalsv1.Status{Code: 200}}, nil
	}}
	callee := startActorCallee(t, ca.Source(t, testTD, "default", "server"), host, false)
	bare := startActorCallee(t, ca.Source(t, testTD, "default", "server"), nil, false)
	pool := transport.NewPool(transport.Options{Source: ca.Source(t, testTD, "default", "caller"), Lean: true})
	t.Cleanup(func() { _ = pool.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, e := range errs {
		next.Store(int64(i))
		_, handled, err := CallActor(ctx, pool, callee.addr, actorReq("m", nil))
		if !handled || !proto.Equal(status.Convert(err).Proto(), status.Convert(e).Proto()) {
			t.Errorf("error %d: handled %v, %v; want %v", i, handled, err, e)
		}
		_, gerr := grpcCallActor(ctx, pool, callee.addr, actorReq("m", nil))
		if !proto.Equal(status.Convert(err).Proto(), status.Convert(gerr).Proto()) {
			t.Errorf("error %d: %v over the lean transport, %v over gRPC", i, err, gerr)
		}
	}
	_, handled, err := CallActor(ctx, pool, bare.addr, actorReq("m", nil))
	_, gerr := grpcCallActor(ctx, pool, bare.addr, actorReq("m", nil))
	if !handled || status.Code(err) != codes.Unimplemented || status.Convert(err).Message() != status.Convert(gerr).Message() {
		t.Errorf("sidecar without actors: %v over the lean transport, %v over gRPC; want Unimplemented", err, gerr)
	}
	// The pool's connections still work after the failures.
	next.Store(-1)
	if _, _, err := CallActor(ctx, pool, callee.addr, actorReq("m", nil)); err != nil {
		t.Fatal(err)
	}
}

// TestLeanActorFallback: a callee that offers only h2 (a daprd), or a pool
// without the lean transport, is left to gRPC (handled false, nothing
// sent).
func TestLeanActorFallback(t *testing.T) {
	ca := transporttest.NewCA(t)
	host := &fakeActorHost{}
	callee := startActorCallee(t, ca.Source(t, testTD, "default", "server"), host, true)
	for _, lean := range []bool{true, false} {
		pool := transport.NewPool(transport.Options{Source: ca.Source(t, testTD, "default", "caller"), Lean: lean})
		t.Cleanup(func() { _ = pool.Close() })
		_, handled, err := CallActor(t.Context(), pool, callee.addr, actorReq("m", nil))
		if handled || err != nil {
			t.Errorf("pool lean %v: handled %v, %v; want false, nil", lean, handled, err)
		}
	}
	if n := len(host.got); n != 0 {
		t.Errorf("host got %d calls, want none", n)
	}
}

// TestLeanActorDeadlineAndCancel: the caller's deadline reaches the host,
// cancelling the call cancels it at the host, and the pool works after.
func TestLeanActorDeadlineAndCancel(t *testing.T) {
	ca := transporttest.NewCA(t)
	type seen struct {
		deadline bool
		err      error
	}
	started, ended := make(chan struct{}, 1), make(chan seen, 1)
	host := &fakeActorHost{}
	host.answer = func(ctx context.Context, in *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
		if in.GetMessage().GetMethod() != "block" {
			return &internalsv1.InternalInvokeResponse{Status: &internalsv1.Status{Code: 200}}, nil
		}
		_, dl := ctx.Deadline()
		started <- struct{}{}
		select {
		case <-ctx.Done():
			ended <- seen{dl, ctx.Err()}
			return nil, ctx.Err()
		case <-time.After(10 * time.Second):
			ended <- seen{dl, nil}
			return nil, status.Error(codes.Internal, "the call's context did not end")
		}
	}
	callee := startActorCallee(t, ca.Source(t, testTD, "default", "server"), host, false)
	pool := transport.NewPool(transport.Options{Source: ca.Source(t, testTD, "default", "caller"), Lean: true})
	t.Cleanup(func() { _ = pool.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, _, err := CallActor(ctx, pool, callee.addr, actorReq("block", nil))
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("call past its deadline: %v, want DeadlineExceeded", err)
	}
	<-started
	if s := <-ended; !s.deadline || s.err == nil {
		t.Errorf("host saw a deadline %v and the end %v; want both", s.deadline, s.err)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := CallActor(ctx2, pool, callee.addr, actorReq("block", nil))
		errc <- err
	}()
	<-started
	cancel2()
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Errorf("cancelled call: %v, want Canceled", err)
	}
	select {
	case s := <-ended:
		if s.deadline || s.err == nil {
			t.Errorf("host saw a deadline %v and the end %v; want no deadline, cancelled", s.deadline, s.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the host's call was not cancelled with the caller's")
	}
	ctx3, cancel3 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel3()
	if _, _, err := CallActor(ctx3, pool, callee.addr, actorReq("ok", nil)); err != nil {
		t.Fatal(err)
	}
}

// TestLeanActorCalleeRestart: an actor call right after the callee
// restarted on its address (its reused connection, not checked first, was
// closed) goes again on a fresh connection and reaches the new host once.
func TestLeanActorCalleeRestart(t *testing.T) {
	ca := transporttest.NewCA(t)
	src := ca.Source(t, testTD, "default", "server")
	callee := startActorCallee(t, src, &fakeActorHost{}, false)
	pool := transport.NewPool(transport.Options{Source: ca.Source(t, testTD, "default", "caller"), Lean: true})
	t.Cleanup(func() { _ = pool.Close() })
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, handled, err := CallActor(ctx, pool, callee.addr, actorReq("echo", &anypb.Any{Value: []byte("1")})); err != nil || !handled {
			cancel()
			t.Fatalf("call before restart %d: handled %v, %v", i+1, handled, err)
		}
		callee.stop()
		host := &fakeActorHost{}
		callee = startActorCalleeOn(t, src, host, false, callee.addr)
		_, handled, err := CallActor(ctx, pool, callee.addr, actorReq("echo", &anypb.Any{Value: []byte("2")}))
		cancel()
		if err != nil || !handled {
			t.Fatalf("call after restart %d: handled %v, %v", i+1, handled, err)
		}
		host.mu.Lock()
		n := len(host.got)
		host.mu.Unlock()
		if n != 1 {
			t.Errorf("restart %d: the new host got %d calls, want 1", i+1, n)
		}
	}
}
