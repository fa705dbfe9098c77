package grpcapi

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/resolve"
)

type call struct {
	appID string
	req   *invoke.Request
	body  []byte
}

type fakeInvoker struct {
	mu      sync.Mutex
	calls   []call
	respond func() (*invoke.Response, error)
}

func (f *fakeInvoker) Invoke(_ context.Context, appID string, req *invoke.Request) (*invoke.Response, error) {
	b, _ := io.ReadAll(req.Body)
	f.mu.Lock()
	f.calls = append(f.calls, call{appID, req, b})
	f.mu.Unlock()
	return f.respond()
}

func (f *fakeInvoker) last() call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[len(f.calls)-1]
}

func resp(code int32, headers map[string]string, ct, typeURL, body string) *invoke.Response {
	md := map[string]*internalsv1.ListStringValue{}
	for k, v := range headers {
		md[k] = &internalsv1.ListStringValue{Values: []string{v}}
	}
	m := &commonv1.InvokeResponse{ContentType: ct}
	if typeURL != "" {
		m.Data = &anypb.Any{TypeUrl: typeURL}
	}
	return &invoke.Response{
		Message: &internalsv1.InternalInvokeResponse{
			Status:   &internalsv1.Status{Code: code, Message: "app says " + fmt.Sprint(code)},
			Headers:  md,
			Trailers: map[string]*internalsv1.ListStringValue{"x-trailer": {Values: []string{"t"}}},
			Message:  m,
		},
		Body: io.NopCloser(strings.NewReader(body)),
	}
}

// start serves cfg on 127.0.0.1:0 and returns a generated client.
func start(t *testing.T, cfg Config) runtimev1.DaprClient {
	t.Helper()
	api := New(cfg)
	s := grpc.NewServer(api.ServerOptions()...)
	api.Register(s)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtimev1.NewDaprClient(conn)
}

func TestInvokeService(t *testing.T) {
	tests := []struct {
		name       string
		respond    func() (*invoke.Response, error)
		wantCode   codes.Code
		wantMsg    string
		wantBody   string
		wantCT     string
		wantType   string
		wantHeader map[string]string
		wantTrail  string
	}{
		{
			name: "http app ok",
			respond: func() (*invoke.Response, error) {
				return resp(200, map[string]string{"x-r": "1"}, "text/plain", "", "pong"), nil
			},
			wantBody: "pong", wantCT: "text/plain",
			wantHeader: map[string]string{"x-r": "1", "dapr-http-status": "200"},
		},
		{
			name:     "http app 404 is an error",
			respond:  func() (*invoke.Response, error) { return resp(404, nil, "text/plain", "", "no such thing"), nil },
			wantCode: codes.NotFound, wantMsg: "Not Found",
			wantHeader: map[string]string{"dapr-http-status": "404"},
		},
		{
			name: "grpc app ok typed",
			respond: func() (*invoke.Response, error) {
				return resp(0, map[string]string{"x-g": "g"}, "", "type.googleapis.com/a.B", "\x08\x01"), nil
			},
			wantBody: "\x08\x01", wantType: "type.googleapis.com/a.B",
			wantHeader: map[string]string{"x-g": "g"}, wantTrail: "t",
		},
		{
			name:     "grpc app error",
			respond:  func() (*invoke.Response, error) { return resp(int32(codes.FailedPrecondition), nil, "", "", ""), nil },
			wantCode: codes.FailedPrecondition, wantMsg: "app says 9", wantTrail: "t",
		},
		{
			name:     "unknown app",
			respond:  func() (*invoke.Response, error) { return nil, fmt.Errorf("resolve: %w", resolve.ErrNotFound) },
			wantCode: codes.Internal, wantMsg: `app "target" is not running or not registered with name resolution`,
		},
		{
			name:     "acl",
			respond:  func() (*invoke.Response, error) { return nil, status.Error(codes.PermissionDenied, "denied") },
			wantCode: codes.Internal, wantMsg: "failed to invoke, id: target, err: rpc error: code = PermissionDenied desc = denied",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := &fakeInvoker{respond: tt.respond}
			client := start(t, Config{Invoker: inv})
			ctx := metadata.AppendToOutgoingContext(context.Background(), "x-caller", "c")
			var hdr, trl metadata.MD
			out, err := client.InvokeService(ctx, &runtimev1.InvokeServiceRequest{
				Id: "target",
				Message: &commonv1.InvokeRequest{
					Method:        "do/it",
					ContentType:   "application/json",
					Data:          &anypb.Any{Value: []byte(`{"a":1}`)},
					HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_POST, Querystring: "q=1"},
				},
			}, grpc.Header(&hdr), grpc.Trailer(&trl))
			if status.Code(err) != tt.wantCode {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tt.wantCode)
			}
			if tt.wantMsg != "" && !strings.Contains(status.Convert(err).Message(), tt.wantMsg) {
				t.Errorf("message %q, want %q", status.Convert(err).Message(), tt.wantMsg)
			}
			c := inv.last()
			m := c.req.Message.GetMessage()
			if c.appID != "target" || m.GetMethod() != "do/it" || string(c.body) != `{"a":1}` || c.req.ContentLength != 7 ||
				m.GetHttpExtension().GetQuerystring() != "q=1" || m.GetContentType() != "application/json" {
				t.Errorf("invoker got %s %v %q", c.appID, m, c.body)
			}
			if v := c.req.Message.GetMetadata()["x-caller"].GetValues(); len(v) != 1 || v[0] != "c" {
				t.Errorf("caller metadata %v", c.req.Message.GetMetadata())
			}
			for k, v := range tt.wantHeader {
				if got := hdr.Get(k); len(got) != 1 || got[0] != v {
					t.Errorf("header %s = %v, want %s", k, got, v)
				}
			}
			if tt.wantTrail != "" {
				if got := trl.Get("x-trailer"); len(got) != 1 || got[0] != tt.wantTrail {
					t.Errorf("trailer = %v", trl)
				}
			}
			if err != nil {
				return
			}
			if string(out.GetData().GetValue()) != tt.wantBody || out.GetContentType() != tt.wantCT || out.GetData().GetTypeUrl() != tt.wantType {
				t.Errorf("out = %v", out)
			}
		})
	}
}

