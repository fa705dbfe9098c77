package httpendpoints

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
	"github.com/tandemrun/tandem/components/secretstores/builtin"
	"github.com/tandemrun/tandem/invoke"
)

// echoed is what the echo backend saw.
type echoed struct {
	Method, Path, Query, Body string
	Header                    http.Header
	ClientCN                  string
}

func echoHandler(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	e := echoed{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: string(b), Header: r.Header}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		e.ClientCN = r.TLS.PeerCertificates[0].Subject.CommonName
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Backend", "yes")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(e)
}

// nextInvoker records the targets handed on by the Router.
type nextInvoker struct {
	mu      sync.Mutex
	targets []string
}

func (n *nextInvoker) Invoke(_ context.Context, target string, _ *invoke.Request) (*invoke.Response, error) {
	n.mu.Lock()
	n.targets = append(n.targets, target)
	n.mu.Unlock()
	return nil, fmt.Errorf("no app %q", target)
}

func newRequest(verb, method, query, body string, md map[string]string) *invoke.Request {
	meta := map[string]*internalsv1.ListStringValue{}
	for k, v := range md {
		meta[k] = &internalsv1.ListStringValue{Values: []string{v}}
	}
	req := &invoke.Request{
		Message: &internalsv1.InternalInvokeRequest{
			Ver:      internalsv1.APIVersion_V1,
			Metadata: meta,
			Message: &commonv1.InvokeRequest{Method: method, ContentType: "text/plain",
				HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_Verb(commonv1.HTTPExtension_Verb_value[verb]), Querystring: query}},
		},
		ContentLength: int64(len(body)),
	}
	if body != "" {
		req.Body = strings.NewReader(body)
	}
	return req
}

func newRouter(t *testing.T, o Options) (*Router, *nextInvoker) {
	t.Helper()
	next := &nextInvoker{}
	o.Next = next
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r, next
}

// call invokes target and decodes the echo backend's answer.
func call(t *testing.T, r *Router, target string, req *invoke.Request) (*invoke.Response, echoed, error) {
	t.Helper()
	resp, err := r.Invoke(context.Background(), target, req)
	if err != nil {
		return nil, echoed{}, err
	}
	defer resp.Body.Close()
	var e echoed
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("decode backend answer: %v", err)
	}
	return resp, e, nil
}

func TestInvokeEndpointByName(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(echoHandler))
	defer srv.Close()
	var mu sync.Mutex
	var sent []string
	r, next := newRouter(t, Options{Sent: func(target string) func(int32) {
		return func(st int32) {
			mu.Lock()
			sent = append(sent, fmt.Sprintf("%s %d", target, st))
			mu.Unlock()
		}
	}})
	r.Apply([]components.HTTPEndpoint{{Name: "ext", BaseURL: srv.URL + "/api/v2/",
		Headers: []components.MetadataItem{{Name: "X-Api-Key", Value: "k1", HasValue: true}, {Name: "x-caller", Value: "endpoint", HasValue: true}}}})

	req := newRequest("POST", "orders/../items/%41", "a=1&b=2", "hello", map[string]string{"x-caller": "app", "x-other": "kept"})
	resp, got, err := call(t, r, "ext", req)
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != "POST" || got.Path != "/api/v2/items/A" || got.Query != "a=1&b=2" || got.Body != "hello" {
		t.Errorf("backend saw %s %s?%s %q", got.Method, got.Path, got.Query, got.Body)
	}
	if got.Header.Get("X-Api-Key") != "k1" || got.Header.Get("X-Caller") != "endpoint" || got.Header.Get("X-Other") != "kept" ||
		got.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("backend saw headers %v; want the endpoint's over the caller's, and the caller's others", got.Header)
	}
	if code := resp.Message.GetStatus().GetCode(); code != http.StatusAccepted || !resp.IsHTTP() {
		t.Errorf("status %d", code)
	}
	if ct := resp.Message.GetMessage().GetContentType(); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	if v := resp.Message.GetHeaders()["x-backend"]; v == nil || v.Values[0] != "yes" {
		t.Errorf("response headers %v", resp.Message.GetHeaders())
	}
	mu.Lock()
	if !slices.Equal(sent, []string{"ext 202"}) {
		t.Errorf("metrics told %v", sent)
	}
	mu.Unlock()

	if _, err := r.Invoke(context.Background(), "someapp", newRequest("GET", "x", "", "", nil)); err == nil {
		t.Error("an app ID was not handed to the next invoker")
	}
	if !slices.Equal(next.targets, []string{"someapp"}) {
		t.Errorf("next invoker got %v", next.targets)
	}
	if _, err := r.Invoke(context.Background(), "ext", newRequest("GET", "a%zz", "", "", nil)); err == nil || !strings.Contains(err.Error(), "not a valid URL path") {
		t.Errorf("bad method: %v", err)
	}
}

