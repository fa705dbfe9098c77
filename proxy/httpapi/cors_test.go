package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCORS(t *testing.T) {
	api := New(Config{APIToken: "test"})
	tests := []struct {
		name, allowed           string
		method, origin, reqMeth string
		token                   string
		wantStatus              int
		wantACAO                string
		wantVary                bool
	}{
		{"preflight without token, listed origin", "https://example.com", http.MethodOptions, "https://example.com", "GET", "", 200, "https://example.com", true},
		{"preflight, origin not listed", "https://example.com", http.MethodOptions, "https://foobaz.com", "GET", "", 200, "", true},
		{"preflight, wrong token is not checked", "https://example.com", http.MethodOptions, "https://example.com", "GET", "foo", 200, "https://example.com", true},
		{"preflight, method not allowed", "https://example.com", http.MethodOptions, "https://example.com", "OPTIONS", "", 200, "", true},
		{"preflight, wildcard origin", "https://*.example.com", http.MethodOptions, "https://a.example.com", "POST", "", 200, "https://a.example.com", true},
		{"preflight, allow all", "*", http.MethodOptions, "https://any.org", "PUT", "", 200, "*", true},
		{"GET without origin", "*", http.MethodGet, "", "", "test", 200, "", true},
		{"GET with origin", "*", http.MethodGet, "https://any.org", "", "test", 200, "*", true},
		{"GET, wrong token", "*", http.MethodGet, "https://any.org", "", "nope", 401, "*", true},
		{"CORS off: preflight needs the token", "", http.MethodOptions, "https://example.com", "GET", "", 401, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/v1.0/metadata", nil)
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			if tt.reqMeth != "" {
				req.Header.Set("Access-Control-Request-Method", tt.reqMeth)
			}
			if tt.token != "" {
				req.Header.Set("dapr-api-token", tt.token)
			}
			rec := httptest.NewRecorder()
			CORS(tt.allowed, api).ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if g := rec.Header().Get("Access-Control-Allow-Origin"); g != tt.wantACAO {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", g, tt.wantACAO)
			}
			if g := rec.Header().Get("Vary") != ""; g != tt.wantVary {
				t.Errorf("Vary set = %v, want %v", g, tt.wantVary)
			}
		})
	}
}
