package appchannel

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/headers"
)

// fakeCallback is a tiny gRPC app: it records the call and answers with
// reply (or err).
type fakeCallback struct {
	runtimev1.UnimplementedAppCallbackServer
	mu    sync.Mutex
	in    *commonv1.InvokeRequest
	md    metadata.MD
	reply *commonv1.InvokeResponse
	err   error
}

func (f *fakeCallback) OnInvoke(ctx context.Context, in *commonv1.InvokeRequest) (*commonv1.InvokeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.in = in
	f.md, _ = metadata.FromIncomingContext(ctx)
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-h", "hv", "x-b-bin", "\x00\x01"))
	grpc.SetTrailer(ctx, metadata.Pairs("x-t", "tv"))
	return f.reply, f.err
}

func startCallback(t *testing.T, f *fakeCallback) int {
	return serveApp(t, func(s *grpc.Server) { runtimev1.RegisterAppCallbackServer(s, f) })
}

// serveApp serves a fake gRPC app on a free local port until the test ends.
func serveApp(t *testing.T, register func(*grpc.Server)) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	register(s)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return l.Addr().(*net.TCPAddr).Port
}

func TestGRPCInvoke(t *testing.T) {
	denied, _ := status.New(codes.PermissionDenied, "nope").WithDetails(&errdetails.ErrorInfo{Reason: "R"})
	tests := []struct {
		name      string
		reply     *commonv1.InvokeResponse
		err       error
		wantCode  codes.Code
		wantMsg   string
		wantBody  string
		wantType  string
		wantDetls int
	}{
		{
			name:     "ok",
			reply:    &commonv1.InvokeResponse{ContentType: "text/plain", Data: &anypb.Any{Value: []byte("pong")}},
			wantCode: codes.OK, wantBody: "pong",
		},
		{
			name:     "typed data",
			reply:    &commonv1.InvokeResponse{Data: &anypb.Any{TypeUrl: "type.googleapis.com/x.Y", Value: []byte{8, 1}}},
			wantCode: codes.OK, wantBody: "\x08\x01", wantType: "type.googleapis.com/x.Y",
		},
		{
			name: "app error kept as status", err: denied.Err(),
			wantCode: codes.PermissionDenied, wantMsg: "nope", wantDetls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeCallback{reply: tt.reply, err: tt.err}
			port := startCallback(t, f)
			ch, err := NewGRPC(GRPCConfig{Port: port, APIToken: "app-tok"})
			if err != nil {
				t.Fatal(err)
			}
			defer ch.Close()
			req := newReq("say/hi", commonv1.HTTPExtension_POST, "q=1", "application/json", headers.Metadata{
				"content-type":       lv("application/json"),
				"accept":             lv("*/*"),
				"x-user":             lv("u"),
				"x-bad key":          lv("dropped"),
				"x-nonascii":         lv("é"),
				"destination-app-id": lv("me"),
				"traceparent":        lv("00-4bf824d1d1a5b6a65c810a7f0fb54000-98c63871e0a6e7c0-01"),
			}, strings.NewReader(`{"x":1}`), 7)
			resp, err := ch.Invoke(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()

			f.mu.Lock()
			in, md := f.in, f.md
			f.mu.Unlock()
			if in.GetMethod() != "say/hi" || string(in.GetData().GetValue()) != `{"x":1}` ||
				in.GetContentType() != "application/json" || in.GetHttpExtension().GetQuerystring() != "q=1" {
				t.Errorf("app got %v", in)
			}
			if md.Get("dapr-api-token")[0] != "app-tok" || md.Get("x-user")[0] != "u" {
				t.Errorf("metadata %v", md)
			}
			if len(md.Get("dapr-content-type")) != 1 || len(md.Get("dapr-accept")) != 1 {
				t.Errorf("HTTP permanent headers not prefixed: %v", md)
			}
			for _, k := range []string{"destination-app-id", "x-nonascii"} {
				if len(md.Get(k)) != 0 {
					t.Errorf("%s forwarded", k)
				}
			}
			if bin := md.Get("grpc-trace-bin"); len(bin) != 1 || len(bin[0]) != 29 {
				t.Errorf("grpc-trace-bin = %q", bin)
			}

			if resp.IsHTTP() || codes.Code(resp.Message.GetStatus().GetCode()) != tt.wantCode {
				t.Errorf("status = %v", resp.Message.GetStatus())
			}
			if resp.Message.GetStatus().GetMessage() != tt.wantMsg || len(resp.Message.GetStatus().GetDetails()) != tt.wantDetls {
				t.Errorf("status = %v", resp.Message.GetStatus())
			}
			if headers.First(resp.Message.GetHeaders(), "x-h") != "hv" || headers.First(resp.Message.GetHeaders(), "x-b-bin") != "AAE=" {
				t.Errorf("headers = %v", resp.Message.GetHeaders())
			}
			if headers.First(resp.Message.GetTrailers(), "x-t") != "tv" {
				t.Errorf("trailers = %v", resp.Message.GetTrailers())
			}
			if got := resp.Message.GetMessage().GetData().GetTypeUrl(); got != tt.wantType {
				t.Errorf("type url = %q", got)
			}
			// The length is known, so the lean transport sends the answer
			// with its end in one write.
			if resp.ContentLength != int64(len(tt.wantBody)) {
				t.Errorf("content length = %d, want %d", resp.ContentLength, len(tt.wantBody))
			}
			b, _ := io.ReadAll(resp.Body)
			if string(b) != tt.wantBody {
				t.Errorf("body = %q", b)
			}
			if ch.Conn() == nil {
				t.Error("Conn is nil")
			}
		})
	}
}

