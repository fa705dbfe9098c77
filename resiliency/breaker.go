package resiliency

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// CircuitBreaker is a compiled circuit breaker policy (a template: each
// target gets its own breaker with these settings).
type CircuitBreaker struct {
	Name        string
	MaxRequests uint32        // trial calls while half-open
	Interval    time.Duration // closed-state count reset period; 0: never
	Timeout     time.Duration // open period before half-open
	Trip        *Trip
}

// BreakerState is a circuit breaker's state.
type BreakerState string

// Breaker states, as gobreaker names them.
const (
	StateClosed   BreakerState = "closed"
	StateHalfOpen BreakerState = "half-open"
	StateOpen     BreakerState = "open"
)

func fromGobreaker(s gobreaker.State) BreakerState {
	switch s {
	case gobreaker.StateOpen:
		return StateOpen
	case gobreaker.StateHalfOpen:
		return StateHalfOpen
	}
	return StateClosed
}

func compileBreaker(name string, s CircuitBreakerSpec) (*CircuitBreaker, []*FieldError) {
	var errs []*FieldError
	fail := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	cb := &CircuitBreaker{Name: name, MaxRequests: 1}
	if s.MaxRequests != nil {
		switch n := *s.MaxRequests; {
		case n < 0 || int64(n) > math.MaxUint32:
			fail(".maxRequests", "is %d; use a count >= 1", n)
		case n > 0:
			cb.MaxRequests = uint32(n)
		}
	}
	var err error
	if cb.Interval, err = optDuration(s.Interval, 0); err != nil {
		fail(".interval", "%v", err)
	}
	if cb.Timeout, err = optDuration(s.Timeout, 60*time.Second); err != nil {
		fail(".timeout", "%v", err)
	} else if cb.Timeout == 0 {
		cb.Timeout = 60 * time.Second // gobreaker's meaning of 0
	}
	trip := s.Trip
	if trip == "" {
		trip = DefaultTrip
	}
	if cb.Trip, err = ParseTrip(trip); err != nil {
		fail(".trip", "%q: %v", trip, err)
	}
	return cb, errs
}

// same reports whether two templates behave identically, so a hot reload
// can keep a live breaker's state.
func (c *CircuitBreaker) same(o *CircuitBreaker) bool {
	return c.MaxRequests == o.MaxRequests && c.Interval == o.Interval &&
		c.Timeout == o.Timeout && c.Trip.String() == o.Trip.String()
}

// breaker is one live circuit breaker for one (policy, target).
type breaker struct {
	tmpl   *CircuitBreaker
	target string
	cb     *gobreaker.CircuitBreaker[struct{}]

	mu       sync.Mutex
	openedAt time.Time
}

func newBreaker(tmpl *CircuitBreaker, target string, hooks *Hooks) *breaker {
	b := &breaker{tmpl: tmpl, target: target}
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        tmpl.Name + "/" + target,
		MaxRequests: tmpl.MaxRequests,
		Interval:    tmpl.Interval,
		Timeout:     tmpl.Timeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return tmpl.Trip.Eval(Counts{
				Requests: c.Requests, TotalSuccesses: c.TotalSuccesses, TotalFailures: c.TotalFailures,
				ConsecutiveSuccesses: c.ConsecutiveSuccesses, ConsecutiveFailures: c.ConsecutiveFailures,
			})
		},
		// Called with gobreaker's lock held: touch only our own fields.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.mu.Lock()
				b.openedAt = time.Now()
				b.mu.Unlock()
			}
			if hooks != nil && hooks.BreakerStateChange != nil {
				hooks.BreakerStateChange(target, tmpl.Name, fromGobreaker(from), fromGobreaker(to))
			}
		},
		IsSuccessful: func(err error) bool { return !targetFault(err) },
		// The caller giving up says nothing about the target's health.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
	})
	return b
}

// State returns the breaker's current state.
func (b *breaker) State() BreakerState { return fromGobreaker(b.cb.State()) }

// run executes op through the breaker; a rejection becomes a
// *BreakerOpenError.
func (b *breaker) run(op func() error) error {
	_, err := b.cb.Execute(func() (struct{}, error) { return struct{}{}, op() })
	switch {
	case errors.Is(err, gobreaker.ErrOpenState):
		b.mu.Lock()
		at := b.openedAt.Add(b.tmpl.Timeout)
		b.mu.Unlock()
		return &BreakerOpenError{Target: b.target, Policy: b.tmpl.Name, RetryAt: at}
	case errors.Is(err, gobreaker.ErrTooManyRequests):
		return &BreakerOpenError{Target: b.target, Policy: b.tmpl.Name, HalfOpen: true}
	}
	return err
}
