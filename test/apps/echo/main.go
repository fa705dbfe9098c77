// Command echo is a plain HTTP test app. It answers every path:
//
//	/status/{code}      replies with that status code
//	/call/{app}/{m...}  invokes {app}'s method {m} through its own sidecar
//	                    (DAPR_HTTP_PORT) and relays the answer
//	anything else       echoes the body back, with the request's method,
//	                    path, query and caller app ID in X-Echo-* headers
//
// It listens on 127.0.0.1:$APP_PORT (or --port).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	port := flag.Int("port", envInt("APP_PORT", 0), "port to listen on (default $APP_PORT)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		log.Error("listen failed; pick another port with --port or APP_PORT", "error", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: handler(os.Getenv("DAPR_HTTP_PORT")), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("echo app listening", "addr", ln.Addr().String(), "app_id", os.Getenv("APP_ID"))
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func handler(daprHTTPPort string) http.Handler {
	client := &http.Client{Timeout: 30 * time.Second}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/status/"):
			code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
			if err != nil || code < 100 || code > 999 {
				http.Error(w, "bad status code", http.StatusBadRequest)
				return
			}
			w.Header().Set("X-Echo-Status", strconv.Itoa(code))
			w.WriteHeader(code)
			fmt.Fprintf(w, "status %d\n", code)
		case strings.HasPrefix(r.URL.Path, "/call/"):
			rest := strings.TrimPrefix(r.URL.Path, "/call/")
			app, method, _ := strings.Cut(rest, "/")
			url := "http://127.0.0.1:" + daprHTTPPort + "/v1.0/invoke/" + app + "/method/" + method
			req, err := http.NewRequestWithContext(r.Context(), r.Method, url, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
		default:
			h := w.Header()
			h.Set("X-Echo-Method", r.Method)
			h.Set("X-Echo-Path", r.URL.Path)
			h.Set("X-Echo-Query", r.URL.RawQuery)
			h.Set("X-Echo-Caller", r.Header.Get("dapr-caller-app-id"))
			h.Set("X-Echo-Callee", r.Header.Get("dapr-callee-app-id"))
			h.Set("X-Echo-Header", r.Header.Get("X-Test-Header"))
			if ct := r.Header.Get("Content-Type"); ct != "" {
				h.Set("Content-Type", ct)
			}
			// Read the whole request before answering: an HTTP/1.1 server
			// may discard the unread rest of a body once the response starts.
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(body)
		}
	})
}
