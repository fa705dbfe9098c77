// Command echoapp is the load benchmark's app: it answers every request with
// 200 and the request body (and its Content-Type), and nothing else, so its
// own cost stays small. It reads the whole body before it writes: an
// HTTP/1.x Go server stops reading the request body once the response has
// started, so echoing by streaming would cut bodies above ~512 bytes.
//
// With --actor-types it also hosts those actor types: GET /dapr/config
// lists them, and an actor call (PUT /actors/{type}/{id}/method/{m}) is
// echoed like any other request, so that an actor call and a plain
// invocation cost the app the same.
//
// It listens on 127.0.0.1:$APP_PORT (or --port).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	def, _ := strconv.Atoi(os.Getenv("APP_PORT"))
	port := flag.Int("port", def, "port to listen on (default $APP_PORT)")
	actorTypes := flag.String("actor-types", "", "comma-separated actor types to host (GET /dapr/config lists them)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		log.Error("listen failed; pick another port with --port or APP_PORT", "error", err)
		os.Exit(1)
	}
	handler := echo()
	if *actorTypes != "" {
		handler = withActorConfig(strings.Split(*actorTypes, ","), handler)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("bench echo app listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
}

func echo() http.Handler {
	bufs := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := bufs.Get().(*bytes.Buffer)
		defer bufs.Put(buf)
		buf.Reset()
		if _, err := buf.ReadFrom(r.Body); err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
		_, _ = io.Copy(w, buf)
	})
}

// withActorConfig answers GET /dapr/config with the hosted actor types.
func withActorConfig(types []string, next http.Handler) http.Handler {
	cfg, _ := json.Marshal(map[string]any{"entities": types})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/dapr/config" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(cfg)
			return
		}
		next.ServeHTTP(w, r)
	})
}