func TestInvokeServiceHTTPErrorDetails(t *testing.T) {
	inv := &fakeInvoker{respond: func() (*invoke.Response, error) { return resp(500, nil, "", "", "database exploded"), nil }}
	client := start(t, Config{Invoker: inv})
	_, err := client.InvokeService(context.Background(), &runtimev1.InvokeServiceRequest{Id: "a", Message: &commonv1.InvokeRequest{Method: "m"}})
	st := status.Convert(err)
	if st.Code() != codes.Unknown || len(st.Details()) != 1 {
		t.Fatalf("status %v details %v", st.Code(), st.Details())
	}
	info := st.Details()[0].(*errdetails.ErrorInfo)
	if info.GetMetadata()["http.code"] != "500" || info.GetMetadata()["http.error_message"] != "database exploded" {
		t.Errorf("info %v", info)
	}
}

func TestInvokeServiceNoInvokerOrID(t *testing.T) {
	client := start(t, Config{})
	_, err := client.InvokeService(context.Background(), &runtimev1.InvokeServiceRequest{Id: "a"})
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "invoke API is not ready") {
		t.Errorf("no invoker: %v", err)
	}
	client = start(t, Config{Invoker: &fakeInvoker{}})
	_, err = client.InvokeService(context.Background(), &runtimev1.InvokeServiceRequest{})
	if status.Code(err) != codes.NotFound {
		t.Errorf("no id: %v", err)
	}
}

