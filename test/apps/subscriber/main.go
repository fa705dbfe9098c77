// Command subscriber is a plain HTTP test app for pub/sub: it subscribes
// programmatically (GET /dapr/subscribe) to topic $TOPIC (default "orders")
// of pub/sub $PUBSUB (default "pubsub"), keeps every CloudEvent delivered to
// POST /orders, and lists their data at GET /received.
//
// For delivery tests it also counts events by their data.seq (duplicates
// included) and reports them at GET /stats?expect=N (how many of seq
// 0..N-1 are missing). With $DEAD_LETTER_TOPIC set, the subscription has
// that dead letter topic and the app subscribes to it at POST /dead. An
// event whose data has "drop": true is answered DROP; "retry": true is
// answered RETRY the first time. $DELAY_MS delays every answer (so that
// deliveries are in flight when a test kills the sidecar).
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

// app is the subscriber's state.
type app struct {
	log      *slog.Logger
	delay    time.Duration
	mu       sync.Mutex
	received []json.RawMessage
	seen     map[int]int // seq -> deliveries
	dead     map[int]int
	retried  map[int]bool
	total    int
}

// stats is the GET /stats answer.
type stats struct {
	Total        int   `json:"total"`
	Unique       int   `json:"unique"`
	Duplicates   int   `json:"duplicates"`
	Dead         int   `json:"dead"`
	Missing      []int `json:"missing,omitempty"` // the first 50 missing of 0..expect-1
	MissingCount int   `json:"missingCount"`
}

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
	pubsub, topic, deadTopic := env("PUBSUB", "pubsub"), env("TOPIC", "orders"), os.Getenv("DEAD_LETTER_TOPIC")
	delay, _ := strconv.Atoi(os.Getenv("DELAY_MS"))
	a := &app{log: log, delay: time.Duration(delay) * time.Millisecond, received: []json.RawMessage{}, seen: map[int]int{}, dead: map[int]int{}, retried: map[int]bool{}}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /dapr/subscribe", func(w http.ResponseWriter, _ *http.Request) {
		subs := []map[string]string{{"pubsubname": pubsub, "topic": topic, "route": "/orders"}}
		if deadTopic != "" {
			subs[0]["deadLetterTopic"] = deadTopic
			subs = append(subs, map[string]string{"pubsubname": pubsub, "topic": deadTopic, "route": "/dead"})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(subs)
	})
	mux.HandleFunc("POST /orders", a.orders)
	mux.HandleFunc("POST /dead", a.deadLetter)
	mux.HandleFunc("GET /received", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.received)
	})
	mux.HandleFunc("GET /stats", a.stats)
	log.Info("subscriber app listening", "addr", ln.Addr().String(), "pubsub", pubsub, "topic", topic, "dead_letter_topic", deadTopic)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
}

// eventData returns the event's data (the body itself if it is not a
// CloudEvent) and its data.seq, if any.
func eventData(r *http.Request) (json.RawMessage, map[string]any, int, bool) {
	body, _ := io.ReadAll(r.Body)
	var ev struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || len(ev.Data) == 0 {
		ev.Data = body
	}
	var fields map[string]any
	_ = json.Unmarshal(ev.Data, &fields)
	seq, ok := fields["seq"].(float64)
	return ev.Data, fields, int(seq), ok
}

func (a *app) orders(w http.ResponseWriter, r *http.Request) {
	data, fields, seq, hasSeq := eventData(r)
	time.Sleep(a.delay)
	a.mu.Lock()
	a.received = append(a.received, data)
	a.total++
	retry := false
	if hasSeq {
		a.seen[seq]++
		if fields["retry"] == true && !a.retried[seq] {
			a.retried[seq] = true
			retry = true
		}
	}
	a.mu.Unlock()
	if !hasSeq {
		a.log.Info("message received", "data", string(data))
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case fields["drop"] == true:
		_, _ = w.Write([]byte(`{"status":"DROP"}`))
	case retry:
		_, _ = w.Write([]byte(`{"status":"RETRY"}`))
	default:
		_, _ = w.Write([]byte(`{"status":"SUCCESS"}`))
	}
}

func (a *app) deadLetter(w http.ResponseWriter, r *http.Request) {
	_, _, seq, ok := eventData(r)
	if ok {
		a.mu.Lock()
		a.dead[seq]++
		a.mu.Unlock()
	}
	w.WriteHeader(http.StatusOK)
}

func (a *app) stats(w http.ResponseWriter, r *http.Request) {
	expect, _ := strconv.Atoi(r.URL.Query().Get("expect"))
	a.mu.Lock()
	s := stats{Total: a.total, Unique: len(a.seen), Dead: len(a.dead)}
	for i := 0; i < expect; i++ {
		if a.seen[i] == 0 && a.dead[i] == 0 {
			s.MissingCount++
			if len(s.Missing) < 50 {
				s.Missing = append(s.Missing, i)
			}
		}
	}
	for _, n := range a.seen {
		s.Duplicates += n - 1
	}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