func TestInvokeURLTarget(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/old" {
			// daprd's clients follow redirects for HTTP endpoints.
			http.Redirect(w, req, srv.URL+"/new", http.StatusMovedPermanently)
			return
		}
		echoHandler(w, req)
	}))
	defer srv.Close()
	r, next := newRouter(t, Options{})
	_, got, err := call(t, r, srv.URL, newRequest("GET", "old", "q=1", "", nil))
	if err != nil {
		t.Fatal(err)
	}
	if got.Path != "/new" {
		t.Errorf("redirect not followed: backend saw %s", got.Path)
	}
	_, got, err = call(t, r, srv.URL+"/base", newRequest("GET", "m", "", "", nil))
	if err != nil || got.Path != "/base/m" {
		t.Errorf("URL with a path: %v, backend saw %s", err, got.Path)
	}
	if len(next.targets) != 0 {
		t.Errorf("URL targets reached the next invoker: %v", next.targets)
	}
	if _, err := r.Invoke(context.Background(), "http://", newRequest("GET", "m", "", "", nil)); err == nil {
		t.Error("a URL without a host was accepted")
	}
}

func TestInvokeEndpointTLS(t *testing.T) {
	pki := newTestPKI(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(echoHandler))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.serverCert}, ClientCAs: pki.pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()
	base := "https://localhost:" + srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	r, _ := newRouter(t, Options{})
	r.Apply([]components.HTTPEndpoint{
		{Name: "mtls", BaseURL: base, ClientTLS: &components.ClientTLS{
			RootCA:      &components.TLSDocument{Value: pki.caPEM},
			Certificate: &components.TLSDocument{Value: pki.clientCertPEM}, PrivateKey: &components.TLSDocument{Value: pki.clientKey},
			Renegotiation: components.RenegotiateOnceAsClient,
		}},
		{Name: "nocert", BaseURL: base, ClientTLS: &components.ClientTLS{RootCA: &components.TLSDocument{Value: pki.caPEM}}},
		{Name: "noroot", BaseURL: base, ClientTLS: &components.ClientTLS{
			Certificate: &components.TLSDocument{Value: pki.clientCertPEM}, PrivateKey: &components.TLSDocument{Value: pki.clientKey}}},
		{Name: "badkey", BaseURL: base, ClientTLS: &components.ClientTLS{
			Certificate: &components.TLSDocument{Value: pki.clientCertPEM}, PrivateKey: &components.TLSDocument{Value: pki.caPEM}}},
	})
	if _, got, err := call(t, r, "mtls", newRequest("GET", "hello", "", "", nil)); err != nil || got.ClientCN != "localhost" {
		t.Errorf("mTLS call: %v, client certificate %q", err, got.ClientCN)
	}
	if _, _, err := call(t, r, "nocert", newRequest("GET", "hello", "", "", nil)); err == nil {
		t.Error("the server requires a client certificate, yet the call without one succeeded")
	}
	if _, _, err := call(t, r, "noroot", newRequest("GET", "hello", "", "", nil)); err == nil || !strings.Contains(err.Error(), "tls: failed to verify certificate") {
		t.Errorf("without the root CA: %v, want daprd's verification error", err)
	}
	if _, _, err := call(t, r, "badkey", newRequest("GET", "hello", "", "", nil)); err == nil || !strings.Contains(err.Error(), `http endpoint "badkey"`) {
		t.Errorf("mismatched key: %v", err)
	}
}

