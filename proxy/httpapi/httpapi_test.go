package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/resolve"
)

func serve(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(New(cfg))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// apiError decodes a Dapr JSON error body.
func apiError(t *testing.T, b []byte) (code, msg string) {
	t.Helper()
	var e struct{ ErrorCode, Message string }
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("not a JSON error body: %q", b)
	}
	return e.ErrorCode, e.Message
}

func TestInvokeForms(t *testing.T) {
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("dapr-app-id:orders"))
	tests := []struct {
		name       string
		verb, path string
		hdr        map[string]string
		wantApp    string
		wantMethod string
		wantQuery  string
	}{
		{"path", "GET", "/v1.0/invoke/orders/method/items/42", nil, "orders", "items/42", ""},
		{"query verbatim", "DELETE", "/v1.0/invoke/orders/method/items?a=1&b=%2F+x&a=2", nil, "orders", "items", "a=1&b=%2F+x&a=2"},
		{"namespace kept", "POST", "/v1.0/invoke/orders.prod/method/new", nil, "orders.prod", "new", ""},
		{"cleaned method", "PUT", "/v1.0/invoke/orders/method/a//b/../c/", nil, "orders", "a/c", ""},
		{"double slashes before id", "PATCH", "//v1.0//invoke//orders/method/x", nil, "orders", "x", ""},
		{"url encoded target", "GET", "/v1.0/invoke/http%3A%2F%2Fexample.com/method/x", nil, "http://example.com", "x", ""},
		{"header form", "POST", "/shop/cart?x=1", map[string]string{"dapr-app-id": "orders"}, "orders", "shop/cart", "x=1"},
		{"header beats path", "GET", "/v1.0/invoke/other/method/x", map[string]string{"dapr-app-id": "orders"}, "orders", "v1.0/invoke/other/method/x", ""},
		{"basic auth form", "OPTIONS", "/a/b", map[string]string{"Authorization": basic}, "orders", "a/b", ""},
		{"unknown verb route falls back", "DELETE", "/v1.0/metadata", map[string]string{"dapr-app-id": "orders"}, "orders", "v1.0/metadata", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := &fakeInvoker{}
			srv := serve(t, Config{Invoker: inv})
			resp, _ := do(t, tt.verb, srv.URL+tt.path, nil, tt.hdr)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			c := inv.last()
			m := c.req.Message.GetMessage()
			if c.appID != tt.wantApp || m.GetMethod() != tt.wantMethod {
				t.Errorf("app %q method %q, want %q %q", c.appID, m.GetMethod(), tt.wantApp, tt.wantMethod)
			}
			if got := m.GetHttpExtension().GetVerb().String(); got != tt.verb {
				t.Errorf("verb %s, want %s", got, tt.verb)
			}
			if got := m.GetHttpExtension().GetQuerystring(); got != tt.wantQuery {
				t.Errorf("query %q, want %q", got, tt.wantQuery)
			}
			md := c.req.Message.GetMetadata()
			for _, k := range []string{"dapr-app-id", "authorization"} {
				if _, ok := md[k]; ok {
					t.Errorf("%s forwarded", k)
				}
			}
		})
	}
}

