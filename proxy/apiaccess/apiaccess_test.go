package apiaccess

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/config"
)

func rule(name, version, protocol string) config.APIRule {
	return config.APIRule{Name: name, Version: version, Protocol: protocol}
}

func mustCompile(t testing.TB, api config.API) *Rules {
	t.Helper()
	r, err := Compile(api)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestClassify(t *testing.T) {
	tests := []struct {
		path          string
		group, gv, uv string
		always        bool
	}{
		{"/v1.0/state/store/key", "state", "v1", "v1.0", false},
		{"/v1.0-alpha1/state/store/query", "state", "v1alpha1", "v1.0-alpha1", false},
		{"/v1.0/invoke/app/method/x", "invoke", "v1", "v1.0", false},
		{"/v1.0/invoke/app/method/../../../state/s/k", "invoke", "v1", "v1.0", false},
		{"/v1.0//state/s/k", "state", "v1", "v1.0", false},
		{"/v1.0/x/../secrets/s/k", "secrets", "v1", "v1.0", false},
		{"//v1.0/publish/p/t", "publish", "v1", "v1.0", false},
		{"/v1.0-alpha1/publish/bulk/p/t", "publish", "v1alpha1", "v1.0-alpha1", false},
		{"/v1.0-beta1/workflows/dapr/id", "workflows", "v1beta1", "v1.0-beta1", false},
		{"/v1.0/metadata", "metadata", "v1", "v1.0", false},
		{"/v1.0/shutdown", "shutdown", "v1", "v1.0", false},
		{"/v1.0/healthz", "healthz", "v1", "v1.0", true},
		{"/v1.0/healthz/outbound", "healthz", "v1", "v1.0", true},
		{"/v1.0/healthz/other", "invoke", "v1", "v1.0", false},
		{"/orders/1", "invoke", "v1", "v1.0", false},
		{"/v2.0/state/s", "invoke", "v1", "v1.0", false},
		{"", "invoke", "v1", "v1.0", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			e := classify(tt.path)
			if e.group != tt.group || e.groupVersion != tt.gv || e.urlVersion != tt.uv || e.always != tt.always {
				t.Errorf("classify(%q) = %+v, want %s %s %s always=%v", tt.path, e, tt.group, tt.gv, tt.uv, tt.always)
			}
		})
	}
}

func TestAllowHTTP(t *testing.T) {
	tests := []struct {
		name  string
		api   config.API
		allow []string
		deny  []string
	}{
		{"no rules", config.API{}, []string{"/v1.0/state/s/k", "/v1.0/invoke/a/method/m", "/x"}, nil},
		{"allow invoke", config.API{Allowed: []config.APIRule{rule("invoke", "v1.0", "http")}},
			[]string{"/v1.0/invoke/a/method/m", "/orders", "/v1.0/healthz"},
			[]string{"/v1.0/state/s/k", "/v1.0/metadata", "/v1.0-alpha1/state/s/query"}},
		{"allow by group version", config.API{Allowed: []config.APIRule{rule("state", "v1", "HTTP")}},
			[]string{"/v1.0/state/s/k", "/v1.0/healthz/outbound"},
			[]string{"/v1.0-alpha1/state/s/query", "/v1.0/invoke/a/method/m", "/unknown"}},
		{"allow alpha", config.API{Allowed: []config.APIRule{rule("state", "v1.0-alpha1", "http")}},
			[]string{"/v1.0-alpha1/state/s/query"}, []string{"/v1.0/state/s/k"}},
		{"deny state", config.API{Denied: []config.APIRule{rule("state", "v1.0", "http")}},
			[]string{"/v1.0/invoke/a/method/m", "/v1.0-alpha1/state/s/query", "/v1.0/secrets/s/k"},
			[]string{"/v1.0/state/s/k", "/v1.0//state/s/k", "/v1.0/x/../state/s"}},
		{"deny wins over allow", config.API{
			Allowed: []config.APIRule{rule("state", "v1.0", "http"), rule("invoke", "v1.0", "http")},
			Denied:  []config.APIRule{rule("state", "v1.0", "http")}},
			[]string{"/v1.0/invoke/a/method/m"}, []string{"/v1.0/state/s/k", "/v1.0/secrets/s/k"}},
		{"healthz cannot be denied", config.API{Denied: []config.APIRule{rule("healthz", "v1.0", "http")}},
			[]string{"/v1.0/healthz", "/v1.0/healthz/outbound"}, nil},
		{"grpc rules leave http open", config.API{Allowed: []config.APIRule{rule("state", "v1", "grpc")}},
			[]string{"/v1.0/secrets/s/k", "/v1.0/invoke/a/method/m"}, nil},
		{"rules without protocol are ignored", config.API{Allowed: []config.APIRule{rule("state", "v1.0", "")}},
			[]string{"/v1.0/secrets/s/k"}, nil},
		{"legacy prefix match", config.API{Allowed: []config.APIRule{rule("pub", "v1.0", "http")}},
			[]string{"/v1.0/publish/p/t"}, []string{"/v1.0/state/s/k"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustCompile(t, tt.api)
			for _, p := range tt.allow {
				if !r.AllowHTTP(p) {
					t.Errorf("AllowHTTP(%q) = false, want true", p)
				}
			}
			for _, p := range tt.deny {
				if r.AllowHTTP(p) {
					t.Errorf("AllowHTTP(%q) = true, want false", p)
				}
			}
		})
	}
}