// TestEndpointHeadersFromSecretStore reads a header from a local file
// secret store that is loaded after the endpoint: calls fail until the
// store is ready, then carry the secret.
func TestEndpointHeadersFromSecretStore(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(echoHandler))
	defer srv.Close()
	dir := t.TempDir()
	secretsFile := filepath.Join(dir, "secrets.json")
	if err := os.WriteFile(secretsFile, []byte(`{"api": {"token": "s3cr3t"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	set := components.Parse([]byte(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: local}
spec:
  type: secretstores.local.file
  metadata:
  - {name: secretsFile, value: "`+secretsFile+`"}
---
apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata: {name: ext}
auth: {secretStore: local}
spec:
  baseUrl: `+srv.URL+`
  headers:
  - name: Authorization
    secretKeyRef: {name: "api:token"}
`), "res.yaml", "app")
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	secrets := components.NewManager(builtin.Kind(), components.ManagerOptions{Resolve: components.Env{AppID: "app"}.Resolve})
	defer secrets.Close()
	env := components.Env{AppID: "app", Secret: secretstores.Resolver(secrets.Registry())}
	r, _ := newRouter(t, Options{Resolve: env.ResolveHTTPEndpoint})
	r.Apply(set.HTTPEndpoints)

	if _, _, err := call(t, r, "ext", newRequest("GET", "x", "", "", nil)); err == nil || strings.Contains(err.Error(), "s3cr3t") ||
		!strings.Contains(err.Error(), `secret store "local"`) {
		t.Fatalf("before the store is loaded: %v", err)
	}
	secrets.Apply(set.Components)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := secrets.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	_, got, err := call(t, r, "ext", newRequest("GET", "x", "", "", nil))
	if err != nil || got.Header.Get("Authorization") != "s3cr3t" {
		t.Errorf("after the store is ready: %v, Authorization %q", err, got.Header.Get("Authorization"))
	}
}

// TestApplyReplacesEndpoints is hot reload: a changed endpoint goes to its
// new URL, a removed one is an app ID again, an unchanged one keeps its
// client.
func TestApplyReplacesEndpoints(t *testing.T) {
	one := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "one") }))
	defer one.Close()
	two := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "two") }))
	defer two.Close()
	r, next := newRouter(t, Options{})
	body := func(target string) string {
		t.Helper()
		resp, err := r.Invoke(context.Background(), target, newRequest("GET", "x", "", "", nil))
		if err != nil {
			return "error"
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	r.Apply([]components.HTTPEndpoint{{Name: "a", BaseURL: one.URL}, {Name: "b", BaseURL: one.URL}})
	if body("a") != "one" || body("b") != "one" {
		t.Fatal("first set not in effect")
	}
	r.mu.RLock()
	keptB := r.eps["b"]
	r.mu.RUnlock()
	r.Apply([]components.HTTPEndpoint{{Name: "b", BaseURL: one.URL}, {Name: "a", BaseURL: two.URL}, {Name: "c", BaseURL: two.URL}})
	if got := r.Names(); !slices.Equal(got, []string{"b", "a", "c"}) {
		t.Errorf("Names = %v", got)
	}
	if body("a") != "two" || body("c") != "two" || body("b") != "one" {
		t.Error("changed set not in effect")
	}
	r.mu.RLock()
	if r.eps["b"] != keptB {
		t.Error("an unchanged endpoint was rebuilt")
	}
	r.mu.RUnlock()
	r.Apply(nil)
	if body("a") != "error" || len(r.Names()) != 0 || !slices.Equal(next.targets, []string{"a"}) {
		t.Errorf("removed endpoint: names %v, next got %v", r.Names(), next.targets)
	}
}

// TestStreamedResponse checks that server-sent events reach the caller as
// they are sent, not when the response ends.
func TestStreamedResponse(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, "data: 2\n\n")
	}))
	defer srv.Close()
	r, _ := newRouter(t, Options{})
	r.Apply([]components.HTTPEndpoint{{Name: "events", BaseURL: srv.URL}})
	resp, err := r.Invoke(context.Background(), "events", newRequest("GET", "stream", "", "", nil))
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || sc.Text() != "data: 1" {
		close(release)
		t.Fatalf("first event: %q %v", sc.Text(), sc.Err())
	}
	close(release)
	var rest []string
	for sc.Scan() {
		if sc.Text() != "" {
			rest = append(rest, sc.Text())
		}
	}
	if !slices.Equal(rest, []string{"data: 2"}) {
		t.Errorf("rest of the stream %q", rest)
	}
}
