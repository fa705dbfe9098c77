package routerchecker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tandemrun/tandem/components"
)

func TestRule(t *testing.T) {
	m := New()
	if err := m.Init(context.Background(), components.Metadata{Properties: map[string]string{"rule": `^[A-Za-z0-9/._-]+$`}}); err != nil {
		t.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for target, want := range map[string]int{
		"/v1.0/invoke/app/method/ok":    http.StatusNoContent,
		"/v1.0/invoke/app/method/a%20b": http.StatusBadRequest,
		"/v1.0/invoke/app/method/x?q=1": http.StatusBadRequest,
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		if rec.Code != want || (want == 400 && rec.Body.String() != "invalid router") {
			t.Errorf("%s: %d %q, want %d", target, rec.Code, rec.Body.String(), want)
		}
	}
	if err := New().Init(context.Background(), components.Metadata{Properties: map[string]string{"rule": "("}}); !components.IsPermanent(err) {
		t.Errorf("bad rule: %v", err)
	}
}
