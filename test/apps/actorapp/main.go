// Command actorapp is an actor app written with the official Go SDK actor
// runtime (github.com/dapr/go-sdk/actor, served by go-sdk/service/http).
// It hosts actor type GoCounter, whose methods are:
//
//	Incr         adds 1 to a count kept in the app's memory and returns it;
//	             it checks that no two turns of one actor ever overlap
//	Add          adds its argument to "count" in the SDK's state manager
//	             (saved by the SDK after the call) and returns the sum
//	Get          reads "count" through the state manager
//	StartTimer   registers a timer (gRPC RegisterActorTimer) whose
//	             callback OnTimer records the timer's data
//	StartRemind  registers a reminder (gRPC RegisterActorReminder); the
//	             SDK's ReminderCall records its name, data and period
//	Reenter      calls Incr on its own actor through the sidecar's HTTP
//	             API, passing on the Dapr-Reentrancy-Id of its own call
//
// The SDK's client reaches the sidecar through DAPR_GRPC_PORT; Reenter
// uses DAPR_HTTP_PORT. The Go SDK cannot set actorIdleTimeout or
// reentrancy, so the app adds --idle-timeout and reentrancy to the SDK's
// GET /dapr/config answer. GET /report returns what the app saw as JSON
// (counts, overlapping turns, deactivations, timer and reminder firings).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dapr/go-sdk/actor"
	dapr "github.com/dapr/go-sdk/client"
	daprhttp "github.com/dapr/go-sdk/service/http"
	"github.com/go-chi/chi/v5"
)

const actorType = "GoCounter"

// seen is what the app reports at GET /report.
type seen struct {
	mu          sync.Mutex
	Counts      map[string]int `json:"counts"`
	Overlaps    int            `json:"overlaps"`
	Deactivated []string       `json:"deactivated"`
	Fired       []string       `json:"fired"`
	inTurn      map[string]bool
}

var report = &seen{Counts: map[string]int{}, inTurn: map[string]bool{}}

func (s *seen) fired(event string) {
	s.mu.Lock()
	s.Fired = append(s.Fired, event)
	s.mu.Unlock()
}

type reentrancyKey struct{}

// Counter is the GoCounter actor.
type Counter struct {
	actor.ServerImplBaseCtx
}

// Type is the actor type.
func (c *Counter) Type() string { return actorType }

// Incr counts a call in the app's memory, checking the turn.
func (c *Counter) Incr(context.Context) (int, error) {
	id := c.ID()
	report.mu.Lock()
	if report.inTurn[id] {
		report.Overlaps++
	}
	report.inTurn[id] = true
	report.mu.Unlock()
	time.Sleep(100 * time.Microsecond) // a turn long enough for an overlap to show
	report.mu.Lock()
	report.Counts[id]++
	n := report.Counts[id]
	report.inTurn[id] = false
	report.mu.Unlock()
	return n, nil
}

// Add adds n to the actor's saved count.
func (c *Counter) Add(ctx context.Context, n int) (int, error) {
	var cur int
	sm := c.GetStateManager()
	if ok, err := sm.Contains(ctx, "count"); err != nil {
		return 0, err
	} else if ok {
		if err := sm.Get(ctx, "count", &cur); err != nil {
			return 0, err
		}
	}
	cur += n
	return cur, sm.Set(ctx, "count", cur)
}

// Get reads the actor's saved count (0 when none).
func (c *Counter) Get(ctx context.Context) (int, error) {
	var cur int
	ok, err := c.GetStateManager().Contains(ctx, "count")
	if err != nil || !ok {
		return 0, err
	}
	return cur, c.GetStateManager().Get(ctx, "count", &cur)
}

// Schedule is the argument of StartTimer and StartRemind.
type Schedule struct {
	Name    string          `json:"name"`
	DueTime string          `json:"dueTime"`
	Period  string          `json:"period"`
	Data    json.RawMessage `json:"data"`
}