func TestAllowGRPC(t *testing.T) {
	const dapr = "/dapr.proto.runtime.v1.Dapr/"
	tests := []struct {
		name  string
		api   config.API
		allow []string
		deny  []string
	}{
		{"no rules", config.API{}, []string{dapr + "SaveState", dapr + "Whatever"}, nil},
		{"allow state v1", config.API{Allowed: []config.APIRule{rule("state", "v1", "grpc")}},
			[]string{dapr + "SaveState", dapr + "GetBulkState", "/myapp.Orders/Create", "/grpc.health.v1.Health/Check"},
			[]string{dapr + "QueryStateAlpha1", dapr + "InvokeService", dapr + "PublishEvent", dapr + "Unknown"}},
		{"allow publish and subscribe", config.API{Allowed: []config.APIRule{
			rule("publish", "v1", "grpc"), rule("publish", "v1alpha1", "grpc"), rule("subscribe", "v1alpha1", "grpc")}},
			[]string{dapr + "PublishEvent", dapr + "BulkPublishEvent", dapr + "BulkPublishEventAlpha1", dapr + "SubscribeTopicEventsAlpha1"},
			[]string{dapr + "GetSecret"}},
		{"deny secrets and shutdown", config.API{Denied: []config.APIRule{rule("secrets", "v1", "grpc"), rule("shutdown", "v1", "grpc")}},
			[]string{dapr + "GetMetadata", dapr + "SetMetadata", dapr + "InvokeService"},
			[]string{dapr + "GetSecret", dapr + "GetBulkSecret", dapr + "Shutdown"}},
		{"deny wins", config.API{
			Allowed: []config.APIRule{rule("metadata", "v1", "grpc"), rule("invoke", "v1", "grpc")},
			Denied:  []config.APIRule{rule("metadata", "v1", "grpc")}},
			[]string{dapr + "InvokeService"}, []string{dapr + "GetMetadata", dapr + "SaveState"}},
		{"http version on grpc rule matches nothing", config.API{Allowed: []config.APIRule{rule("state", "v1.0", "grpc")}},
			[]string{dapr + "SaveState", dapr + "GetSecret"}, nil},
		{"http rules leave grpc open", config.API{Allowed: []config.APIRule{rule("invoke", "v1.0", "http")}},
			[]string{dapr + "SaveState"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustCompile(t, tt.api)
			for _, m := range tt.allow {
				if !r.AllowGRPC(m) {
					t.Errorf("AllowGRPC(%q) = false, want true", m)
				}
			}
			for _, m := range tt.deny {
				if r.AllowGRPC(m) {
					t.Errorf("AllowGRPC(%q) = true, want false", m)
				}
			}
		})
	}
}

