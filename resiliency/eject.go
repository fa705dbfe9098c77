package resiliency

import (
	"math"
	"sync"
	"time"
)

// EjectorConfig tunes outlier ejection. Zero fields take the defaults.
type EjectorConfig struct {
	// ConsecutiveFailures ejects an instance after this many failures in a
	// row (default 5).
	ConsecutiveFailures int
	// BaseEjection is the first ejection's length (default 30s); each
	// further ejection of the same instance doubles it.
	BaseEjection time.Duration
	// MaxEjection caps an ejection's length (default 5m).
	MaxEjection time.Duration
	// MaxEjectedFraction caps the share of known instances ejected at once
	// (default 0.5), so a broad outage never empties the pool.
	MaxEjectedFraction float64
	// OnEject and OnReturn, if set, report ejections (for metrics and
	// logs). OnReturn runs when an ejection has expired and the instance is
	// consulted again. Both run under the Ejector's lock.
	OnEject  func(addr string, d time.Duration)
	OnReturn func(addr string)
}

// Ejector takes instances that keep failing out of rotation for a while:
// per-instance outlier ejection, independent of the target's circuit
// breaker. Use one Ejector per app (its instances form one pool). The
// invoker calls Allowed (or Filter) when picking an instance and Report
// with each call's outcome. It is safe for concurrent use.
type Ejector struct {
	cfg EjectorConfig

	mu    sync.Mutex
	hosts map[string]*host
}

type host struct {
	fails    int
	until    time.Time // ejected until; zero when in rotation
	times    int       // ejection multiplier exponent (decays while healthy)
	returned time.Time // when the last ejection ended
}

// NewEjector returns an Ejector with cfg's zero fields set to defaults.
func NewEjector(cfg EjectorConfig) *Ejector {
	if cfg.ConsecutiveFailures <= 0 {
		cfg.ConsecutiveFailures = 5
	}
	if cfg.BaseEjection <= 0 {
		cfg.BaseEjection = 30 * time.Second
	}
	if cfg.MaxEjection <= 0 {
		cfg.MaxEjection = 5 * time.Minute
	}
	if cfg.MaxEjection < cfg.BaseEjection {
		cfg.MaxEjection = cfg.BaseEjection
	}
	if cfg.MaxEjectedFraction <= 0 || cfg.MaxEjectedFraction > 1 {
		cfg.MaxEjectedFraction = 0.5
	}
	return &Ejector{cfg: cfg, hosts: map[string]*host{}}
}

// Allowed reports whether addr is in rotation. Unknown instances are. The
// pool that MaxEjectedFraction counts is every address passed to Filter or
// Report and not forgotten.
func (e *Ejector) Allowed(addr string) bool {
	if e == nil {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.allowedLocked(addr, time.Now())
}

func (e *Ejector) allowedLocked(addr string, now time.Time) bool {
	h := e.hosts[addr]
	if h == nil || h.until.IsZero() {
		return true
	}
	if now.Before(h.until) {
		return false
	}
	h.until = time.Time{}
	h.returned = now
	h.fails = 0
	if e.cfg.OnReturn != nil {
		e.cfg.OnReturn(addr)
	}
	return true
}

// Filter returns the instances of addrs that are in rotation, in order; if
// all are ejected it returns addrs unchanged (better a likely failure than
// none). It also learns addrs as the pool, which MaxEjectedFraction counts.
func (e *Ejector) Filter(addrs []string) []string {
	if e == nil {
		return addrs
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if e.hosts[a] == nil {
			e.hosts[a] = &host{}
		}
		if e.allowedLocked(a, now) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return addrs
	}
	return out
}

// Report records the outcome of a call to addr. Client errors (4xx other
// than 408/429 and their gRPC equivalents) and the caller's cancellation
// say nothing about the instance and count as successes.
func (e *Ejector) Report(addr string, err error) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	h := e.hosts[addr]
	if h == nil {
		h = &host{}
		e.hosts[addr] = h
	}
	if !targetFault(err) {
		h.fails = 0
		return
	}
	if !e.allowedLocked(addr, now) {
		return // a late report from before the ejection
	}
	h.fails++
	if h.fails < e.cfg.ConsecutiveFailures || !e.roomLocked(now) {
		return
	}
	// The multiplier decays by one for every BaseEjection the instance
	// stayed in rotation since its last ejection, so a once-flaky instance
	// is not punished forever.
	if !h.returned.IsZero() {
		healthy := int(now.Sub(h.returned) / e.cfg.BaseEjection)
		h.times = max(0, h.times-healthy)
	}
	d := e.cfg.BaseEjection * time.Duration(math.Pow(2, float64(min(h.times, 30))))
	if d > e.cfg.MaxEjection || d <= 0 {
		d = e.cfg.MaxEjection
	}
	h.times++
	h.fails = 0
	h.until = now.Add(d)
	if e.cfg.OnEject != nil {
		e.cfg.OnEject(addr, d)
	}
}

// roomLocked reports whether one more instance may be ejected.
func (e *Ejector) roomLocked(now time.Time) bool {
	ejected := 0
	for _, h := range e.hosts {
		if !h.until.IsZero() && now.Before(h.until) {
			ejected++
		}
	}
	limit := int(math.Floor(e.cfg.MaxEjectedFraction * float64(len(e.hosts))))
	return ejected+1 <= limit
}

// Forget drops addr's history, e.g. when the resolver no longer lists it.
func (e *Ejector) Forget(addr string) {
	if e == nil {
		return
	}
	e.mu.Lock()
	delete(e.hosts, addr)
	e.mu.Unlock()
}

// Ejected returns the instances ejected now.
func (e *Ejector) Ejected() []string {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	var out []string
	for a, h := range e.hosts {
		if !h.until.IsZero() && now.Before(h.until) {
			out = append(out, a)
		}
	}
	return out
}
