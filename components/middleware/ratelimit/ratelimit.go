// Package ratelimit is middleware.http.ratelimit: at most
// maxRequestsPerSecond requests per second from each client address (a
// token bucket whose burst is the rate, as Dapr's tollbooth limiter); the
// others get 429 with Retry-After.
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/middleware"
)

// Type is the spec.type.
const Type = "middleware.http.ratelimit"

// defaultRate is Dapr's default maxRequestsPerSecond.
const defaultRate = 100

// idleTTL is how long a client's bucket is kept after its last request.
const idleTTL = time.Minute

// Middleware is one ratelimit component.
type Middleware struct {
	limit float64
	burst int
	now   func() time.Time

	mu      sync.Mutex
	clients map[string]*client
	swept   time.Time
}

type client struct {
	lim  *rate.Limiter
	last time.Time
}

var _ middleware.Middleware = (*Middleware)(nil)

// New returns an uninitialised component.
func New() middleware.Middleware { return &Middleware{now: time.Now} }

// Init reads maxRequestsPerSecond (default 100; it must be positive).
func (m *Middleware) Init(_ context.Context, md components.Metadata) error {
	m.limit = defaultRate
	if v, ok := md.Get("maxRequestsPerSecond"); ok && strings.TrimSpace(v) != "" {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return components.Permanent(fmt.Errorf("metadata maxRequestsPerSecond is %q: it must be a number of requests per second", v))
		}
		m.limit = f
	}
	if m.limit <= 0 {
		return components.Permanent(fmt.Errorf("metadata property maxRequestsPerSecond must be a positive value, not %v", m.limit))
	}
	m.burst = int(math.Max(1, m.limit))
	m.clients = map[string]*client{}
	return nil
}

// Handler implements middleware.Middleware.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wait, ok := m.allow(clientIP(r))
		if !ok {
			h := w.Header()
			h.Set("Content-Type", "text/plain; charset=utf-8")
			h.Set("X-Rate-Limit-Limit", strconv.FormatFloat(m.limit, 'f', -1, 64))
			h.Set("X-Rate-Limit-Duration", "1")
			h.Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte("You have reached maximum request limit."))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allow takes a token from key's bucket; when there is none it returns how
// long until there is one.
func (m *Middleware) allow(key string) (time.Duration, bool) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.swept) > idleTTL {
		for k, c := range m.clients {
			if now.Sub(c.last) > idleTTL {
				delete(m.clients, k)
			}
		}
		m.swept = now
	}
	c, ok := m.clients[key]
	if !ok {
		c = &client{lim: rate.NewLimiter(rate.Limit(m.limit), m.burst)}
		m.clients[key] = c
	}
	c.last = now
	res := c.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return max(d, time.Second), false
	}
	return 0, true
}

// clientIP is the caller's address: the connection's peer, else the first
// X-Forwarded-For entry, else X-Real-IP; calls with none (the sidecar's own
// calls to its app) share one bucket, as in Dapr.
func clientIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil && host != "" {
		return host
	}
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		first, _, _ := strings.Cut(xff, ",")
		if ip := strings.TrimSpace(first); ip != "" {
			return ip
		}
	}
	if ip := strings.TrimSpace(r.Header.Get("X-Real-IP")); ip != "" {
		return ip
	}
	return "0.0.0.0"
}

// Close implements middleware.Middleware.
func (m *Middleware) Close() error { return nil }