func TestCompile(t *testing.T) {
	tests := []struct {
		name         string
		api          config.API
		wantErr      string
		wantWarnings int
		http, grpc   bool
	}{
		{"empty", config.API{}, "", 0, false, false},
		{"bad protocol", config.API{Denied: []config.APIRule{rule("state", "v1", "soap")}}, `spec.api.denied[0]: protocol "soap"`, 0, false, false},
		{"missing version", config.API{Allowed: []config.APIRule{rule("state", "", "http")}}, "spec.api.allowed[0]: name and version are required", 0, false, false},
		{"no protocol", config.API{Allowed: []config.APIRule{rule("state", "v1.0", "")}}, "", 1, false, false},
		{"unknown grpc api", config.API{Allowed: []config.APIRule{rule("state", "v1.0", "grpc")}}, "", 1, false, false},
		{"both", config.API{Allowed: []config.APIRule{rule("state", "v1.0", "http"), rule("state", "v1", "grpc")}}, "", 0, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Compile(tt.api)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(r.Warnings()); got != tt.wantWarnings {
				t.Errorf("warnings = %q, want %d", r.Warnings(), tt.wantWarnings)
			}
			if r.HTTPActive() != tt.http || r.GRPCActive() != tt.grpc {
				t.Errorf("active http=%v grpc=%v, want %v %v", r.HTTPActive(), r.GRPCActive(), tt.http, tt.grpc)
			}
		})
	}
}

func TestNilRules(t *testing.T) {
	var r *Rules
	if !r.AllowHTTP("/v1.0/state/s/k") || !r.AllowGRPC("/dapr.proto.runtime.v1.Dapr/SaveState") || r.HTTPActive() || r.GRPCActive() || r.GRPCServerOptions() != nil {
		t.Error("nil Rules must allow everything")
	}
}

func TestHTTPMiddleware(t *testing.T) {
	type seen struct{ path, appIDHeader, authz string }
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("dapr-app-id:billing"))
	tests := []struct {
		name       string
		api        config.API
		path       string
		header     http.Header
		wantStatus int
		wantBody   string
		wantNext   *seen
	}{
		{"allowed passes", config.API{Allowed: []config.APIRule{rule("invoke", "v1.0", "http")}},
			"/v1.0/invoke/a/method/m", nil, 200, "", &seen{path: "/v1.0/invoke/a/method/m"}},
		{"denied, invoke allowed: no app id", config.API{Allowed: []config.APIRule{rule("invoke", "v1.0", "http")}},
			"/v1.0/state/s/k", nil, 404, `"errorCode":"ERR_DIRECT_INVOKE"`, nil},
		{"denied, invoke allowed: header invokes", config.API{Allowed: []config.APIRule{rule("invoke", "v1.0", "http")}},
			"/v1.0/state/s/k", http.Header{"Dapr-App-Id": {"orders"}}, 200, "", &seen{path: "/v1.0/invoke/orders/method/v1.0/state/s/k"}},
		{"denied, invoke allowed: basic auth invokes", config.API{Allowed: []config.APIRule{rule("invoke", "v1.0", "http")}},
			"/v1.0/state/s/k", http.Header{"Authorization": {basic}}, 200, "", &seen{path: "/v1.0/invoke/billing/method/v1.0/state/s/k"}},
		{"denied, invoke denied: plain 404", config.API{Allowed: []config.APIRule{rule("metadata", "v1.0", "http")}},
			"/v1.0/state/s/k", http.Header{"Dapr-App-Id": {"orders"}}, 404, "404 page not found", nil},
		{"healthz always", config.API{Allowed: []config.APIRule{rule("metadata", "v1.0", "http")}},
			"/v1.0/healthz", nil, 200, "", &seen{path: "/v1.0/healthz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *seen
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = &seen{path: r.URL.Path, appIDHeader: r.Header.Get("Dapr-App-Id"), authz: r.Header.Get("Authorization")}
			})
			h := mustCompile(t, tt.api).HTTPMiddleware(next)
			req := httptest.NewRequest("GET", tt.path, nil)
			for k, v := range tt.header {
				req.Header[k] = v
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("body = %q, want it to contain %q", rec.Body.String(), tt.wantBody)
			}
			switch {
			case tt.wantNext == nil && got != nil:
				t.Errorf("next called with %+v", *got)
			case tt.wantNext != nil && (got == nil || *got != *tt.wantNext):
				t.Errorf("next saw %+v, want %+v", got, *tt.wantNext)
			}
		})
	}
}

