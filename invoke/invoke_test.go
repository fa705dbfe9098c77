package invoke

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/invoke/transport/transporttest"
)

func header(t *testing.T, r *Response, k string) string {
	t.Helper()
	return firstMeta(r.Message.GetHeaders(), k)
}

func TestInvokeUnaryRoundTrip(t *testing.T) {
	for _, secure := range []bool{true, false} {
		t.Run(fmt.Sprintf("mtls=%v", secure), func(t *testing.T) {
			p := newPair(t, secure)
			body := []byte(`{"hello":"world"}`)
			req := newReq("orders/new", commonv1.HTTPExtension_POST, "a=1&b=2", body, int64(len(body)),
				map[string]string{"x-custom": "yes", "x-status": "201", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
			resp, err := p.inv.Invoke(context.Background(), "server", req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, body) {
				t.Errorf("body = %q, want %q", got, body)
			}
			if c := resp.Message.GetStatus().GetCode(); c != 201 || !resp.IsHTTP() {
				t.Errorf("status = %d, want 201", c)
			}
			for k, want := range map[string]string{
				"x-method": "orders/new", "x-verb": "POST", "x-query": "a=1&b=2", "x-custom": "yes",
				"x-caller": "caller", "x-caller-ns": "default", "x-callee": "server",
				"x-traceparent":  "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
				"x-content-type": "application/octet-stream", "x-length": fmt.Sprint(len(body)),
			} {
				if g := header(t, resp, k); g != want {
					t.Errorf("%s = %q, want %q", k, g, want)
				}
			}
			if req.Message.Message.Data != nil {
				t.Error("Invoke left the body in the request message")
			}
		})
	}
}

func TestInvokeStreamedBodies(t *testing.T) {
	p := newPair(t, true)
	cases := []struct {
		name   string
		size   int
		known  bool // ContentLength set
		method string
	}{
		{"1MiB unknown length", 1 << 20, false, "echo"},
		{"5MiB unknown length", 5 << 20, false, "echo"},
		{"1MiB known length", 1 << 20, true, "echo"},
		{"5MiB answered while reading", 5 << 20, false, "stream-echo"},
		{"empty unknown length", 0, false, "echo"},
		{"70KiB known length", 70 << 10, true, "stream-echo"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := make([]byte, tc.size)
			_, _ = rand.Read(body)
			length := int64(-1)
			if tc.known {
				length = int64(tc.size)
			}
			req := newReq(tc.method, commonv1.HTTPExtension_PUT, "", nil, length, nil)
			req.Body = onlyReader{bytes.NewReader(body)}
			resp, err := p.inv.Invoke(context.Background(), "server", req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got bytes.Buffer
			if _, err := io.Copy(&got, resp.Body); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), body) {
				t.Fatalf("echoed %d bytes, want %d identical bytes", got.Len(), len(body))
			}
			if g := header(t, resp, "x-length"); g != "-1" {
				t.Errorf("callee saw content length %s, want -1 (streamed)", g)
			}
		})
	}
}

func TestInvokeLargeUnaryResponse(t *testing.T) {
	// A small request may get a large answer over CallLocal; limits must allow it.
	body := make([]byte, 5<<20)
	_, _ = rand.Read(body)
	big := &bigApp{body: body}
	inv := invokerFor(t, "big", big)
	resp, err := inv.Invoke(context.Background(), "big", newReq("x", commonv1.HTTPExtension_GET, "", nil, 0, nil))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	if !bytes.Equal(got, body) {
		t.Fatalf("got %d bytes, want %d", len(got), len(body))
	}
}

type bigApp struct{ body []byte }

func (b *bigApp) Invoke(context.Context, *Request) (*Response, error) {
	return &Response{
		Message: &internalsv1.InternalInvokeResponse{Status: &internalsv1.Status{Code: 200}},
		Body:    newBytesBody(b.body),
	}, nil
}

