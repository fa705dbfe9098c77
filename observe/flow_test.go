package observe

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemrun/tandem/observe/otlptest"
)

// fakeCallee is a callee sidecar's internal server in miniature: it stamps
// the caller from the message (as with mTLS off), forwards the message's
// traceparent to an HTTP app and answers with the app's status.
type fakeCallee struct {
	internalsv1.UnimplementedServiceInvocationServer
	app    string // base URL
	client *http.Client
}

func (f *fakeCallee) CallLocal(ctx context.Context, in *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	method := in.GetMessage().GetMethod()
	if method == "fail" {
		return nil, status.Error(codes.PermissionDenied, "denied")
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.app+"/"+method, nil)
	if tp := firstValue(in.GetMetadata(), "traceparent"); tp != "" {
		req.Header.Set("traceparent", tp)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp.Body.Close()
	return &internalsv1.InternalInvokeResponse{Status: &internalsv1.Status{Code: int32(resp.StatusCode)}}, nil
}

type flow struct {
	callerURL string
	gotTP     chan string // traceparent the app received
}

// startFlow wires caller HTTP API -> caller pool -> callee internal
// server -> app, each observed by the given metrics and tracing.
func startFlow(t *testing.T, callerM, calleeM *Metrics, callerT, calleeT *Tracing) *flow {
	t.Helper()
	f := &flow{gotTP: make(chan string, 16)}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.gotTP <- r.Header.Get("traceparent")
		if strings.HasSuffix(r.URL.Path, "/boom") {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(app.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	calleeHooks := NewHooks(calleeM, calleeT, nil)
	srv := grpc.NewServer(calleeHooks.InternalServerOptions...)
	transport := http.RoundTripper(http.DefaultTransport.(*http.Transport).Clone())
	if calleeHooks.AppHTTPTransport != nil {
		transport = calleeHooks.AppHTTPTransport(transport)
	}
	internalsv1.RegisterServiceInvocationServer(srv, &fakeCallee{app: app.URL, client: &http.Client{Transport: transport}})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	callerHooks := NewHooks(callerM, callerT, nil)
	cc, err := grpc.NewClient(ln.Addr().String(), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, callerHooks.DialOptions...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })

	// The caller's HTTP API: /v1.0/invoke/callee/method/<m>, forwarding the
	// traceparent header as the invoke package does (message metadata and
	// outgoing gRPC metadata).
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := strings.TrimPrefix(r.URL.Path, "/v1.0/invoke/callee/method/")
		md := map[string]*internalsv1.ListStringValue{
			calleeAppIDKey: {Values: []string{"callee"}},
			callerAppIDKey: {Values: []string{"caller"}},
		}
		ctx := r.Context()
		if tp := r.Header.Get("traceparent"); tp != "" {
			md["traceparent"] = &internalsv1.ListStringValue{Values: []string{tp}}
			ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", tp)
		}
		out := new(internalsv1.InternalInvokeResponse)
		err := cc.Invoke(ctx, callLocalMethod, &internalsv1.InternalInvokeRequest{
			Ver: internalsv1.APIVersion_V1, Metadata: md,
			Message: &commonv1.InvokeRequest{Method: method, HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_POST}},
		}, out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		w.WriteHeader(int(out.GetStatus().GetCode()))
	})
	handler := http.Handler(api)
	if callerHooks.HTTPMiddleware != nil {
		handler = callerHooks.HTTPMiddleware(handler)
	}
	hs := httptest.NewServer(handler)
	t.Cleanup(hs.Close)
	f.callerURL = hs.URL
	return f
}