func TestHTTPMiddlewarePassthrough(t *testing.T) {
	next := http.NotFoundHandler()
	r := mustCompile(t, config.API{Allowed: []config.APIRule{rule("state", "v1", "grpc")}})
	if h := r.HTTPMiddleware(next); h == nil || r.HTTPActive() {
		t.Fatal("without HTTP rules the middleware must be a pass-through")
	}
}

func TestInterceptors(t *testing.T) {
	r := mustCompile(t, config.API{Allowed: []config.APIRule{rule("invoke", "v1", "grpc")}})
	called := 0
	unary := func(context.Context, any) (any, error) { called++; return "ok", nil }
	stream := func(any, grpc.ServerStream) error { called++; return nil }

	for _, tt := range []struct {
		method  string
		allowed bool
	}{
		{"/dapr.proto.runtime.v1.Dapr/InvokeService", true},
		{"/dapr.proto.runtime.v1.Dapr/SaveState", false},
		{"/dapr.proto.runtime.v1.Dapr/SubscribeTopicEventsAlpha1", false},
		{"/myapp.Orders/Create", true},
	} {
		t.Run(tt.method, func(t *testing.T) {
			called = 0
			_, uerr := r.UnaryServerInterceptor(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: tt.method}, unary)
			serr := r.StreamServerInterceptor(nil, nil, &grpc.StreamServerInfo{FullMethod: tt.method}, stream)
			for _, err := range []error{uerr, serr} {
				if tt.allowed {
					if err != nil {
						t.Errorf("err = %v, want nil", err)
					}
					continue
				}
				st := status.Convert(err)
				if st.Code() != codes.Unimplemented || st.Message() != "Not Implemented" {
					t.Errorf("status = %v %q, want Unimplemented \"Not Implemented\"", st.Code(), st.Message())
				}
				i := slices.IndexFunc(st.Details(), func(d any) bool { _, ok := d.(*errdetails.ErrorInfo); return ok })
				if i < 0 {
					t.Fatalf("no ErrorInfo in %v", st.Details())
				}
				info := st.Details()[i].(*errdetails.ErrorInfo)
				if info.GetMetadata()["http.code"] != "501" || info.GetDomain() != "dapr.io" {
					t.Errorf("ErrorInfo = %v", info)
				}
			}
			if want := map[bool]int{true: 2, false: 0}[tt.allowed]; called != want {
				t.Errorf("handler called %d times, want %d", called, want)
			}
		})
	}
	if len(r.GRPCServerOptions()) != 2 {
		t.Error("want a unary and a stream interceptor option")
	}
}

func FuzzAllowHTTP(f *testing.F) {
	for _, s := range []string{"/v1.0/state/s/k", "/v1.0-alpha1/state/s/query", "/v1.0/invoke/a/method/m",
		"//v1.0//healthz", "/v1.0/../v1.0/secrets/x", "", "/", "v1.0", "/v1.0/healthz/outbound/x", "/%00/\x00"} {
		f.Add(s)
	}
	r := &Rules{httpAllowed: map[string]struct{}{"v1.0/invoke": {}}, httpDenied: map[string]struct{}{"v1/state": {}}}
	f.Fuzz(func(t *testing.T, p string) {
		allowed := r.AllowHTTP(p)
		e := classify(p)
		if e.always && !allowed {
			t.Fatalf("health endpoint %q refused", p)
		}
		if e.group == "state" && allowed {
			t.Fatalf("denied state path %q allowed", p)
		}
	})
}
