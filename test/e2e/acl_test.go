package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// aclSpec lets app "caller" do anything on the callee except POST under
// /admin/, and refuses every other caller.
const aclSpec = `  accessControl:
    defaultAction: deny
    trustDomain: public
    policies:
    - appId: caller
      defaultAction: allow
      trustDomain: public
      namespace: default
      operations:
      - name: /admin/*
        httpVerb: ['POST']
        action: deny
`

// TestAccessControl runs a callee sidecar with an access policy in front of
// an in-process app that records every request it gets, and checks that a
// denied call is a 403 ERR_DIRECT_INVOKE naming the caller's SPIFFE ID and
// never reaches the app, while allowed calls do.
func TestAccessControl(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		_, _ = io.Copy(w, r.Body)
	}))
	defer app.Close()
	u, _ := url.Parse(app.URL)
	appPort, _ := strconv.Atoi(u.Port())

	s := framework.StartSentry(t, bins, framework.SentryOptions{})
	registry := filepath.Join(t.TempDir(), "r.db")
	framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "callee", AppPort: appPort, Sentry: s,
		Args: []string{"--config", framework.WriteConfig(t, registry, aclSpec)},
	})
	callers := map[string]*framework.Sidecar{}
	for _, id := range []string{"caller", "stranger"} {
		callers[id] = framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: id, Sentry: s, Registry: registry})
	}

	tests := []struct {
		caller, verb, method string
		wantStatus           int
		wantSeen             bool
	}{
		{"caller", "POST", "admin/users", 403, false},
		{"caller", "POST", "ADMIN/users", 403, false},
		{"caller", "GET", "admin/users", 200, true},
		{"caller", "POST", "orders", 200, true},
		{"stranger", "GET", "orders", 403, false},
	}
	client := &http.Client{}
	for _, tt := range tests {
		t.Run(tt.caller+" "+tt.verb+" "+tt.method, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			req, _ := http.NewRequest(tt.verb, callers[tt.caller].HTTPURL()+"/v1.0/invoke/callee/method/"+tt.method, strings.NewReader("hi"))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.wantStatus)
			}
			mu.Lock()
			got := len(seen) > 0
			mu.Unlock()
			if got != tt.wantSeen {
				t.Fatalf("app called = %v, want %v", got, tt.wantSeen)
			}
			if tt.wantStatus != 403 {
				return
			}
			var e struct{ ErrorCode, Message string }
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body %q: %v", body, err)
			}
			id := "spiffe://public/ns/default/" + tt.caller
			want := "access control policy has denied access to id: " + id + " operation: " + tt.method + " verb: " + tt.verb
			if e.ErrorCode != "ERR_DIRECT_INVOKE" || !strings.Contains(e.Message, want) {
				t.Fatalf("error = %+v, want ERR_DIRECT_INVOKE with %q", e, want)
			}
			t.Logf("denied: %s", e.Message)
		})
	}
}

// TestAccessControlGRPCApp: for a gRPC app the operation's action decides
// (no verbs), both for service invocation and for proxied gRPC calls,
// whose operation is the full method name.
func TestAccessControlGRPCApp(t *testing.T) {
	const spec = `  accessControl:
    defaultAction: deny
    policies:
    - appId: caller
      defaultAction: deny
      trustDomain: public
      namespace: default
      operations:
      - name: /whoami
        action: allow
      - name: /dapr.proto.runtime.v1.AppCallback/ListTopicSubscriptions
        action: allow
`
	s := framework.StartSentry(t, bins, framework.SentryOptions{})
	registry := filepath.Join(t.TempDir(), "r.db")
	app := framework.StartApp(t, "grpc app", bins.GRPCEcho)
	framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "grpcsvc", AppPort: app.Port, AppProtocol: "grpc", Sentry: s,
		Args: []string{"--config", framework.WriteConfig(t, registry, spec)},
	})
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "caller", Sentry: s, Registry: registry})

	for method, want := range map[string]int{"whoami": 200, "echo": 403} {
		resp, err := http.Post(caller.HTTPURL()+"/v1.0/invoke/grpcsvc/method/"+method, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("invoke %s: status %d (%s), want %d", method, resp.StatusCode, body, want)
		}
		if want == 403 && !strings.Contains(string(body), "access control policy has denied access to id: spiffe://public/ns/default/caller operation: echo verb: NONE") {
			t.Errorf("invoke %s: body %s", method, body)
		}
	}

	conn, err := grpc.NewClient(caller.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "dapr-app-id", "grpcsvc"), 10*time.Second)
	defer cancel()
	cb := runtimev1.NewAppCallbackClient(conn)
	if _, err := cb.ListTopicSubscriptions(ctx, &emptypb.Empty{}); err != nil {
		t.Errorf("allowed proxied call: %v", err)
	}
	_, err = cb.ListInputBindings(ctx, &emptypb.Empty{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "operation: /dapr.proto.runtime.v1.AppCallback/ListInputBindings verb: NONE") {
		t.Errorf("denied proxied call: %v, want PermissionDenied naming the method", err)
	}
}
