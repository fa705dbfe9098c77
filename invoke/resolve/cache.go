package resolve

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// DefaultCacheTTL is how long NewCached keeps an instance list when given
// a TTL <= 0: short, so a new or stopped sidecar is noticed within seconds.
const DefaultCacheTTL = 2 * time.Second

// Cached wraps a Resolver: it keeps the instance list of each app for a
// short TTL, spreads calls over it round robin and skips addresses marked
// failed until the next refresh. Only resolvers that implement Lister are
// cached; others are called through on every Resolve. A resolver that
// implements Notifier has an app's list dropped as soon as it changes.
type Cached struct {
	next   Resolver
	lister Lister
	ttl    time.Duration

	group singleflight.Group

	mu   sync.Mutex
	apps map[Request]*cacheEntry
}

type cacheEntry struct {
	addrs   []string
	failed  map[string]bool
	expires time.Time
	counter uint64
}

var (
	_ Resolver      = (*Cached)(nil)
	_ Lister        = (*Cached)(nil)
	_ FailureMarker = (*Cached)(nil)
)

// NewCached caches r's instance lists for ttl (DefaultCacheTTL if <= 0).
// Close closes r.
func NewCached(r Resolver, ttl time.Duration) *Cached {
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	l, _ := r.(Lister)
	c := &Cached{next: r, lister: l, ttl: ttl, apps: make(map[Request]*cacheEntry)}
	if n, ok := r.(Notifier); ok {
		n.OnChange(c.forget)
	}
	return c
}

// forget drops the cached list of req's app (asked for in req's namespace
// or with none), so the next call lists it again.
func (c *Cached) forget(req Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.apps {
		if k.AppID == req.AppID && (k.Namespace == req.Namespace || k.Namespace == "") {
			delete(c.apps, k)
		}
	}
}

// Resolve returns the next usable address of req.AppID, refreshing the
// list when it expired or every cached address was marked failed.
func (c *Cached) Resolve(ctx context.Context, req Request) (string, error) {
	if c.lister == nil {
		return c.next.Resolve(ctx, req)
	}
	c.mu.Lock()
	e := c.apps[req]
	if e != nil && time.Now().Before(e.expires) {
		if addr, ok := e.pick(); ok {
			c.mu.Unlock()
			return addr, nil
		}
	}
	c.mu.Unlock()

	if err := c.refresh(ctx, req); err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e = c.apps[req]
	if e == nil {
		// Dropped by a concurrent failed refresh.
		return "", ErrNotFound
	}
	addr, ok := e.pick()
	if !ok {
		// Everything failed even after a refresh: try one anyway rather
		// than fail without dialing.
		addr = e.addrs[e.counter%uint64(len(e.addrs))]
		e.counter++
	}
	return addr, nil
}

// List returns the cached (or freshly listed) instances of req.AppID,
// including those marked failed.
func (c *Cached) List(ctx context.Context, req Request) ([]string, error) {
	if c.lister == nil {
		addr, err := c.next.Resolve(ctx, req)
		if err != nil {
			return nil, err
		}
		return []string{addr}, nil
	}
	c.mu.Lock()
	if e := c.apps[req]; e != nil && time.Now().Before(e.expires) {
		out := slices.Clone(e.addrs)
		c.mu.Unlock()
		return out, nil
	}
	c.mu.Unlock()
	if err := c.refresh(ctx, req); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.apps[req]; e != nil {
		return slices.Clone(e.addrs), nil
	}
	return nil, ErrNotFound
}

// refresh lists req's instances once for all concurrent callers. On
// ErrNotFound the app is forgotten; on other errors a still-usable old
// list is kept so a hiccup of the backend does not fail calls.
func (c *Cached) refresh(ctx context.Context, req Request) error {
	key := req.Namespace + "\x00" + req.AppID
	_, err, _ := c.group.Do(key, func() (any, error) {
		addrs, err := c.lister.List(ctx, req)
		if err == nil && len(addrs) == 0 {
			err = ErrNotFound
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if err != nil {
			old := c.apps[req]
			if errors.Is(err, ErrNotFound) || old == nil || !old.usable() {
				delete(c.apps, req)
				return nil, err
			}
			return nil, nil
		}
		var counter uint64
		if old := c.apps[req]; old != nil {
			counter = old.counter // keep rotating, not restart at the first
		}
		c.apps[req] = &cacheEntry{
			addrs:   slices.Clone(addrs),
			failed:  make(map[string]bool),
			expires: time.Now().Add(c.ttl),
			counter: counter,
		}
		return nil, nil
	})
	return err
}

// MarkFailed skips addr, for every app listing it, until the next refresh.
func (c *Cached) MarkFailed(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.apps {
		if slices.Contains(e.addrs, addr) {
			e.failed[addr] = true
		}
	}
}

// Close closes the wrapped resolver.
func (c *Cached) Close() error {
	return c.next.Close()
}

// pick returns the next address not marked failed, round robin.
func (e *cacheEntry) pick() (string, bool) {
	n := uint64(len(e.addrs))
	for range n {
		addr := e.addrs[e.counter%n]
		e.counter++
		if !e.failed[addr] {
			return addr, true
		}
	}
	return "", false
}

func (e *cacheEntry) usable() bool {
	return len(e.failed) < len(e.addrs)
}