func TestGRPCBodyLimit(t *testing.T) {
	port := startCallback(t, &fakeCallback{reply: &commonv1.InvokeResponse{}})
	ch, err := NewGRPC(GRPCConfig{Port: port, MaxMessageSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	for _, n := range []int64{5, -1} {
		req := newReq("m", commonv1.HTTPExtension_POST, "", "", nil, strings.NewReader("12345"), n)
		if _, err := ch.Invoke(context.Background(), req); status.Code(err) != codes.ResourceExhausted {
			t.Errorf("length %d: err = %v, want ResourceExhausted", n, err)
		}
	}
}

func TestGRPCAppDown(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ch, err := NewGRPC(GRPCConfig{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := ch.Invoke(ctx, &invoke.Request{Message: &internalsv1.InternalInvokeRequest{Message: &commonv1.InvokeRequest{Method: "m"}}})
	if err != nil {
		t.Fatal(err)
	}
	if codes.Code(resp.Message.GetStatus().GetCode()) != codes.Unavailable {
		t.Errorf("status = %v, want Unavailable", resp.Message.GetStatus())
	}
}

func TestWaitReady(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if err := WaitReady(ctx, "", port, 20*time.Millisecond); err == nil || !strings.Contains(err.Error(), "--app-port") {
		t.Fatalf("closed port: err = %v", err)
	}

	done := make(chan error, 1)
	go func() { done <- WaitReady(context.Background(), "127.0.0.1", port, 10*time.Millisecond) }()
	time.Sleep(30 * time.Millisecond)
	l, err = net.Listen("tcp", l.Addr().String())
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	defer l.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitReady did not see the port open")
	}
}

// waitingCallback holds every OnInvoke until want calls are in flight.
type waitingCallback struct {
	runtimev1.UnimplementedAppCallbackServer
	want     int32
	inflight atomic.Int32
	all      chan struct{}
	once     sync.Once
}

func (w *waitingCallback) OnInvoke(ctx context.Context, _ *commonv1.InvokeRequest) (*commonv1.InvokeResponse, error) {
	if w.inflight.Add(1) >= w.want {
		w.once.Do(func() { close(w.all) })
	}
	select {
	case <-w.all:
		return &commonv1.InvokeResponse{}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestGRPCInvokeBeyondStreamLimit(t *testing.T) {
	// The app allows 100 concurrent streams per connection; 150 calls at
	// once need a second connection (daprd's connpool case).
	const n = StreamsPerConn + 50
	app := &waitingCallback{want: n, all: make(chan struct{})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.MaxConcurrentStreams(StreamsPerConn))
	runtimev1.RegisterAppCallbackServer(s, app)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	ch, err := NewGRPC(GRPCConfig{Port: l.Addr().(*net.TCPAddr).Port})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			resp, err := ch.Invoke(ctx, newReq("m", commonv1.HTTPExtension_POST, "", "", nil, nil, 0))
			if err == nil && resp.Message.GetStatus().GetCode() != 0 {
				err = fmt.Errorf("status %v", resp.Message.GetStatus())
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
