// Command flaky is a misbehaving HTTP test app for resiliency and fault
// tests. Every request is counted per key (and under "*"); the counts are
// read back directly from the app, not through a sidecar.
//
//	/fail/{n}/{key}       503 for the first n requests of key, then 200
//	/status/{code}/{key}  always that status (429 comes with Retry-After: 1)
//	/hang/{dur}/{key}     waits dur (or until the caller gives up), then 200
//	/crash                exits the process at once (status 3), mid-request
//	/count/{key}          {"count": n} for key (not counted itself)
//	anything else         200, echoing the body (counted under "echo")
//
// Every answer carries X-Instance (--name). With --always-status, every
// counted request gets that status instead (a broken instance). Flags
// default to $FLAKY_NAME and $FLAKY_ALWAYS_STATUS. It listens on
// 127.0.0.1:--port (or $APP_PORT).
package main

import (
	"context"
	"encoding/json"
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
	"sync"
	"syscall"
	"time"
)

func main() {
	port := flag.Int("port", envInt("APP_PORT", 0), "port to listen on (default $APP_PORT)")
	name := flag.String("name", envString("FLAKY_NAME", "flaky"), "instance name, sent in header X-Instance (default $FLAKY_NAME)")
	always := flag.Int("always-status", envInt("FLAKY_ALWAYS_STATUS", 0), "answer every request with this status; 0: behave (default $FLAKY_ALWAYS_STATUS)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		log.Error("listen failed; pick another port with --port or APP_PORT", "error", err)
		os.Exit(1)
	}
	a := &app{name: *name, always: *always, counts: map[string]int{}}
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("flaky app listening", "addr", ln.Addr().String(), "name", *name, "always_status", *always)
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

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type app struct {
	name   string
	always int

	mu     sync.Mutex
	counts map[string]int
}

// hit counts a request for key and returns its number (1 for the first).
func (a *app) hit(key string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.counts["*"]++
	a.counts[key]++
	return a.counts[key]
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Instance", a.name)
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if parts[0] == "count" && len(parts) == 2 {
		a.mu.Lock()
		n := a.counts[parts[1]]
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int{"count": n})
		return
	}
	// Read the whole request first: a server may drop an unread body.
	body, _ := io.ReadAll(r.Body)
	key := "echo"
	if len(parts) >= 3 {
		key = parts[2]
	}
	n := a.hit(key)
	if a.always != 0 {
		http.Error(w, fmt.Sprintf("instance %s always answers %d (request %d)", a.name, a.always, n), a.always)
		return
	}
	switch {
	case parts[0] == "crash":
		os.Exit(3)
	case parts[0] == "fail" && len(parts) == 3:
		fails, err := strconv.Atoi(parts[1])
		if err != nil {
			http.Error(w, "bad count", http.StatusBadRequest)
			return
		}
		if n <= fails {
			http.Error(w, fmt.Sprintf("failure %d of %d", n, fails), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ok after %d failures (request %d)", fails, n)
	case parts[0] == "status" && len(parts) == 3:
		code, err := strconv.Atoi(parts[1])
		if err != nil || code < 100 || code > 999 {
			http.Error(w, "bad status code", http.StatusBadRequest)
			return
		}
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d (request %d)", code, n)
	case parts[0] == "hang" && len(parts) == 3:
		d, err := time.ParseDuration(parts[1])
		if err != nil {
			http.Error(w, "bad duration", http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "done after %s (request %d)", d, n)
	default:
		if ct := r.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		_, _ = w.Write(body)
	}
}