func TestCallerIdentityComesFromCertificate(t *testing.T) {
	for _, streamed := range []bool{false, true} {
		t.Run(fmt.Sprintf("streamed=%v", streamed), func(t *testing.T) {
			p := newPair(t, true)
			length := int64(2)
			if streamed {
				length = -1
			}
			req := newReq("whoami", commonv1.HTTPExtension_GET, "", []byte("hi"), length,
				map[string]string{CallerAppIDKey: "admin", CallerNamespaceKey: "kube-system"})
			// Forge after Invoke stamps its own value too: send raw.
			cc, err := p.pool.Get(p.callee.addr)
			if err != nil {
				t.Fatal(err)
			}
			req.Message.Ver = internalsv1.APIVersion_V1
			req.Message.Message.Data = nil
			var out *internalsv1.InternalInvokeResponse
			if !streamed {
				req.Message.Message.Data = &anypb.Any{Value: []byte("hi")}
				out, err = internalsv1.NewServiceInvocationClient(cc).CallLocal(context.Background(), req.Message)
			} else {
				out, err = rawStream(cc, req.Message)
			}
			if err != nil {
				t.Fatal(err)
			}
			if g := firstMeta(out.Headers, "x-caller"); g != "caller" {
				t.Errorf("callee saw caller %q, want %q (from the certificate)", g, "caller")
			}
			if g := firstMeta(out.Headers, "x-caller-ns"); g != "default" {
				t.Errorf("callee saw caller namespace %q, want default", g)
			}
		})
	}
}

func rawStream(cc grpc.ClientConnInterface, in *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	s, err := internalsv1.NewServiceInvocationClient(cc).CallLocalStream(context.Background())
	if err != nil {
		return nil, err
	}
	if err := s.Send(&internalsv1.InternalInvokeRequestStream{Request: in, Payload: &commonv1.StreamPayload{Data: []byte("hi")}}); err != nil {
		return nil, err
	}
	_ = s.CloseSend()
	m, err := s.Recv()
	if err != nil {
		return nil, err
	}
	for {
		if _, err := s.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return m.Response, nil
			}
			return nil, err
		}
	}
}

func TestPlaintextTrustsCallerHeader(t *testing.T) {
	p := newPair(t, false)
	cc, _ := p.pool.Get(p.callee.addr)
	req := newReq("m", commonv1.HTTPExtension_GET, "", nil, 0, map[string]string{CallerAppIDKey: "claimed"})
	out, err := internalsv1.NewServiceInvocationClient(cc).CallLocal(context.Background(), req.Message)
	if err != nil {
		t.Fatal(err)
	}
	if g := firstMeta(out.Headers, "x-caller"); g != "claimed" {
		t.Errorf("caller = %q, want the claimed id when mTLS is off", g)
	}
}

func TestRefusedClients(t *testing.T) {
	ca := transporttest.NewCA(t)
	callee := startSidecar(t, ca.Source(t, testTD, "default", "server"), "server", nil)
	otherCA := transporttest.NewCA(t)
	cases := []struct {
		name string
		dial grpc.DialOption
	}{
		{"other trust domain, same roots", grpc.WithTransportCredentials(credentials.NewTLS(
			identity.ClientTLS(ca.Source(t, "evil.example", "default", "caller"), tlsconfig.AuthorizeAny())))},
		{"other CA", grpc.WithTransportCredentials(credentials.NewTLS(
			identity.ClientTLS(otherCA.Source(t, testTD, "default", "caller"), tlsconfig.AuthorizeAny())))},
		{"no client certificate", grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}))},
		{"plaintext to mTLS port", grpc.WithTransportCredentials(insecure.NewCredentials())},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := grpc.NewClient("passthrough:///"+callee.addr, tc.dial)
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req := newReq("m", commonv1.HTTPExtension_GET, "", nil, 0, nil)
			_, err = internalsv1.NewServiceInvocationClient(cc).CallLocal(ctx, req.Message)
			if err == nil {
				t.Fatal("call succeeded; want refusal")
			}
			if callee.app.calls.Load() != 0 {
				t.Fatal("the app was called")
			}
		})
	}
}

