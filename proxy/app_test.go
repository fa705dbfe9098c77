package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestReadConfig: with ReadConfig the app gets daprd's start-up
// GET /dapr/config carrying Dapr-App-Id; without it, nothing.
func TestReadConfig(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls = append(calls, r.Method+" "+r.URL.Path+" "+r.Header.Get("Dapr-App-Id"))
		mu.Unlock()
		_, _ = w.Write([]byte(`{"entities":[]}`))
	}))
	defer app.Close()
	port := app.Listener.Addr().(*netTCPAddr).Port
	for _, read := range []bool{false, true} {
		a, err := NewApp(AppConfig{Port: port, ReadConfig: read})
		if err != nil {
			t.Fatal(err)
		}
		a.readConfig(context.Background(), "myapp", slog.New(slog.DiscardHandler))
		_ = a.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || calls[0] != "GET /dapr/config myapp" {
		t.Errorf("app saw %q, want one GET /dapr/config with Dapr-App-Id myapp", calls)
	}
}