func (f *flow) call(t *testing.T, method, traceparent string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.callerURL+"/v1.0/invoke/callee/method/"+method, nil)
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestInvocationMetricsThroughRealGRPC(t *testing.T) {
	callerM, callerReg := newTestMetrics(t, MetricsOptions{AppID: "caller"})
	calleeM, calleeReg := newTestMetrics(t, MetricsOptions{AppID: "callee"})
	f := startFlow(t, callerM, calleeM, nil, nil)
	for range 3 {
		if code := f.call(t, "ok", ""); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	f.call(t, "boom", "")
	if code := f.call(t, "fail", ""); code != http.StatusForbidden {
		t.Fatalf("fail: status %d", code)
	}

	checks := []struct {
		reg  *prometheus.Registry
		name string
		want map[string]float64
	}{
		{callerReg, "dapr_runtime_service_invocation_req_sent_total", map[string]float64{"app_id=caller,dst_app_id=callee,type=unary": 5}},
		{callerReg, "dapr_runtime_service_invocation_res_recv_total", map[string]float64{
			"app_id=caller,src_app_id=callee,status=200,type=unary": 3,
			"app_id=caller,src_app_id=callee,status=500,type=unary": 1,
			"app_id=caller,src_app_id=callee,status=7,type=unary":   1,
		}},
		{callerReg, "dapr_runtime_service_invocation_res_recv_latency_ms", map[string]float64{
			"app_id=caller,src_app_id=callee,status=200": 3,
			"app_id=caller,src_app_id=callee,status=500": 1,
			"app_id=caller,src_app_id=callee,status=7":   1,
		}},
		{callerReg, "dapr_http_server_request_count", map[string]float64{
			"app_id=caller,method=POST,path=,status=200": 3,
			"app_id=caller,method=POST,path=,status=500": 1,
			"app_id=caller,method=POST,path=,status=403": 1,
		}},
		{calleeReg, "dapr_runtime_service_invocation_req_recv_total", map[string]float64{"app_id=callee,src_app_id=caller": 5}},
		{calleeReg, "dapr_runtime_service_invocation_res_sent_total", map[string]float64{
			"app_id=callee,dst_app_id=caller,status=200": 3,
			"app_id=callee,dst_app_id=caller,status=500": 1,
			"app_id=callee,dst_app_id=caller,status=7":   1,
		}},
		{calleeReg, "dapr_grpc_io_server_completed_rpcs", map[string]float64{
			"app_id=callee,grpc_server_method=" + callLocalMethod + ",grpc_server_status=OK":               4,
			"app_id=callee,grpc_server_method=" + callLocalMethod + ",grpc_server_status=PermissionDenied": 1,
		}},
		{calleeReg, "dapr_grpc_io_server_server_latency", map[string]float64{
			"app_id=callee,grpc_server_method=" + callLocalMethod + ",grpc_server_status=OK":               4,
			"app_id=callee,grpc_server_method=" + callLocalMethod + ",grpc_server_status=PermissionDenied": 1,
		}},
	}
	for _, c := range checks {
		got := series(t, c.reg, c.name)
		if !equalSeries(got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
}

func equalSeries(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

const (
	rootTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	rootSpanID  = "00f067aa0ba902b7"
	rootParent  = "00-" + rootTraceID + "-" + rootSpanID + "-01"
)

func newTestTracing(t *testing.T, appID string, rcv *otlptest.Receiver, rate float64) *Tracing {
	t.Helper()
	tr, err := NewTracing(context.Background(), TracingOptions{
		AppID: appID, SamplingRate: rate,
		OTLP: &OTLPOptions{Protocol: ProtocolGRPC, Endpoint: rcv.Addr(), Insecure: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr
}

func TestTraceAcrossHops(t *testing.T) {
	rcv := otlptest.Start(t)
	callerT := newTestTracing(t, "caller", rcv, 1)
	calleeT := newTestTracing(t, "callee", rcv, 1)
	f := startFlow(t, nil, nil, callerT, calleeT)
	if code := f.call(t, "orders", rootParent); code != 200 {
		t.Fatalf("status %d", code)
	}
	appTP := <-f.gotTP
	_ = callerT.ForceFlush(context.Background())
	_ = calleeT.ForceFlush(context.Background())
	spans := rcv.WaitTrace(t, rootTraceID, 4, 5*time.Second)

	byName := map[string]otlptest.Span{}
	for _, s := range spans {
		byName[s.Service+" "+s.Name] = s
	}
	chain := []struct{ key, parentKey string }{
		{"caller CallLocal/callee/orders", ""},
		{"caller " + callLocalMethod, "caller CallLocal/callee/orders"},
		{"callee CallLocal/callee/orders", "caller " + callLocalMethod},
		{"callee CallApp/callee/orders", "callee CallLocal/callee/orders"},
	}
	for _, c := range chain {
		s, ok := byName[c.key]
		if !ok {
			t.Fatalf("no span %q in %+v", c.key, spans)
		}
		wantParent := rootSpanID
		if c.parentKey != "" {
			wantParent = byName[c.parentKey].SpanID
		}
		if s.ParentSpanID != wantParent {
			t.Errorf("%s: parent %s, want %s", c.key, s.ParentSpanID, wantParent)
		}
	}
	if s := byName["callee CallLocal/callee/orders"]; s.Attributes[attrInvokeMethod] != "orders" || s.Attributes[attrPeerName] != "caller" {
		t.Errorf("callee span attributes %v", s.Attributes)
	}
	wantTP := "00-" + rootTraceID + "-" + byName["callee CallApp/callee/orders"].SpanID + "-01"
	if appTP != wantTP {
		t.Errorf("app got traceparent %q, want %q", appTP, wantTP)
	}
}

func TestTracingOffPropagatesAsIs(t *testing.T) {
	tr, err := NewTracing(context.Background(), TracingOptions{AppID: "a", SamplingRate: 0})
	if err != nil || tr != nil {
		t.Fatalf("rate 0: tracing %v, err %v; want nil, nil", tr, err)
	}
	h := NewHooks(nil, nil, nil)
	if h.HTTPMiddleware != nil || len(h.GRPCServerOptions)+len(h.InternalServerOptions)+len(h.DialOptions) != 0 || h.AppHTTPTransport != nil ||
		h.LeanClient != nil || h.LeanServer != nil {
		t.Fatalf("hooks with nothing enabled: %+v", h)
	}
	f := startFlow(t, nil, nil, nil, nil)
	f.call(t, "x", rootParent)
	if got := <-f.gotTP; got != rootParent {
		t.Errorf("app got %q, want the caller's traceparent unchanged", got)
	}
}

func TestUnsampledParentIsNotExported(t *testing.T) {
	rcv := otlptest.Start(t)
	callerT := newTestTracing(t, "caller", rcv, 1)
	calleeT := newTestTracing(t, "callee", rcv, 1)
	f := startFlow(t, nil, nil, callerT, calleeT)
	unsampled := "00-" + rootTraceID + "-" + rootSpanID + "-00"
	f.call(t, "x", unsampled)
	got := <-f.gotTP
	if !strings.HasPrefix(got, "00-"+rootTraceID+"-") || !strings.HasSuffix(got, "-00") {
		t.Errorf("app got %q: want the same trace, not sampled", got)
	}
	_ = callerT.ForceFlush(context.Background())
	_ = calleeT.ForceFlush(context.Background())
	if n := len(rcv.Spans()); n != 0 {
		t.Errorf("%d spans exported for an unsampled trace", n)
	}
}
