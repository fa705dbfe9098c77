package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestAPILogHTTP(t *testing.T) {
	tests := []struct {
		name      string
		opts      APILogOptions
		path      string
		wantLines int
		wantPath  string
		// wantEndpoint is the endpoint attribute (obfuscated invocations).
		wantEndpoint string
	}{
		{"path and query keys, no values", APILogOptions{}, "/v1.0/state/s/k?token=s3cret&b=2", 1, "/v1.0/state/s/k?b=&token=", ""},
		{"obfuscated", APILogOptions{ObfuscateURLs: true}, "/v1.0/invoke/app/method/orders/42?x=1", 1, "/v1.0/invoke/{id}/method/{method}", "InvokeService/app"},
		{"obfuscated state", APILogOptions{ObfuscateURLs: true}, "/v1.0/state/store/key", 1, "/v1.0/state/{storeName}/{key}", ""},
		{"health checks logged by default", APILogOptions{}, "/v1.0/healthz", 1, "/v1.0/healthz", ""},
		{"health checks omitted", APILogOptions{OmitHealthChecks: true}, "/v1.0/healthz/outbound", 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.opts.Log = slog.New(slog.NewJSONHandler(&buf, nil))
			h := NewAPILogger(tt.opts).HTTPMiddleware(statusHandler())
			r := httptest.NewRequest(http.MethodGet, tt.path, nil)
			r.Header.Set("dapr-api-token", "tok3n")
			h.ServeHTTP(httptest.NewRecorder(), r)
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if buf.Len() == 0 {
				lines = nil
			}
			if len(lines) != tt.wantLines {
				t.Fatalf("%d lines, want %d: %q", len(lines), tt.wantLines, buf.String())
			}
			if strings.Contains(buf.String(), "s3cret") || strings.Contains(buf.String(), "tok3n") {
				t.Errorf("secret logged: %s", buf.String())
			}
			if tt.wantLines == 0 {
				return
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
				t.Fatal(err)
			}
			if ep, _ := rec["endpoint"].(string); ep != tt.wantEndpoint {
				t.Errorf("endpoint %q, want %q", ep, tt.wantEndpoint)
			}
			if rec["msg"] != "HTTP API Called" || rec["path"] != tt.wantPath || rec["method"] != "GET" || rec["code"] != 200.0 || rec["duration"] == nil {
				t.Errorf("log record %v, want path %q", rec, tt.wantPath)
			}
		})
	}
}

func TestAPILogGRPC(t *testing.T) {
	var buf bytes.Buffer
	a := NewAPILogger(APILogOptions{Log: slog.New(slog.NewJSONHandler(&buf, nil))})
	info := &grpc.UnaryServerInfo{FullMethod: "/dapr.proto.runtime.v1.Dapr/GetState"}
	_, _ = a.unary(context.Background(), nil, info, func(context.Context, any) (any, error) {
		return nil, status.Error(codes.NotFound, "nope")
	})
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["msg"] != "gRPC API Called" || rec["method"] != info.FullMethod || rec["code"] != "NotFound" {
		t.Errorf("record %v", rec)
	}
}

func TestNilObserversPassThrough(t *testing.T) {
	var (
		m  *Metrics
		l  *APILogger
		tr *Tracing
	)
	h := statusHandler()
	for _, wrapped := range []http.Handler{m.HTTPMiddleware(h), l.HTTPMiddleware(h), tr.HTTPMiddleware(h)} {
		if serve(wrapped, "GET", "/x", "") != 200 {
			t.Error("nil observer broke the handler")
		}
	}
	m.ComponentOp(KindState, "s", "get", true, 1)
	m.PubSubEgress("p", "t", true, 1)
	if hooks := m.ResiliencyHooks(); hooks.Applied != nil {
		t.Error("nil metrics returned hooks")
	}
}
