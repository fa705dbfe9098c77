package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/actors/schedule"
)

// TimerRequest is the body of POST /v1.0/actors/{type}/{id}/timers/{name}.
type TimerRequest struct {
	Name      string          `json:"-"`
	ActorType string          `json:"-"`
	ActorID   string          `json:"-"`
	DueTime   string          `json:"dueTime"`
	Period    string          `json:"period"`
	TTL       string          `json:"ttl"`
	Callback  string          `json:"callback"`
	Data      json.RawMessage `json:"data"`
}

// FieldError is a malformed dueTime, period or ttl.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("invalid %s: %v", e.Field, e.Err) }
func (e *FieldError) Unwrap() error { return e.Err }

// timerSet is an actor's running timers.
type timerSet struct {
	mu     sync.Mutex
	timers map[string]*timerRun
}

// timerRun is one run of a timer: a timer made again under the same name
// is a new run, which the old one's end must not stop.
type timerRun struct{ cancel context.CancelFunc }

// replace starts tracking a new run of timer name, stopping the one before.
func (s *timerSet) replace(name string, cancel context.CancelFunc) *timerRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timers == nil {
		s.timers = map[string]*timerRun{}
	}
	if old, ok := s.timers[name]; ok {
		old.cancel()
	}
	run := &timerRun{cancel: cancel}
	s.timers[name] = run
	return run
}

// remove stops timer name (any run of it).
func (s *timerSet) remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if run, ok := s.timers[name]; ok {
		run.cancel()
		delete(s.timers, name)
	}
}

// finish ends run, a timer that fired for the last time; a newer run of the
// same name goes on.
func (s *timerSet) finish(name string, run *timerRun) {
	s.mu.Lock()
	defer s.mu.Unlock()
	run.cancel()
	if s.timers[name] == run {
		delete(s.timers, name)
	}
}

func (s *timerSet) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, run := range s.timers {
		run.cancel()
	}
	s.timers = nil
}

// CreateTimer starts (or replaces) a timer of an actor this host's app
// hosts; the actor is activated. The timer fires in the actor's turn at
// PUT /actors/{type}/{id}/method/timer/{name} with
// {callback, data, dueTime, period}, and ends with the actor.
func (r *Runtime) CreateTimer(ctx context.Context, req TimerRequest) error {
	if r == nil || r.placement == nil {
		return ErrNoPlacement
	}
	if !r.Hosts(ctx, req.ActorType) {
		return fmt.Errorf("%w: %s", ErrNotHosted, req.ActorType)
	}
	if err := ValidName("name", req.Name); err != nil {
		return err
	}
	if err := ValidName("actor ID", req.ActorID); err != nil {
		return err
	}
	now := time.Now()
	due, err := schedule.ParseTime(req.DueTime, now)
	if err != nil {
		return &FieldError{Field: "dueTime", Err: err}
	}
	period, err := schedule.ParsePeriod(req.Period)
	if err != nil {
		return &FieldError{Field: "period", Err: err}
	}
	var expires time.Time
	if req.TTL != "" {
		if expires, err = schedule.ParseTime(req.TTL, due); err != nil {
			return &FieldError{Field: "ttl", Err: err}
		}
	}
	a, err := r.activate(req.ActorType, req.ActorID)
	if err != nil {
		return err
	}
	body, err := json.Marshal(timerBody{Callback: req.Callback, Data: req.Data, DueTime: req.DueTime, Period: req.Period})
	if err != nil {
		return err
	}
	tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	run := a.timers.replace(req.Name, cancel)
	go r.runTimer(tctx, a, req.Name, run, body, due, period, expires)
	return nil
}

// timerBody is daprd's timer callback body, fields in its order; no
// "data" when the timer has none, its JSON compacted otherwise.
type timerBody struct {
	Data     json.RawMessage `json:"data,omitempty"`
	Callback string          `json:"callback"`
	DueTime  string          `json:"dueTime"`
	Period   string          `json:"period"`
}

func dataOrNull(d json.RawMessage) json.RawMessage {
	if len(d) == 0 {
		return json.RawMessage("null")
	}
	return d
}

// DeleteTimer stops a timer; a missing one is not an error.
func (r *Runtime) DeleteTimer(actorType, actorID, name string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	a := r.active[key(actorType, actorID)]
	r.mu.Unlock()
	if a != nil {
		a.timers.remove(name)
	}
}

func (r *Runtime) runTimer(ctx context.Context, a *actor, name string, run *timerRun, body []byte, next time.Time, p schedule.Period, expires time.Time) {
	left := p.Repeats
	for {
		if !expires.IsZero() && !next.Before(expires) {
			a.timers.finish(name, run)
			return
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		req := &internalsv1.InternalInvokeRequest{
			Ver:   internalsv1.APIVersion_V1,
			Actor: &internalsv1.Actor{ActorType: a.typ, ActorId: a.id},
			Message: &commonv1.InvokeRequest{
				Method: "timer/" + name, ContentType: "application/json", Data: &anypb.Any{Value: body},
				HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_PUT},
			},
		}
		// Through the router: the actor may live on another host (daprd
		// fires a timer wherever it was made, at the actor's owner).
		resp, err := r.route(ctx, req)
		var ae *AppError
		if errors.As(err, &ae) {
			err = nil // the app answered; resp carries its headers
		}
		if err != nil && ctx.Err() == nil {
			r.log.Warn("actor timer failed", "actor_type", a.typ, "actor_id", a.id, "timer", name, "error", err)
		}
		if left > 0 {
			left--
		}
		// The app may cancel the timer in its answer, as a reminder.
		if !p.Repeating() || left == 0 || (resp != nil && cancelHeader(resp)) {
			a.timers.finish(name, run)
			return
		}
		next = p.Next(next)
	}
}
