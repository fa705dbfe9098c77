package resiliency

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Backoff names a retry back-off strategy.
type Backoff string

// Back-off strategies of spec.policies.retries.<name>.policy.
const (
	Constant    Backoff = "constant"
	Exponential Backoff = "exponential"
)

// Dapr's fixed exponential back-off parameters (cenkalti/backoff defaults):
// the first interval is 500ms, each next one 1.5 times longer, each jittered
// by ±50%, and none longer than MaxInterval.
const (
	expInitial    = 500 * time.Millisecond
	expMultiplier = 1.5
	expJitter     = 0.5
)

// Retry is a compiled retry policy.
type Retry struct {
	Name        string
	Policy      Backoff
	Duration    time.Duration // constant interval
	MaxInterval time.Duration // exponential cap
	MaxRetries  int           // -1: until the context ends
	Matching    Matching
}

// Matching decides which status codes are retried. A nil list means the
// spec did not set it: every failure status is retried (see Retryable).
type Matching struct {
	HTTP []CodeRange
	GRPC []CodeRange
}

// CodeRange is an inclusive range of status codes.
type CodeRange struct{ Lo, Hi int }

func inRanges(code int, rs []CodeRange) bool {
	for _, r := range rs {
		if r.Lo <= code && code <= r.Hi {
			return true
		}
	}
	return false
}

// backoff returns the wait before retry number n (0 for the first retry).
// rnd returns a value in [0, 1).
func (r *Retry) backoff(n int, rnd func() float64) time.Duration {
	if r.Policy != Exponential {
		return r.Duration
	}
	base := float64(expInitial) * math.Pow(expMultiplier, float64(n))
	if maxI := float64(r.MaxInterval); base > maxI {
		base = maxI
	}
	d := base * (1 - expJitter + 2*expJitter*rnd())
	if d > float64(r.MaxInterval) {
		d = float64(r.MaxInterval)
	}
	return time.Duration(d)
}

func compileRetry(name string, s RetrySpec) (*Retry, []*FieldError) {
	var errs []*FieldError
	fail := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	r := &Retry{Name: name, Policy: Constant, MaxRetries: -1}
	switch strings.ToLower(strings.TrimSpace(s.Policy)) {
	case "", "constant":
	case "exponential":
		r.Policy = Exponential
	default:
		fail(".policy", "is %q; use constant or exponential", s.Policy)
	}
	var err error
	if r.Duration, err = optDuration(s.Duration, 5*time.Second); err != nil {
		fail(".duration", "%v", err)
	}
	if r.MaxInterval, err = optDuration(s.MaxInterval, 60*time.Second); err != nil {
		fail(".maxInterval", "%v", err)
	} else if r.MaxInterval == 0 {
		fail(".maxInterval", "must be greater than 0")
	}
	if s.MaxRetries != nil {
		r.MaxRetries = *s.MaxRetries
		if r.MaxRetries < -1 {
			fail(".maxRetries", "is %d; use -1 (retry until the request's deadline) or a count >= 0", r.MaxRetries)
		}
	}
	if s.Matching != nil {
		if r.Matching.HTTP, err = parseCodes(s.Matching.HTTPStatusCodes, 100, 599); err != nil {
			fail(".matching.httpStatusCodes", "%v", err)
		}
		if r.Matching.GRPC, err = parseCodes(s.Matching.GRPCStatusCodes, 0, 16); err != nil {
			fail(".matching.gRPCStatusCodes", "%v", err)
		}
	}
	return r, errs
}

// parseCodes reads "429,500-599". An empty list returns nil (not set).
func parseCodes(s string, lo, hi int) ([]CodeRange, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []CodeRange
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		a, b, isRange := strings.Cut(part, "-")
		start, err := strconv.Atoi(strings.TrimSpace(a))
		if err != nil {
			return nil, fmt.Errorf("bad code %q in %q; write codes and ranges like 429,500-599", a, s)
		}
		end := start
		if isRange {
			if end, err = strconv.Atoi(strings.TrimSpace(b)); err != nil {
				return nil, fmt.Errorf("bad range %q in %q; write codes and ranges like 429,500-599", part, s)
			}
		}
		if start < lo || end > hi || start > hi || end < lo {
			return nil, fmt.Errorf("%q is outside %d-%d", part, lo, hi)
		}
		if end < start {
			return nil, fmt.Errorf("range %q runs backwards", part)
		}
		out = append(out, CodeRange{Lo: start, Hi: end})
	}
	if out == nil {
		return nil, nil
	}
	return out, nil
}

// Dapr's reserved retry policy names. Defining one in a Resiliency file
// overrides the built-in (never below 3 retries), except the protected
// actor-not-found policy.
const (
	BuiltInServiceRetries        = "DaprBuiltInServiceRetries"
	BuiltInActorRetries          = "DaprBuiltInActorRetries"
	BuiltInActorReminderRetries  = "DaprBuiltInActorReminderRetries"
	BuiltInInitializationRetries = "DaprBuiltInInitializationRetries"
	builtInActorNotFoundRetries  = "DaprBuiltInActorNotFoundRetries"
)

func isBuiltIn(name string) bool {
	switch name {
	case BuiltInServiceRetries, BuiltInActorRetries, BuiltInActorReminderRetries,
		BuiltInInitializationRetries, builtInActorNotFoundRetries:
		return true
	}
	return false
}

// builtInRetries are Dapr's built-in retries: sidecar-to-sidecar calls are
// retried 3 times, 1s apart, on gRPC Unavailable or Unauthenticated (a peer
// restarting or rotating its certificate).
func builtInRetries() map[string]*Retry {
	sidecar := Matching{GRPC: []CodeRange{{14, 14}, {16, 16}}}
	return map[string]*Retry{
		BuiltInServiceRetries: {Name: BuiltInServiceRetries, Policy: Constant, Duration: time.Second,
			MaxInterval: time.Minute, MaxRetries: 3, Matching: sidecar},
		BuiltInActorRetries: {Name: BuiltInActorRetries, Policy: Constant, Duration: time.Second,
			MaxInterval: time.Minute, MaxRetries: 3, Matching: sidecar},
		BuiltInActorReminderRetries: {Name: BuiltInActorReminderRetries, Policy: Exponential,
			Duration: 5 * time.Second, MaxInterval: time.Minute, MaxRetries: -1},
		BuiltInInitializationRetries: {Name: BuiltInInitializationRetries, Policy: Exponential,
			Duration: 2 * time.Second, MaxInterval: time.Second, MaxRetries: 3},
		builtInActorNotFoundRetries: {Name: builtInActorNotFoundRetries, Policy: Constant,
			Duration: time.Second, MaxInterval: time.Minute, MaxRetries: 5},
	}
}
