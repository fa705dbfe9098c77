package observe_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/invoke/transport/transporttest"
	"github.com/tandemrun/tandem/observe"
	"github.com/tandemrun/tandem/observe/otlptest"
)

// TestLeanTransportObservedAsGRPC makes the same calls between two sidecars
// (invoke's Client and Server over mTLS, observed as tandemd wires them)
// once over Dapr's gRPC and once over the lean transport, and requires the
// same metrics (names, labels, counts) on both sides and the same spans
// (names, kinds, attributes, parent links), with the trace context and
// baggage reaching the app the same way.
func TestLeanTransportObservedAsGRPC(t *testing.T) {
	rcv := otlptest.Start(t)
	grpcRun := runObservedCalls(t, rcv, false, "4bf92f3577b34da6a3ce929d0e0e4736")
	leanRun := runObservedCalls(t, rcv, true, "5bf92f3577b34da6a3ce929d0e0e4736")
	if leanRun.grpcCalls != 0 || grpcRun.grpcCalls == 0 {
		t.Fatalf("gRPC calls at the callee: %d with the lean transport, %d without; want 0 and some", leanRun.grpcCalls, grpcRun.grpcCalls)
	}
	for _, name := range []string{
		"dapr_runtime_service_invocation_req_sent_total",
		"dapr_runtime_service_invocation_res_recv_total",
		"dapr_runtime_service_invocation_res_recv_latency_ms",
		"dapr_runtime_service_invocation_req_recv_total",
		"dapr_runtime_service_invocation_res_sent_total",
		"dapr_grpc_io_server_completed_rpcs",
		"dapr_grpc_io_server_server_latency",
	} {
		g, l := grpcRun.metrics[name], leanRun.metrics[name]
		if len(g) == 0 {
			t.Errorf("%s: nothing recorded over gRPC", name)
		}
		if fmt.Sprint(g) != fmt.Sprint(l) {
			t.Errorf("%s:\n gRPC %v\n lean %v", name, g, l)
		}
	}
	if fmt.Sprint(grpcRun.spans) != fmt.Sprint(leanRun.spans) {
		t.Errorf("spans differ:\n gRPC %s\n lean %s", strings.Join(grpcRun.spans, "\n      "), strings.Join(leanRun.spans, "\n      "))
	}
	if fmt.Sprint(grpcRun.app) != fmt.Sprint(leanRun.app) {
		t.Errorf("what the app saw differs:\n gRPC %v\n lean %v", grpcRun.app, leanRun.app)
	}
}

type observedRun struct {
	metrics   map[string][]string // family -> sorted "labels value"
	spans     []string            // sorted span descriptions
	app       []string            // per call: the app's parent span, baggage
	grpcCalls int
}

// parityApp answers with x-status (default 200) and the body it got, and
// notes the trace context and baggage it was given.
type parityApp struct {
	mu   sync.Mutex
	seen map[string][2]string // method -> traceparent, baggage
}

func (a *parityApp) Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error) {
	md := req.Message.GetMetadata()
	first := func(k string) string {
		if v := md[k]; v != nil && len(v.Values) > 0 {
			return v.Values[0]
		}
		return ""
	}
	method := req.Message.GetMessage().GetMethod()
	a.mu.Lock()
	a.seen[method] = [2]string{first("traceparent"), first("baggage")}
	a.mu.Unlock()
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
	}
	code := int32(200)
	if method == "boom" {
		code = 500
	}
	return &invoke.Response{
		Message: &internalsv1.InternalInvokeResponse{Status: &internalsv1.Status{Code: code}, Message: &commonv1.InvokeResponse{}},
		Body:    io.NopCloser(bytes.NewReader(body)),
	}, nil
}

// parityActors is an actor host: it echoes a call's data, and fails
// method "moved" as a host that no longer owns the actor.
type parityActors struct{}

func (parityActors) CallActor(_ context.Context, in *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	if in.GetMessage().GetMethod() == "moved" {
		return nil, status.Error(codes.FailedPrecondition, "actor moved")
	}
	return &internalsv1.InternalInvokeResponse{Status: &internalsv1.Status{Code: 200},
		Message: &commonv1.InvokeResponse{Data: &anypb.Any{Value: in.GetMessage().GetData().GetValue()}}}, nil
}

