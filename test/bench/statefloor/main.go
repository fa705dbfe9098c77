// Command statefloor is the state benchmark's floor: the least an HTTP
// server in front of Redis can do. POST /s/{key} stores the body with
// HSET key data <body>, GET /s/{key} answers HGET key data — no JSON, no
// ETag, no script, no Dapr semantics. Whatever it reaches relative to
// direct Redis calls bounds what any HTTP state API can on the machine.
package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"

	goredis "github.com/redis/go-redis/v9"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	rdb := goredis.NewClient(&goredis.Options{Addr: *addr, Protocol: 2, DisableIdentity: true})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /s/{key}", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err == nil {
			err = rdb.HSet(r.Context(), r.PathValue("key"), "data", b).Err()
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /s/{key}", func(w http.ResponseWriter, r *http.Request) {
		b, err := rdb.HGet(r.Context(), r.PathValue("key"), "data").Bytes()
		switch {
		case errors.Is(err, goredis.Nil):
			w.WriteHeader(http.StatusNoContent)
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(b)
		}
	})
	err := http.ListenAndServe(*listen, mux)
	log.Error("serve", "error", err)
	os.Exit(1)
}
