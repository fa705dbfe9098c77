// Command subscriber is a plain HTTP test app for pub/sub: it subscribes
// programmatically (GET /dapr/subscribe) to topic $TOPIC (default "orders")
// of pub/sub $PUBSUB (default "pubsub"), keeps every CloudEvent delivered to
// POST /orders, and lists their data at GET /received.
//
// It listens on 127.0.0.1:$APP_PORT (or --port).
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

func main() {
	port := flag.Int("port", 0, "port to listen on (default $APP_PORT)")
	flag.Parse()
	if *port == 0 {
		*port, _ = strconv.Atoi(os.Getenv("APP_PORT"))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		log.Error("listen failed; pick another port with --port or APP_PORT", "error", err)
		os.Exit(1)
	}
	pubsub, topic := env("PUBSUB", "pubsub"), env("TOPIC", "orders")
	var (
		mu       sync.Mutex
		received = []json.RawMessage{}
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dapr/subscribe", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode([]map[string]string{{"pubsubname": pubsub, "topic": topic, "route": "/orders"}})
	})
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &ev); err != nil || len(ev.Data) == 0 {
			ev.Data = body
		}
		mu.Lock()
		received = append(received, ev.Data)
		mu.Unlock()
		log.Info("message received", "topic", topic, "data", string(ev.Data))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"SUCCESS"}`))
	})
	mux.HandleFunc("GET /received", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(received)
	})
	log.Info("subscriber app listening", "addr", ln.Addr().String(), "pubsub", pubsub, "topic", topic)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