func (parityActors) CallActorReminder(context.Context, *internalsv1.Reminder) error { return nil }

type oneResolver struct{ addr string }

func (r oneResolver) Resolve(context.Context, resolve.Request) (string, error) { return r.addr, nil }
func (oneResolver) Close() error                                               { return nil }

func runObservedCalls(t *testing.T, rcv *otlptest.Receiver, lean bool, traceID string) observedRun {
	t.Helper()
	ca := transporttest.NewCA(t)
	callerReg, calleeReg := prometheus.NewRegistry(), prometheus.NewRegistry()
	callerM, err := observe.NewMetrics(callerReg, observe.MetricsOptions{AppID: "caller"})
	if err != nil {
		t.Fatal(err)
	}
	calleeM, err := observe.NewMetrics(calleeReg, observe.MetricsOptions{AppID: "callee"})
	if err != nil {
		t.Fatal(err)
	}
	tracing := func(app string) *observe.Tracing {
		tr, err := observe.NewTracing(context.Background(), observe.TracingOptions{AppID: app, SamplingRate: 1,
			OTLP: &observe.OTLPOptions{Protocol: observe.ProtocolGRPC, Endpoint: rcv.Addr(), Insecure: true}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
		return tr
	}
	callerT, calleeT := tracing("caller"), tracing("callee")
	callerHooks := observe.NewHooks(callerM, callerT, nil)
	calleeHooks := observe.NewHooks(calleeM, calleeT, nil)

	// The callee, wired as proxy wires it.
	app := &parityApp{seen: map[string][2]string{}}
	srv, err := invoke.NewServer(invoke.ServerOptions{AppID: "callee", Namespace: "default", App: app, Actors: parityActors{},
		Authorize: func(_ context.Context, _ identity.App, req *invoke.Request) error {
			if req.Message.GetMessage().GetMethod() == "denied" {
				return errors.New("access control policy has denied access to method denied")
			}
			return nil
		},
		LeanHook: calleeHooks.LeanServer})
	if err != nil {
		t.Fatal(err)
	}
	leanSrv := transport.NewLeanServer(srv, 0, nil)
	t.Cleanup(func() { _ = leanSrv.Close() })
	var grpcCalls int
	var gmu sync.Mutex
	count := grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		gmu.Lock()
		grpcCalls++
		gmu.Unlock()
		return h(ctx, req)
	})
	countS := grpc.ChainStreamInterceptor(func(s any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		gmu.Lock()
		grpcCalls++
		gmu.Unlock()
		return h(s, ss)
	})
	opts := append(append([]grpc.ServerOption{count, countS}, calleeHooks.InternalServerOptions...),
		transport.ServerOptions(transport.ServerConfig{Source: ca.Source(t, "public", "default", "callee"), Lean: leanSrv})...)
	g := grpc.NewServer(opts...)
	srv.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)

	// The caller, wired as cmd/tandemd wires it.
	pool := transport.NewPool(transport.Options{Source: ca.Source(t, "public", "default", "caller"),
		DialOptions: callerHooks.DialOptions, Lean: lean})
	t.Cleanup(func() { _ = pool.Close() })
	client, err := invoke.NewClient(invoke.ClientOptions{Resolver: oneResolver{ln.Addr().String()}, Pool: pool,
		AppID: "caller", Namespace: "default", LeanHook: callerHooks.LeanClient})
	if err != nil {
		t.Fatal(err)
	}

	big := bytes.Repeat([]byte("x"), 200<<10)
	calls := []struct {
		method string
		body   []byte
		stream bool
	}{
		{"unary", []byte("small"), false},
		{"streamed", []byte("small"), true}, // the HTTP API's way
		{"big", big, false},
		{"boom", nil, true},
		{"denied", []byte("x"), false},
	}
	for i, c := range calls {
		spanID := fmt.Sprintf("%016x", i+1)
		md := map[string]*internalsv1.ListStringValue{
			"traceparent": {Values: []string{"00-" + traceID + "-" + spanID + "-01"}},
			"baggage":     {Values: []string{"k=v" + c.method}},
		}
		req := &invoke.Request{
			Message: &internalsv1.InternalInvokeRequest{Metadata: md, Message: &commonv1.InvokeRequest{
				Method: c.method, HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_POST}}},
			ContentLength: int64(len(c.body)), StreamResponse: c.stream,
		}
		if c.body != nil {
			req.Body = bytes.NewReader(c.body)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := client.Invoke(ctx, "callee", req)
		if c.method == "denied" {
			if err == nil {
				resp.Body.Close()
				t.Fatalf("lean=%v: call %s was not denied", lean, c.method)
			}
			cancel()
			continue
		}
		if err != nil {
			t.Fatalf("lean=%v: call %s: %v", lean, c.method, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if err != nil || !bytes.Equal(got, c.body) {
			t.Fatalf("lean=%v: call %s: %d bytes back, %v", lean, c.method, len(got), err)
		}
	}
	// Actor calls, as the actor router makes them: the lean transport's
	// or gRPC's CallActor.
	for _, method := range []string{"echo", "echo", "moved"} {
		req := &internalsv1.InternalInvokeRequest{Ver: internalsv1.APIVersion_V1,
			Actor: &internalsv1.Actor{ActorType: "counter", ActorId: "1"},
			Metadata: map[string]*internalsv1.ListStringValue{
				"traceparent": {Values: []string{"00-" + traceID + "-00000000000000aa-01"}},
			},
			Message: &commonv1.InvokeRequest{Method: method, Data: &anypb.Any{Value: []byte("a")}}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var err error
		if lean {
			var handled bool
			_, handled, err = invoke.CallActor(ctx, pool, ln.Addr().String(), req)
			if !handled {
				t.Fatal("the lean actor call was not made")
			}
		} else {
			var cc *grpc.ClientConn
			if cc, err = pool.Get(ln.Addr().String()); err == nil {
				err = cc.Invoke(ctx, internalsv1.ServiceInvocation_CallActor_FullMethodName, req, new(internalsv1.InternalInvokeResponse))
			}
		}
		cancel()
		if (method == "moved") != (status.Code(err) == codes.FailedPrecondition) {
			t.Fatalf("lean=%v: actor call %s: %v", lean, method, err)
		}
	}
	_ = callerT.ForceFlush(context.Background())
	_ = calleeT.ForceFlush(context.Background())
	// Per call: a client span (caller), a server span (callee); the denied
	// call too.
	spans := rcv.WaitTrace(t, traceID, 2*len(calls), 5*time.Second)
	byID := map[string]otlptest.Span{}
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	run := observedRun{metrics: map[string][]string{}}
	for _, s := range spans {
		parent := "root " + s.ParentSpanID
		if p, ok := byID[s.ParentSpanID]; ok {
			parent = p.Service + " " + p.Name
		}
		var attrs []string
		for k, v := range s.Attributes {
			attrs = append(attrs, k+"="+v)
		}
		sort.Strings(attrs)
		run.spans = append(run.spans, fmt.Sprintf("%s %s %v <- %s %v", s.Service, s.Name, s.Kind, parent, attrs))
	}
	sort.Strings(run.spans)
	for _, c := range calls {
		seen, ok := app.seen[c.method]
		if !ok {
			if c.method != "denied" {
				t.Errorf("lean=%v: the app did not get call %s", lean, c.method)
			}
			continue
		}
		parts := strings.Split(seen[0], "-")
		desc := "no traceparent"
		if len(parts) == 4 {
			p := byID[parts[2]]
			desc = fmt.Sprintf("same trace %v, parent %s %s", parts[1] == traceID, p.Service, p.Name)
		}
		run.app = append(run.app, c.method+": "+desc+", baggage "+seen[1])
	}
	for reg, side := range map[*prometheus.Registry]string{callerReg: "caller", calleeReg: "callee"} {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				var kv []string
				for _, l := range m.GetLabel() {
					kv = append(kv, l.GetName()+"="+l.GetValue())
				}
				v := m.GetCounter().GetValue()
				if m.Histogram != nil {
					v = float64(m.GetHistogram().GetSampleCount())
				}
				run.metrics[mf.GetName()] = append(run.metrics[mf.GetName()], fmt.Sprintf("%s %s %g", side, strings.Join(kv, ","), v))
			}
			sort.Strings(run.metrics[mf.GetName()])
		}
	}
	gmu.Lock()
	run.grpcCalls = grpcCalls
	gmu.Unlock()
	return run
}
