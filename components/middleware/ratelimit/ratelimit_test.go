package ratelimit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
)

func TestLimitPerClient(t *testing.T) {
	m := New().(*Middleware)
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	if err := m.Init(context.Background(), components.Metadata{Properties: map[string]string{"maxRequestsPerSecond": "2"}}); err != nil {
		t.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	call := func(addr string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = addr
		h.ServeHTTP(rec, r)
		return rec
	}
	for i := range 2 {
		if c := call("10.0.0.1:1234").Code; c != http.StatusNoContent {
			t.Fatalf("request %d: %d", i, c)
		}
	}
	rec := call("10.0.0.1:999")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("third request: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if c := call("10.0.0.2:1").Code; c != http.StatusNoContent {
		t.Fatalf("another client is limited too: %d", c)
	}
	now = now.Add(time.Second)
	if c := call("10.0.0.1:1234").Code; c != http.StatusNoContent {
		t.Fatalf("after a second: %d", c)
	}
}

func TestMetadata(t *testing.T) {
	for v, ok := range map[string]bool{"": true, "0.5": true, "100": true, "0": false, "-1": false, "abc": false, "NaN": false} {
		err := New().Init(context.Background(), components.Metadata{Properties: map[string]string{"maxRequestsPerSecond": v}})
		if (err == nil) != ok || (err != nil && !components.IsPermanent(err)) {
			t.Errorf("maxRequestsPerSecond %q: %v", v, err)
		}
	}
}