func TestServerRefusesOtherTrustDomainClient(t *testing.T) {
	// The client's pool authorizes servers in its own trust domain only.
	ca := transporttest.NewCA(t)
	callee := startSidecar(t, ca.Source(t, "elsewhere", "default", "server"), "server", nil)
	pool := transport.NewPool(transport.Options{Source: ca.Source(t, testTD, "default", "caller")})
	defer pool.Close()
	inv, _ := NewClient(ClientOptions{Resolver: &mapResolver{addrs: map[string][]string{"server/default": {callee.addr}}}, Pool: pool, AppID: "caller", Namespace: "default"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := inv.Invoke(ctx, "server", newReq("m", commonv1.HTTPExtension_GET, "", nil, 0, nil))
	if err == nil || status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want Unavailable (server identity refused)", err)
	}
	if !strings.Contains(err.Error(), callee.addr) || !strings.Contains(err.Error(), `"server"`) {
		t.Errorf("error %q should name the app and address", err)
	}
}

func TestConcurrentCallsShareOneConnection(t *testing.T) {
	p := newPair(t, true)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := []byte(fmt.Sprintf("call-%d", i))
			resp, err := p.inv.Invoke(context.Background(), "server", newReq("echo", commonv1.HTTPExtension_POST, "", body, int64(len(body)), nil))
			if err != nil {
				errs <- err
				return
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(got, body) {
				errs <- fmt.Errorf("call %d: got %q, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if l := p.pool.Len(); l != 1 {
		t.Errorf("pool has %d connections, want 1", l)
	}
	if c := p.callee.app.calls.Load(); c != n {
		t.Errorf("app called %d times, want %d", c, n)
	}
}

func TestInvokeErrors(t *testing.T) {
	p := newPair(t, true)
	cases := []struct {
		name   string
		target string
		method string
		check  func(error) bool
	}{
		{"unknown app", "nobody", "m", func(err error) bool {
			return errors.Is(err, resolve.ErrNotFound) && strings.Contains(err.Error(), `"nobody"`)
		}},
		{"unknown namespace", "server.prod", "m", func(err error) bool { return errors.Is(err, resolve.ErrNotFound) }},
		{"bad app id", "a.b.c", "m", func(err error) bool { return errors.Is(err, ErrInvalidAppID) }},
		{"remote status kept", "server", "fail", func(err error) bool {
			st, ok := status.FromError(err)
			return ok && st.Code() == codes.NotFound && st.Message() == "no such thing"
		}},
		{"app channel failure is Internal", "server", "broken", func(err error) bool { return status.Code(err) == codes.Internal }},
	}
	for _, tc := range cases {
		for _, length := range []int64{0, -1} {
			t.Run(fmt.Sprintf("%s/length=%d", tc.name, length), func(t *testing.T) {
				_, err := p.inv.Invoke(context.Background(), tc.target, newReq(tc.method, commonv1.HTTPExtension_GET, "", nil, length, nil))
				if err == nil || !tc.check(err) {
					t.Fatalf("unexpected error: %v", err)
				}
			})
		}
	}
}

func TestAuthorizeHook(t *testing.T) {
	ca := transporttest.NewCA(t)
	var seen identity.App
	callee := startSidecar(t, ca.Source(t, testTD, "default", "server"), "server",
		func(_ context.Context, caller identity.App, req *Request) error {
			seen = caller
			if req.Message.GetMessage().GetMethod() == "secret" {
				return errors.New("denied by policy")
			}
			return nil
		})
	pool := transport.NewPool(transport.Options{Source: ca.Source(t, testTD, "default", "caller")})
	defer pool.Close()
	inv, _ := NewClient(ClientOptions{Resolver: &mapResolver{addrs: map[string][]string{"server/default": {callee.addr}}}, Pool: pool, AppID: "caller", Namespace: "default"})
	for _, tc := range []struct {
		method string
		code   codes.Code
	}{{"open", codes.OK}, {"secret", codes.PermissionDenied}} {
		for _, length := range []int64{0, -1} {
			resp, err := inv.Invoke(context.Background(), "server", newReq(tc.method, commonv1.HTTPExtension_GET, "", nil, length, nil))
			if status.Code(err) != tc.code {
				t.Errorf("%s (length %d): err = %v, want %v", tc.method, length, err, tc.code)
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
	}
	want := identity.App{TrustDomain: testTD, Namespace: "default", AppID: "caller"}
	if seen != want {
		t.Errorf("authorize saw %+v, want %+v", seen, want)
	}
}

func TestRetryOnceAfterTransportFailure(t *testing.T) {
	p := newPair(t, false)
	// A dead address: a listener that is closed at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p.res.addrs["server/default"] = []string{dead, p.callee.addr}
	resp, err := p.inv.Invoke(context.Background(), "server", newReq("echo", commonv1.HTTPExtension_POST, "", []byte("x"), 1, nil))
	if err != nil {
		t.Fatalf("invoke with one dead instance: %v", err)
	}
	resp.Body.Close()
	if len(p.res.failed) != 1 || p.res.failed[0] != dead {
		t.Errorf("MarkFailed calls = %v, want [%s]", p.res.failed, dead)
	}
	// With no instance left alive, the error names the address and app.
	p.res.addrs["server/default"] = []string{dead}
	_, err = p.inv.Invoke(context.Background(), "server", newReq("echo", commonv1.HTTPExtension_POST, "", []byte("x"), 1, nil))
	if err == nil {
		t.Fatal("want an error")
	}
}

func TestLocalShortcut(t *testing.T) {
	app := &echoApp{}
	pool := transport.NewPool(transport.Options{})
	defer pool.Close()
	inv, _ := NewClient(ClientOptions{Resolver: &mapResolver{}, Pool: pool, AppID: "me", Namespace: "default", Local: app})
	resp, err := inv.Invoke(context.Background(), "me", newReq("m", commonv1.HTTPExtension_GET, "", nil, 0, nil))
	if err != nil {
		t.Fatal(err)
	}
	if g := header(t, resp, "x-caller"); g != "me" {
		t.Errorf("caller = %q", g)
	}
	if app.calls.Load() != 1 {
		t.Error("local app not called")
	}
}

func TestSplitAppID(t *testing.T) {
	cases := []struct {
		in, app, ns string
		err         bool
	}{
		{"orders", "orders", "default", false},
		{"orders.prod", "orders", "prod", false},
		{"", "", "", true},
		{"a.b.c", "", "", true},
		{".prod", "", "", true},
		{"orders.", "", "", true},
	}
	for _, tc := range cases {
		app, ns, err := SplitAppID(tc.in, "default")
		if (err != nil) != tc.err || app != tc.app || ns != tc.ns {
			t.Errorf("SplitAppID(%q) = %q, %q, %v", tc.in, app, ns, err)
		}
	}
}

func TestTraceBinRoundTrip(t *testing.T) {
	cases := []struct {
		tp string
		ok bool
	}{
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", true},
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", true},
		{"00-zzf7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", false},
		{"garbage", false},
	}
	for _, tc := range cases {
		bin, ok := TraceBinFromParent(tc.tp)
		if ok != tc.ok {
			t.Errorf("TraceBinFromParent(%q) ok = %v", tc.tp, ok)
			continue
		}
		if !ok {
			continue
		}
		back, ok := TraceParentFromBin(bin)
		if !ok || back != tc.tp {
			t.Errorf("round trip %q -> %q (%v)", tc.tp, back, ok)
		}
	}
	if _, ok := TraceParentFromBin([]byte{1, 2}); ok {
		t.Error("short binary accepted")
	}
}

// failingReader yields n bytes, then an error.
type failingReader struct{ n int }

var errBodyBroke = errors.New("client went away")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errBodyBroke
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	f.n -= len(p)
	return len(p), nil
}

func TestStreamedRequestBodyFailure(t *testing.T) {
	p := newPair(t, true)
	req := newReq("echo", commonv1.HTTPExtension_POST, "", nil, -1, nil)
	req.Body = &failingReader{n: 200 << 10}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := p.inv.Invoke(ctx, "server", req)
	if err == nil {
		// The failure may surface while reading the answer instead.
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if !errors.Is(err, errBodyBroke) {
		t.Fatalf("err = %v, want the body's read error", err)
	}
}

func TestResponseBodyClosedEarly(t *testing.T) {
	p := newPair(t, true)
	body := make([]byte, 3<<20)
	req := newReq("stream-echo", commonv1.HTTPExtension_POST, "", nil, -1, nil)
	req.Body = onlyReader{bytes.NewReader(body)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := p.inv.Invoke(ctx, "server", req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := resp.Body.Read(buf); err == nil {
		t.Fatal("read after Close succeeded")
	}
	// The connection stays usable.
	resp, err = p.inv.Invoke(ctx, "server", newReq("echo", commonv1.HTTPExtension_POST, "", []byte("ok"), 2, nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestMemBodySentAsIs: a body held in memory is sent without a copy when
// nothing of it has been read, and read like any reader otherwise.
func TestMemBodySentAsIs(t *testing.T) {
	b := []byte("in memory")
	m := NewMemBody(b)
	if got, whole := m.unread(); !whole || &got[0] != &b[0] {
		t.Fatalf("unread of a fresh body: whole %v, same bytes %v", whole, &got[0] == &b[0])
	}
	buf := make([]byte, 3)
	if _, err := m.Read(buf); err != nil {
		t.Fatal(err)
	}
	if _, whole := m.unread(); whole {
		t.Fatal("unread after a read still reports the whole body")
	}
}

func TestCallerNamespaceSentWithoutMTLS(t *testing.T) {
	// Without mTLS the callee has only the caller's word for its namespace,
	// so the caller must send it (daprd's dapr-caller-namespace).
	p := newPair(t, false)
	inv, err := NewClient(ClientOptions{Resolver: p.res, Pool: p.pool, AppID: "caller", Namespace: "ns-a"})
	if err != nil {
		t.Fatal(err)
	}
	for _, streamed := range []bool{false, true} {
		length := int64(2)
		if streamed {
			length = -1
		}
		resp, err := inv.Invoke(context.Background(), "server.default", newReq("x", commonv1.HTTPExtension_POST, "", []byte("hi"), length, nil))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if g := firstMeta(resp.Message.GetHeaders(), "x-caller-ns"); g != "ns-a" {
			t.Errorf("streamed=%v: callee saw caller namespace %q, want ns-a", streamed, g)
		}
	}
}

// chunkApp answers with "A", then "B" only once next is closed.
type chunkApp struct{ next chan struct{} }

func (a *chunkApp) Invoke(context.Context, *Request) (*Response, error) {
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte("A"))
		<-a.next
		_, _ = pw.Write([]byte("B"))
		_ = pw.Close()
	}()
	return &Response{
		Message: &internalsv1.InternalInvokeResponse{Status: &internalsv1.Status{Code: 200}},
		Body:    pr,
	}, nil
}

func TestInvokeStreamResponseWithSmallRequest(t *testing.T) {
	// The HTTP API relays answers as they come: a small request must not
	// make the answer wait for the app to finish (a unary CallLocal would).
	app := &chunkApp{next: make(chan struct{})}
	inv := invokerFor(t, "chunks", app)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := newReq("x", commonv1.HTTPExtension_GET, "", nil, 0, nil)
	req.StreamResponse = true
	resp, err := inv.Invoke(ctx, "chunks", req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "A" {
		t.Fatalf("first chunk = %q, %v", first, err)
	}
	close(app.next)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "B" {
		t.Fatalf("rest = %q, %v", rest, err)
	}
}

// invokerFor serves app behind a sidecar without mTLS and returns an
// Client that reaches it as appID.
func invokerFor(t *testing.T, appID string, app AppChannel) *Client {
	t.Helper()
	s, err := NewServer(ServerOptions{AppID: appID, Namespace: "default", App: app})
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(transport.ServerOptions(transport.ServerConfig{})...)
	s.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	pool := transport.NewPool(transport.Options{})
	t.Cleanup(func() { _ = pool.Close() })
	inv, err := NewClient(ClientOptions{Resolver: &mapResolver{addrs: map[string][]string{appID + "/default": {ln.Addr().String()}}}, Pool: pool, AppID: "c", Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// A caller that asks for server-sent events gets an error in daprd's words
// when the app does not answer 2xx (suite daprd/serviceinvocation/http/ssepanic),
// over gRPC and over the lean transport alike.
func TestInvokeEventStreamNeedsSuccess(t *testing.T) {
	ca := transporttest.NewCA(t)
	callee := startSidecar(t, ca.Source(t, testTD, "default", "server"), "server", nil)
	for _, lean := range []bool{false, true} {
		pool := transport.NewPool(transport.Options{Source: ca.Source(t, testTD, "default", "caller"), Lean: lean})
		defer pool.Close()
		inv, err := NewClient(ClientOptions{Resolver: &mapResolver{addrs: map[string][]string{"server/default": {callee.addr}}}, Pool: pool, AppID: "caller", Namespace: "default"})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name    string
			md      map[string]string
			wantErr bool
		}{
			{"stream refused by the app", map[string]string{"Accept": "text/event-stream", "x-status": "404"}, true},
			{"stream accepted", map[string]string{"accept": "text/event-stream", "x-status": "200"}, false},
			{"no stream asked", map[string]string{"x-status": "404"}, false},
			{"a list of types is no stream", map[string]string{"Accept": "text/event-stream, application/json", "x-status": "404"}, false},
		} {
			for _, length := range []int64{0, -1} {
				t.Run(fmt.Sprintf("lean=%v/%s/length=%d", lean, tc.name, length), func(t *testing.T) {
					resp, err := inv.Invoke(context.Background(), "server", newReq("m", commonv1.HTTPExtension_GET, "", nil, length, tc.md))
					if resp != nil {
						resp.Body.Close()
					}
					if !tc.wantErr {
						if err != nil {
							t.Fatalf("err = %v", err)
						}
						return
					}
					st, _ := status.FromError(err)
					if st.Code() != codes.Internal || st.Message() != "error invoking app channel: no response received from stream" {
						t.Fatalf("err = %v, want Internal: error invoking app channel: no response received from stream", err)
					}
				})
			}
		}
	}
}
