package oauth2clientcredentials

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/tandemrun/tandem/components"
)

func TestTokenFetchedCachedAndAdded(t *testing.T) {
	var fetches atomic.Int32
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "client_credentials" || r.Form.Get("scope") != "a b" || r.Form.Get("resource") != "x" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if id, secret, ok := r.BasicAuth(); !ok || id != "id" || secret != "secret" {
			http.Error(w, "bad client", http.StatusUnauthorized)
			return
		}
		n := fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("tok%d", n), "token_type": "Bearer", "expires_in": 3600})
	}))
	defer tokenSrv.Close()
	m := New(nil)()
	err := m.Init(context.Background(), components.Metadata{Name: "oauth", Properties: map[string]string{
		"clientID": "id", "clientSecret": "secret", "scopes": "a,b", "tokenURL": tokenSrv.URL, "headerName": "Authorization",
		"endpointParamsQuery": "resource=x", "authStyle": "2", "pathFilter": "^/api/",
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.Header.Get("Authorization")))
	}))
	call := func(path string) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Body.String()
	}
	for range 3 {
		if got := call("/api/x"); got != "Bearer tok1" {
			t.Fatalf("header %q", got)
		}
	}
	if got := call("/other"); got != "" {
		t.Fatalf("outside pathFilter: %q", got)
	}
	if fetches.Load() != 1 {
		t.Fatalf("%d token fetches, want 1 (cached)", fetches.Load())
	}
}

func TestTokenFailureIs500(t *testing.T) {
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusUnauthorized) }))
	defer tokenSrv.Close()
	m := New(nil)()
	if err := m.Init(context.Background(), components.Metadata{Name: "oauth", Properties: map[string]string{
		"clientID": "id", "clientSecret": "s", "scopes": "a", "tokenURL": tokenSrv.URL, "headerName": "Authorization",
	}}); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.Handler(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("got %d %q", rec.Code, rec.Body.String())
	}
}

func TestMetadataErrors(t *testing.T) {
	for _, props := range []map[string]string{
		{},
		{"clientID": "id", "clientSecret": "s", "scopes": "a", "tokenURL": "http://x", "headerName": "A", "authStyle": "7"},
		{"clientID": "id", "clientSecret": "s", "scopes": "a", "tokenURL": "http://x", "headerName": "A", "pathFilter": "("},
	} {
		if err := New(nil)().Init(context.Background(), components.Metadata{Properties: props}); !components.IsPermanent(err) {
			t.Errorf("%v: %v", props, err)
		}
	}
}