// StartTimer registers a timer calling OnTimer with s.Data.
func (c *Counter) StartTimer(ctx context.Context, s Schedule) error {
	cl, err := dapr.NewClient()
	if err != nil {
		return err
	}
	return cl.RegisterActorTimer(ctx, &dapr.RegisterActorTimerRequest{
		ActorType: actorType, ActorID: c.ID(), Name: s.Name, DueTime: s.DueTime, Period: s.Period,
		Data: s.Data, CallBack: "OnTimer",
	})
}

// OnTimer is the timer callback; the SDK decodes the timer's data into d.
func (c *Counter) OnTimer(_ context.Context, d map[string]any) error {
	b, _ := json.Marshal(d)
	report.fired(fmt.Sprintf("timer %s %s", c.ID(), b))
	return nil
}

// StartRemind registers a reminder with s.Data.
func (c *Counter) StartRemind(ctx context.Context, s Schedule) error {
	cl, err := dapr.NewClient()
	if err != nil {
		return err
	}
	return cl.RegisterActorReminder(ctx, &dapr.RegisterActorReminderRequest{
		ActorType: actorType, ActorID: c.ID(), Name: s.Name, DueTime: s.DueTime, Period: s.Period, Data: s.Data,
	})
}

// ReminderCall is the SDK's reminder callback.
func (c *Counter) ReminderCall(name string, data []byte, _ string, period string) {
	report.fired(fmt.Sprintf("reminder %s %s %s %s", c.ID(), name, data, period))
}

// Reenter calls Incr on this actor inside its own turn.
func (c *Counter) Reenter(ctx context.Context) (int, error) {
	url := fmt.Sprintf("http://127.0.0.1:%s/v1.0/actors/%s/%s/method/Incr", os.Getenv("DAPR_HTTP_PORT"), actorType, c.ID())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return 0, err
	}
	if id, _ := ctx.Value(reentrancyKey{}).(string); id != "" {
		req.Header.Set("Dapr-Reentrancy-Id", id)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("nested call: %d %s", resp.StatusCode, b)
	}
	var n int
	return n, json.Unmarshal(b, &n)
}

// observe records deactivations, passes the reentrancy ID to the actor
// methods, adds the idle timeout and reentrancy to /dapr/config, and
// serves /report.
func observe(idle string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
			switch {
			case r.URL.Path == "/report":
				report.mu.Lock()
				defer report.mu.Unlock()
				_ = json.NewEncoder(w).Encode(report)
				return
			case r.URL.Path == "/dapr/config":
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, r)
				var cfg map[string]any
				if err := json.Unmarshal(rec.Body.Bytes(), &cfg); err != nil {
					http.Error(w, "the SDK's /dapr/config: "+err.Error(), http.StatusInternalServerError)
					return
				}
				cfg["actorIdleTimeout"] = idle
				cfg["reentrancy"] = map[string]any{"enabled": true}
				_ = json.NewEncoder(w).Encode(cfg)
				return
			case r.Method == http.MethodDelete && len(parts) == 3 && parts[0] == "actors":
				report.mu.Lock()
				report.Deactivated = append(report.Deactivated, parts[2])
				report.mu.Unlock()
			case r.Method == http.MethodPut && len(parts) >= 5 && parts[0] == "actors":
				r = r.WithContext(context.WithValue(r.Context(), reentrancyKey{}, r.Header.Get("Dapr-Reentrancy-Id")))
			}
			next.ServeHTTP(w, r)
		})
	}
}

func main() {
	port := flag.Int("port", 0, "port to listen on")
	idle := flag.String("idle-timeout", "", "actorIdleTimeout to announce in /dapr/config")
	flag.Parse()
	mux := chi.NewRouter()
	mux.Use(observe(*idle))
	s := daprhttp.NewServiceWithMux(fmt.Sprintf("127.0.0.1:%d", *port), mux)
	s.RegisterActorImplFactoryContext(func() actor.ServerContext { return &Counter{} })
	log.Printf("actorapp: serving %s on port %d", actorType, *port)
	if err := s.Start(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
