// Package dashboard serves `tandem dashboard`: one embedded HTML page that
// polls /api/overview (inspect.Collect as JSON) and renders the local
// sentry, the CA and every running app with its components, readiness,
// subscriptions, metrics and identity. No build step: the page is plain
// HTML and JavaScript.
package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"time"

	"github.com/tandemrun/tandem/cmd/tandem/internal/home"
	"github.com/tandemrun/tandem/cmd/tandem/internal/inspect"
)

//go:embed static
var static embed.FS

// Handler returns the dashboard's routes for home h.
func Handler(h *home.Home) http.Handler {
	mux := http.NewServeMux()
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded folder is part of the binary
	}
	mux.Handle("GET /", http.FileServerFS(sub))
	mux.HandleFunc("GET /api/overview", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		ov, err := inspect.Collect(ctx, h)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(ov)
	})
	return mux
}

// Serve serves the dashboard on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, h *home.Home) error {
	srv := &http.Server{Handler: Handler(h), ReadHeaderTimeout: 10 * time.Second}
	errCh := make(chan error, 1)
	go func() { errCh <- srv.Serve(ln) }()
	select {
	case err := <-errCh:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		if err := <-errCh; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