func TestMetadataAndShutdown(t *testing.T) {
	var mu sync.Mutex
	ext := map[string]string{}
	done := make(chan struct{})
	client := start(t, Config{
		AppID: "me",
		Metadata: func(context.Context) *runtimev1.GetMetadataResponse {
			mu.Lock()
			defer mu.Unlock()
			cp := map[string]string{}
			for k, v := range ext {
				cp[k] = v
			}
			return &runtimev1.GetMetadataResponse{RuntimeVersion: "v", ExtendedMetadata: cp}
		},
		SetMetadata: func(_ context.Context, k, v string) { mu.Lock(); ext[k] = v; mu.Unlock() },
		Shutdown:    func() { close(done) },
	})
	ctx := context.Background()
	for _, kv := range [][2]string{{"appCommand", "python app.py"}, {"", "ignored"}} {
		if _, err := client.SetMetadata(ctx, &runtimev1.SetMetadataRequest{Key: kv[0], Value: kv[1]}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := client.GetMetadata(ctx, &runtimev1.GetMetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m.GetId() != "me" || m.GetRuntimeVersion() != "v" || len(m.GetExtendedMetadata()) != 1 || m.GetExtendedMetadata()["appCommand"] != "python app.py" {
		t.Errorf("metadata %v", m)
	}
	if _, err := client.Shutdown(ctx, &runtimev1.ShutdownRequest{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown not called")
	}
}

func TestUnimplemented(t *testing.T) {
	client := start(t, Config{})
	_, err := client.GetState(context.Background(), &runtimev1.GetStateRequest{StoreName: "s", Key: "k"})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("GetState: %v", err)
	}
}

func TestAPIToken(t *testing.T) {
	inv := &fakeInvoker{respond: func() (*invoke.Response, error) { return resp(200, nil, "", "", ""), nil }}
	client := start(t, Config{Invoker: inv, APIToken: "tok"})
	tests := []struct {
		name  string
		token string
		want  codes.Code
		msg   string
	}{
		{"missing", "", codes.Unauthenticated, "missing api token in request metadata"},
		{"wrong", "nope", codes.Unauthenticated, "authentication error: api token mismatch"},
		{"right", "tok", codes.OK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.token != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "dapr-api-token", tt.token)
			}
			_, err := client.InvokeService(ctx, &runtimev1.InvokeServiceRequest{Id: "a", Message: &commonv1.InvokeRequest{Method: "m"}})
			if status.Code(err) != tt.want {
				t.Fatalf("code %v, want %v (%v)", status.Code(err), tt.want, err)
			}
			if tt.msg != "" {
				info := status.Convert(err).Details()[0].(*errdetails.ErrorInfo)
				if info.GetMetadata()["http.error_message"] != tt.msg || info.GetMetadata()["http.code"] != "401" {
					t.Errorf("info %v", info)
				}
				return
			}
			if _, ok := inv.last().req.Message.GetMetadata()["dapr-api-token"]; ok {
				t.Error("token forwarded")
			}
		})
	}
}

func TestAPITokenStream(t *testing.T) {
	api := New(Config{APIToken: "tok"})
	var seen metadata.MD
	handler := func(_ any, ss grpc.ServerStream) error {
		seen, _ = metadata.FromIncomingContext(ss.Context())
		return nil
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("dapr-api-token", "tok", "x", "y"))
	if err := api.StreamInterceptor(nil, fakeStream{ctx: ctx}, &grpc.StreamServerInfo{}, handler); err != nil {
		t.Fatal(err)
	}
	if len(seen.Get("dapr-api-token")) != 0 || seen.Get("x")[0] != "y" {
		t.Errorf("stream metadata %v", seen)
	}
	bad := metadata.NewIncomingContext(context.Background(), metadata.Pairs("dapr-api-token", "x"))
	if err := api.StreamInterceptor(nil, fakeStream{ctx: bad}, &grpc.StreamServerInfo{}, handler); status.Code(err) != codes.Unauthenticated {
		t.Errorf("bad token: %v", err)
	}
	if err := api.StreamInterceptor(nil, fakeStream{ctx: context.Background()}, &grpc.StreamServerInfo{}, handler); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no metadata: %v", err)
	}
	if len(New(Config{}).ServerOptions()) != 2 {
		t.Error("options without a token: want only the baggage check")
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f fakeStream) Context() context.Context { return f.ctx }

// TestForceShutdown: metadata dapr-force-shutdown: true calls ForceShutdown
// instead of Shutdown.
func TestForceShutdown(t *testing.T) {
	for _, tc := range []struct {
		value     string
		wantForce bool
	}{{"true", true}, {"TRUE", true}, {"false", false}, {"", false}} {
		t.Run(tc.value, func(t *testing.T) {
			calls := make(chan string, 2)
			client := start(t, Config{
				Shutdown:      func() { calls <- "graceful" },
				ForceShutdown: func() { calls <- "forced" },
			})
			ctx := context.Background()
			if tc.value != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "dapr-force-shutdown", tc.value)
			}
			if _, err := client.Shutdown(ctx, &runtimev1.ShutdownRequest{}); err != nil {
				t.Fatal(err)
			}
			want := "graceful"
			if tc.wantForce {
				want = "forced"
			}
			select {
			case got := <-calls:
				if got != want {
					t.Fatalf("%s shutdown called, want %s", got, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no shutdown was called")
			}
		})
	}
}