func TestInvokeHeadersAndResponse(t *testing.T) {
	inv := &fakeInvoker{respond: func(string, *invoke.Request) (*invoke.Response, error) {
		return httpResp(418, map[string][]string{
			"x-reply":        {"a", "b"},
			"content-length": {"99"},
			"connection":     {"x-hop"},
			"x-hop":          {"1"},
		}, "text/teapot", "short and stout"), nil
	}}
	srv := serve(t, Config{Invoker: inv})
	resp, body := do(t, "POST", srv.URL+"/v1.0/invoke/pot/method/brew", strings.NewReader(`{"t":1}`), map[string]string{
		"Content-Type": "application/json",
		"X-Custom":     "c",
		"Connection":   "keep-alive, X-Drop",
		"X-Drop":       "d",
		"Traceparent":  "00-4bf824d1d1a5b6a65c810a7f0fb54000-98c63871e0a6e7c0-01",
	})
	if resp.StatusCode != 418 || string(body) != "short and stout" {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Values("X-Reply"); len(got) != 2 {
		t.Errorf("X-Reply = %v", got)
	}
	if resp.Header.Get("Content-Type") != "text/teapot" || resp.Header.Get("X-Hop") != "" {
		t.Errorf("headers = %v", resp.Header)
	}
	c := inv.last()
	md := c.req.Message.GetMetadata()
	if md["x-custom"].GetValues()[0] != "c" || md["traceparent"] == nil || md["content-type"] == nil {
		t.Errorf("metadata = %v", md)
	}
	for _, k := range []string{"x-drop", "connection", "content-length", "X-Custom"} {
		if _, ok := md[k]; ok {
			t.Errorf("%s in metadata", k)
		}
	}
	if c.req.Message.GetMessage().GetContentType() != "application/json" || string(c.body) != `{"t":1}` || c.req.ContentLength != 7 {
		t.Errorf("req ct %q body %q len %d", c.req.Message.GetMessage().GetContentType(), c.body, c.req.ContentLength)
	}
}

func grpcResp(st *status.Status, ct, typeURL, body string) *invoke.Response {
	var data *anypb.Any
	if typeURL != "" {
		data = &anypb.Any{TypeUrl: typeURL}
	}
	return &invoke.Response{
		Message: &internalsv1.InternalInvokeResponse{
			Status:  &internalsv1.Status{Code: int32(st.Code()), Message: st.Message(), Details: st.Proto().GetDetails()},
			Message: &commonv1.InvokeResponse{ContentType: ct, Data: data},
		},
		Body: io.NopCloser(strings.NewReader(body)),
	}
}

func TestInvokeGRPCTarget(t *testing.T) {
	tests := []struct {
		name       string
		resp       *invoke.Response
		wantStatus int
		wantCT     string
		wantBody   string
	}{
		{"ok", grpcResp(status.New(codes.OK, ""), "text/plain", "", "hi"), 200, "text/plain", "hi"},
		{"typed", grpcResp(status.New(codes.OK, ""), "", "type.googleapis.com/x.Y", "\x08\x01"), 200, "application/x-protobuf", "\x08\x01"},
		{"not found", grpcResp(status.New(codes.NotFound, "no such item"), "", "", "ignored"), 404, "application/json", `{"code":5,"message":"no such item"}`},
		{"unavailable", grpcResp(status.New(codes.Unavailable, "down"), "", "", ""), 503, "application/json", `{"code":14,"message":"down"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := &fakeInvoker{respond: func(string, *invoke.Request) (*invoke.Response, error) { return tt.resp, nil }}
			srv := serve(t, Config{Invoker: inv})
			resp, body := do(t, "GET", srv.URL+"/v1.0/invoke/g/method/m", nil, nil)
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("Content-Type") != tt.wantCT {
				t.Errorf("got %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			got := string(body)
			if tt.wantCT == "application/json" {
				// protojson may vary spacing: compare canonical JSON.
				var v any
				if err := json.Unmarshal(body, &v); err != nil {
					t.Fatalf("body %q: %v", body, err)
				}
				b, _ := json.Marshal(v)
				got = string(b)
			}
			if got != tt.wantBody {
				t.Errorf("body %q, want %q", got, tt.wantBody)
			}
		})
	}
}

func TestInvokeErrors(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		verb, path string
		hdr        map[string]string
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{"no app id", Config{Invoker: &fakeInvoker{}}, "GET", "/nothing/here", nil, 404, "ERR_DIRECT_INVOKE", "failed getting app id either from the URL path or the header dapr-app-id"},
		{"no method part", Config{Invoker: &fakeInvoker{}}, "GET", "/v1.0/invoke/orders/items", nil, 404, "ERR_DIRECT_INVOKE", "failed getting app id"},
		{"known api not built", Config{Invoker: &fakeInvoker{}}, "GET", "/v1.0/state/store/key", nil, 501, "ERR_API_UNIMPLEMENTED", "not implemented"},
		{"alpha api not built", Config{Invoker: &fakeInvoker{}}, "POST", "/v1.0-alpha1/lock/store", nil, 501, "ERR_API_UNIMPLEMENTED", "not implemented"},
		{"invoker missing", Config{}, "GET", "/v1.0/invoke/a/method/m", nil, 500, "ERR_DIRECT_INVOKE", "invoke API is not ready"},
		{"unknown app", Config{Invoker: &fakeInvoker{respond: func(string, *invoke.Request) (*invoke.Response, error) {
			return nil, fmt.Errorf("resolve orders: %w", resolve.ErrNotFound)
		}}}, "GET", "/v1.0/invoke/orders/method/m", nil, 500, "ERR_DIRECT_INVOKE", `app "orders" is not running or not registered with name resolution`},
		{"transport", Config{Invoker: &fakeInvoker{respond: func(string, *invoke.Request) (*invoke.Response, error) {
			return nil, errors.New("dial sidecar 10.0.0.9:50002: connection refused")
		}}}, "GET", "/v1.0/invoke/orders/method/m", nil, 500, "ERR_DIRECT_INVOKE", "failed to invoke, id: orders, err: dial sidecar 10.0.0.9:50002"},
		{"acl", Config{Invoker: &fakeInvoker{respond: func(string, *invoke.Request) (*invoke.Response, error) {
			return nil, status.Error(codes.PermissionDenied, "denied by access control")
		}}}, "GET", "/v1.0/invoke/orders/method/m", nil, 403, "ERR_DIRECT_INVOKE", "denied by access control"},
		{"bad verb", Config{Invoker: &fakeInvoker{}}, "PROPFIND", "/v1.0/invoke/a/method/m", nil, 400, "ERR_MALFORMED_REQUEST", "PROPFIND"},
		{"too large by length", Config{Invoker: &fakeInvoker{}, MaxRequestBodySize: 4}, "POST", "/v1.0/invoke/a/method/m", nil, 413, "ERR_BODY_TOO_LARGE", "--dapr-http-max-request-size"},
		// An escaped slash stays in its segment: the actor route serves it
		// (no placement here), ".." does not climb out of /v1.0/actors.
		{"escaped slash in actor method", Config{Invoker: &fakeInvoker{}}, "POST", "/v1.0/actors/a/1/method/..%2F..%2F..%2Fsecret", nil, 400, "ERR_ACTOR_NO_PLACEMENT", "placement"},
		{"escaped slash in actor ID", Config{Invoker: &fakeInvoker{}}, "POST", "/v1.0/actors/a/..%2F..%2Fevil/method/m", nil, 400, "ERR_BAD_REQUEST", "actor ID"},
		{"question mark in actor ID", Config{Invoker: &fakeInvoker{}}, "POST", "/v1.0/actors/a/id%3Fx=1/method/m", nil, 400, "ERR_BAD_REQUEST", "actor ID"},
		{"escaped slash in reminder name", Config{Invoker: &fakeInvoker{}}, "POST", "/v1.0/actors/a/1/reminders/..%2F..%2Fmethod%2Fevil", nil, 400, "ERR_MALFORMED_REQUEST", "ReminderRequest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, tt.cfg)
			resp, body := do(t, tt.verb, srv.URL+tt.path, strings.NewReader("12345"), tt.hdr)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d (%s)", resp.StatusCode, tt.wantStatus, body)
			}
			if resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("content-type %q", resp.Header.Get("Content-Type"))
			}
			code, msg := apiError(t, body)
			if code != tt.wantCode || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("got %s %q, want %s containing %q", code, msg, tt.wantCode, tt.wantMsg)
			}
		})
	}
}

// chunked hides the length of r so the client sends it chunked.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestInvokeStreamingBody(t *testing.T) {
	big := make([]byte, 5<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	inv := &fakeInvoker{respond: func(_ string, req *invoke.Request) (*invoke.Response, error) {
		return httpResp(200, nil, "application/octet-stream", "done"), nil
	}}
	srv := serve(t, Config{Invoker: inv, MaxRequestBodySize: 8 << 20})
	resp, body := do(t, "POST", srv.URL+"/v1.0/invoke/a/method/up", chunked{bytes.NewReader(big)}, nil)
	if resp.StatusCode != 200 || string(body) != "done" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	c := inv.last()
	if c.req.ContentLength != -1 {
		t.Errorf("ContentLength = %d, want -1 (chunked)", c.req.ContentLength)
	}
	if !bytes.Equal(c.body, big) {
		t.Errorf("body differs: got %d bytes", len(c.body))
	}

	// The same body over a 4 MiB limit fails cleanly with 413.
	srv = serve(t, Config{Invoker: inv, MaxRequestBodySize: 4 << 20})
	resp, body = do(t, "POST", srv.URL+"/v1.0/invoke/a/method/up", chunked{bytes.NewReader(big)}, nil)
	if resp.StatusCode != 413 {
		t.Fatalf("status %d, want 413 (%s)", resp.StatusCode, body)
	}
	if code, _ := apiError(t, body); code != "ERR_BODY_TOO_LARGE" {
		t.Errorf("code %s", code)
	}
}

func TestInvokeStreamingResponse(t *testing.T) {
	pr, pw := io.Pipe()
	inv := &fakeInvoker{respond: func(string, *invoke.Request) (*invoke.Response, error) {
		r := httpResp(200, nil, "text/event-stream", "")
		r.Body = pr
		return r, nil
	}}
	srv := serve(t, Config{Invoker: inv})
	resp, err := http.Get(srv.URL + "/v1.0/invoke/a/method/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	go func() { _, _ = io.WriteString(pw, "data: 1\n\n") }()
	buf := make([]byte, 64)
	got := make(chan string, 1)
	go func() {
		n, _ := resp.Body.Read(buf)
		got <- string(buf[:n])
	}()
	select {
	case s := <-got:
		if s != "data: 1\n\n" {
			t.Errorf("first chunk %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("first event not flushed while the stream is open")
	}
	pw.Close()
	if rest, _ := io.ReadAll(resp.Body); len(rest) != 0 {
		t.Errorf("rest %q", rest)
	}
}

// readyBody is a streamed answer whose next Read never waits (all of it
// came), or always waits (ready false).
type readyBody struct {
	io.Reader
	ready bool
}

func (b readyBody) Ready() bool  { return b.ready }
func (b readyBody) Close() error { return nil }

// TestInvokeResponseNotFlushedWhenReady: an answer that came whole (its
// body says the next read will not wait) is not flushed chunk by chunk,
// so it leaves with a Content-Length, in one write; a body that would wait
// is flushed, so it goes out chunked.
func TestInvokeResponseNotFlushedWhenReady(t *testing.T) {
	for _, ready := range []bool{true, false} {
		inv := &fakeInvoker{respond: func(string, *invoke.Request) (*invoke.Response, error) {
			r := httpResp(200, nil, "text/plain", "")
			r.Body = readyBody{Reader: iotest.OneByteReader(strings.NewReader("hello")), ready: ready}
			return r, nil
		}}
		srv := serve(t, Config{Invoker: inv})
		resp, body := do(t, "GET", srv.URL+"/v1.0/invoke/a/method/m", nil, nil)
		if string(body) != "hello" {
			t.Fatalf("ready %v: body %q", ready, body)
		}
		chunked := len(resp.TransferEncoding) > 0
		if ready && (chunked || resp.ContentLength != 5) {
			t.Errorf("ready body: transfer encoding %v, content length %d; want one unchunked write of 5 bytes", resp.TransferEncoding, resp.ContentLength)
		}
		if !ready && !chunked {
			t.Errorf("body that waits: not chunked (content length %d): it was not flushed as it came", resp.ContentLength)
		}
	}
}

func TestInvokeResponseBrokenOff(t *testing.T) {
	pr, pw := io.Pipe()
	inv := &fakeInvoker{respond: func(string, *invoke.Request) (*invoke.Response, error) {
		r := httpResp(200, nil, "", "")
		r.Body = pr
		return r, nil
	}}
	srv := serve(t, Config{Invoker: inv})
	go func() {
		_, _ = io.WriteString(pw, "partial")
		pw.CloseWithError(errors.New("peer sidecar gone"))
	}()
	resp, err := http.Get(srv.URL + "/v1.0/invoke/a/method/m")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("truncated response read as complete")
	}
}

func TestHealthz(t *testing.T) {
	var ready, outbound atomic.Bool
	srv := serve(t, Config{AppID: "me", Ready: ready.Load, OutboundReady: outbound.Load})
	check := func(path string, want int, wantCode string) {
		t.Helper()
		resp, body := do(t, "GET", srv.URL+path, nil, nil)
		if resp.StatusCode != want {
			t.Errorf("%s: status %d, want %d", path, resp.StatusCode, want)
		}
		if wantCode != "" {
			if code, _ := apiError(t, body); code != wantCode {
				t.Errorf("%s: code %s, want %s", path, code, wantCode)
			}
		}
	}
	check("/v1.0/healthz", 500, "ERR_HEALTH_NOT_READY")
	check("/v1.0/healthz/outbound", 500, "ERR_OUTBOUND_HEALTH_NOT_READY")
	outbound.Store(true)
	check("/v1.0/healthz/outbound", 204, "")
	check("/v1.0/healthz", 500, "ERR_HEALTH_NOT_READY")
	ready.Store(true)
	check("/v1.0/healthz", 204, "")
	check("//v1.0//healthz/", 204, "")
	check("/v1.0/healthz?appid=me", 204, "")
	check("/v1.0/healthz?appid=other", 500, "ERR_HEALTH_APPID_NOT_MATCH")
}

func TestMetadata(t *testing.T) {
	ext := map[string]string{}
	var calls atomic.Int32
	srv := serve(t, Config{
		AppID: "me",
		Metadata: func(context.Context) *runtimev1.GetMetadataResponse {
			return &runtimev1.GetMetadataResponse{
				RuntimeVersion:       "1.18.2-tandem",
				EnabledFeatures:      []string{"HotReload"},
				ExtendedMetadata:     ext,
				RegisteredComponents: []*runtimev1.RegisteredComponents{{Name: "store", Type: "state.sqlite", Version: "v1", Capabilities: []string{"ETAG"}}},
				AppConnectionProperties: &runtimev1.AppConnectionProperties{
					Port: 3000, Protocol: "http", ChannelAddress: "127.0.0.1",
					Health: &runtimev1.AppConnectionHealthProperties{HealthCheckPath: "/healthz", HealthProbeInterval: "5s", HealthProbeTimeout: "500ms", HealthThreshold: 3},
				},
				Subscriptions: []*runtimev1.PubsubSubscription{{
					PubsubName: "ps", Topic: "t", DeadLetterTopic: "dl",
					Rules: &runtimev1.PubsubSubscriptionRules{Rules: []*runtimev1.PubsubSubscriptionRule{{Match: `event.type == "x"`, Path: "/x"}}},
				}},
			}
		},
		SetMetadata: func(_ context.Context, k, v string) { calls.Add(1); ext[k] = v },
	})
	resp, _ := do(t, "PUT", srv.URL+"/v1.0/metadata/cliPID", strings.NewReader("4242"), nil)
	if resp.StatusCode != 204 {
		t.Fatalf("PUT status %d", resp.StatusCode)
	}
	resp, body := do(t, "GET", srv.URL+"/v1.0/metadata", nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := `{"appConnectionProperties":{"channelAddress":"127.0.0.1","health":{"healthCheckPath":"/healthz","healthProbeInterval":"5s","healthProbeTimeout":"500ms","healthThreshold":3},"port":3000,"protocol":"http"},"components":[{"capabilities":["ETAG"],"name":"store","type":"state.sqlite","version":"v1"}],"enabledFeatures":["HotReload"],"extended":{"cliPID":"4242"},"id":"me","runtimeVersion":"1.18.2-tandem","subscriptions":[{"deadLetterTopic":"dl","pubsubname":"ps","rules":[{"match":"event.type == \"x\"","path":"/x"}],"topic":"t","type":"UNKNOWN"}]}`
	canon, _ := json.Marshal(got)
	if string(canon) != want {
		t.Errorf("metadata\n got %s\nwant %s", canon, want)
	}
	if calls.Load() != 1 {
		t.Errorf("SetMetadata called %d times", calls.Load())
	}

	// Without a provider: just the ID.
	srv = serve(t, Config{AppID: "solo"})
	_, body = do(t, "GET", srv.URL+"/v1.0/metadata", nil, nil)
	if string(body) != `{"id":"solo"}` {
		t.Errorf("bare metadata %s", body)
	}
}

func TestShutdown(t *testing.T) {
	done := make(chan struct{})
	srv := serve(t, Config{Shutdown: func() { close(done) }})
	resp, _ := do(t, "POST", srv.URL+"/v1.0/shutdown", nil, nil)
	if resp.StatusCode != 204 {
		t.Errorf("status %d", resp.StatusCode)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown not called")
	}
	// GET is not the shutdown route: it falls back to invocation.
	resp, _ = do(t, "GET", srv.URL+"/v1.0/shutdown", nil, nil)
	if resp.StatusCode != 404 {
		t.Errorf("GET shutdown status %d", resp.StatusCode)
	}
}

func TestAPIToken(t *testing.T) {
	inv := &fakeInvoker{}
	srv := serve(t, Config{Invoker: inv, APIToken: "s3cret"})
	tests := []struct {
		verb, path string
		token      string
		want       int
	}{
		{"GET", "/v1.0/invoke/a/method/m", "", 401},
		{"GET", "/v1.0/invoke/a/method/m", "wrong", 401},
		{"GET", "/v1.0/invoke/a/method/m", "s3cret", 200},
		{"GET", "/v1.0/metadata", "", 401},
		{"POST", "/v1.0/shutdown", "", 401},
		{"GET", "/v1.0/healthz", "", 204},
		{"GET", "/v1.0/healthz/outbound/", "", 204},
		{"POST", "/v1.0/healthz", "", 401},
	}
	for _, tt := range tests {
		hdr := map[string]string{}
		if tt.token != "" {
			hdr["dapr-api-token"] = tt.token
		}
		resp, body := do(t, tt.verb, srv.URL+tt.path, nil, hdr)
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s token %q: status %d, want %d", tt.verb, tt.path, tt.token, resp.StatusCode, tt.want)
		}
		if tt.want == 401 && strings.TrimSpace(string(body)) != "invalid api token" {
			t.Errorf("401 body %q", body)
		}
	}
	if _, ok := inv.last().req.Message.GetMetadata()["dapr-api-token"]; ok {
		t.Error("API token forwarded to the app")
	}
}

func TestHandleAddsRoutes(t *testing.T) {
	h := New(Config{Invoker: &fakeInvoker{}})
	h.Handle("POST /v1.0/state/{store}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "saved in "+r.PathValue("store"))
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, body := do(t, "POST", srv.URL+"/v1.0/state/s1/", nil, nil)
	if resp.StatusCode != 200 || string(body) != "saved in s1" {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	resp, _ = do(t, "GET", srv.URL+"/v1.0/state/s1/k", nil, nil)
	if resp.StatusCode != 501 {
		t.Errorf("unbuilt state route: %d", resp.StatusCode)
	}
}

// memBody is a response body held in memory, as a unary CallLocal's is.
type memBody struct{ *bytes.Reader }

func (memBody) Close() error { return nil }

// TestInvokeUnaryResponseOneWrite: an answer held in memory goes out with
// its Content-Length (one write), a streamed one chunked; HEAD and 204
// carry no body either way.
func TestInvokeUnaryResponseOneWrite(t *testing.T) {
	var code atomic.Int32
	var streamed atomic.Bool
	inv := &fakeInvoker{respond: func(string, *invoke.Request) (*invoke.Response, error) {
		r := httpResp(code.Load(), nil, "text/plain", "")
		if !streamed.Load() {
			r.Body = memBody{bytes.NewReader([]byte("eleven char"))}
		} else {
			r.Body = io.NopCloser(strings.NewReader("eleven char"))
		}
		return r, nil
	}}
	srv := serve(t, Config{Invoker: inv})
	for _, tt := range []struct {
		method   string
		code     int32
		streamed bool
		wantLen  int64
		wantBody string
	}{
		{"GET", 200, false, 11, "eleven char"},
		{"POST", 201, false, 11, "eleven char"},
		{"GET", 200, true, -1, "eleven char"},
		{"HEAD", 200, false, -1, ""},
		{"GET", 204, false, -1, ""},
	} {
		code.Store(tt.code)
		streamed.Store(tt.streamed)
		resp, body := do(t, tt.method, srv.URL+"/v1.0/invoke/app/method/m", nil, nil)
		if resp.StatusCode != int(tt.code) || string(body) != tt.wantBody {
			t.Errorf("%s %d streamed=%v: got %d %q", tt.method, tt.code, tt.streamed, resp.StatusCode, body)
		}
		if tt.wantLen >= 0 && (resp.ContentLength != tt.wantLen || len(resp.TransferEncoding) != 0) {
			t.Errorf("%s %d streamed=%v: Content-Length %d, Transfer-Encoding %v; want length %d, not chunked",
				tt.method, tt.code, tt.streamed, resp.ContentLength, resp.TransferEncoding, tt.wantLen)
		}
		if tt.streamed && len(resp.TransferEncoding) == 0 {
			t.Errorf("streamed answer not chunked (flushed as it came)")
		}
	}
}

// TestForceShutdown: header dapr-force-shutdown: true calls ForceShutdown
// instead of Shutdown; other values shut down gracefully.
func TestForceShutdown(t *testing.T) {
	for _, tc := range []struct {
		header    string
		wantForce bool
	}{{"true", true}, {"True", true}, {"false", false}, {"", false}} {
		t.Run(tc.header, func(t *testing.T) {
			calls := make(chan string, 2)
			srv := serve(t, Config{
				Shutdown:      func() { calls <- "graceful" },
				ForceShutdown: func() { calls <- "forced" },
			})
			h := map[string]string{}
			if tc.header != "" {
				h["dapr-force-shutdown"] = tc.header
			}
			if resp, _ := do(t, "POST", srv.URL+"/v1.0/shutdown", nil, h); resp.StatusCode != 204 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			want := "graceful"
			if tc.wantForce {
				want = "forced"
			}
			if got := firstCall(t, calls); got != want {
				t.Fatalf("%s shutdown called, want %s", got, want)
			}
		})
	}
}

// firstCall returns the first name sent on calls, and fails the test if
// another follows within 100ms.
func firstCall(t *testing.T, calls <-chan string) string {
	t.Helper()
	var got string
	select {
	case got = <-calls:
	case <-time.After(5 * time.Second):
		t.Fatal("no shutdown was called")
	}
	select {
	case more := <-calls:
		t.Fatalf("%s shutdown called after %s", more, got)
	case <-time.After(100 * time.Millisecond):
	}
	return got
}
