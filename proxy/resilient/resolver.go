package resilient

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/resiliency"
)

// ResolverOptions configure NewResolver.
type ResolverOptions struct {
	// Ejection tunes outlier ejection (zero fields: the resiliency
	// package's defaults, 5 failures in a row eject for 30s doubling up to
	// 5m, at most half of an app's instances). OnEject and OnReturn are
	// chained after the Resolver's own bookkeeping.
	Ejection resiliency.EjectorConfig
	// Disabled turns ejection off; addresses are still recorded for the
	// Invoker's attempt accounting.
	Disabled bool
	// Resync is how often an app's instance list is re-read to forget
	// instances that went away, even while none is ejected (default 10s).
	Resync time.Duration
}

// Resolver wraps a resolve.Resolver: it skips instances its per-app
// Ejector has ejected, records the address it hands out in the request's
// context (see Invoker) and takes reports of call outcomes per address.
// It passes Lister and FailureMarker through, so it can stand where the
// caching resolver stood. Safe for concurrent use.
type Resolver struct {
	next     resolve.Resolver
	lister   resolve.Lister
	opts     ResolverOptions
	disabled bool

	// ejected counts instances ejected right now, over all apps, so the
	// common case (nothing ejected) costs one atomic load per Resolve.
	ejected atomic.Int64

	mu   sync.Mutex
	apps map[resolve.Request]*appPool
}

// appPool is the ejection state of one app's instances.
type appPool struct {
	ej       *resiliency.Ejector
	onReturn func(addr string) // also for instances forgotten while ejected
	known    []string          // instances as last listed
	synced   time.Time         // when known was read
	fallback atomic.Uint64
}

var (
	_ resolve.Resolver      = (*Resolver)(nil)
	_ resolve.Lister        = (*Resolver)(nil)
	_ resolve.FailureMarker = (*Resolver)(nil)
)

// NewResolver wraps next. Ejection needs next to implement resolve.Lister
// (the caching resolver does); without it addresses are only recorded.
func NewResolver(next resolve.Resolver, o ResolverOptions) *Resolver {
	if o.Resync <= 0 {
		o.Resync = 10 * time.Second
	}
	l, _ := next.(resolve.Lister)
	return &Resolver{next: next, lister: l, opts: o, disabled: o.Disabled || l == nil, apps: map[resolve.Request]*appPool{}}
}

// Resolve returns an instance of req.AppID that is in rotation, in the
// wrapped resolver's round-robin order.
func (r *Resolver) Resolve(ctx context.Context, req resolve.Request) (string, error) {
	addr, err := r.pick(ctx, req)
	if err == nil {
		if rec := recorderFrom(ctx); rec != nil {
			rec.add(req, addr)
		}
	}
	return addr, err
}

func (r *Resolver) pick(ctx context.Context, req resolve.Request) (string, error) {
	if r.disabled {
		return r.next.Resolve(ctx, req)
	}
	pool := r.pool(req)
	if r.ejected.Load() == 0 && time.Since(pool.syncedAt(r)) < r.opts.Resync {
		return r.next.Resolve(ctx, req)
	}
	addrs, err := r.lister.List(ctx, req)
	if err != nil {
		return r.next.Resolve(ctx, req) // let it answer with its own error
	}
	pool.sync(r, addrs)
	allowed := pool.ej.Filter(addrs)
	if len(allowed) == len(addrs) {
		return r.next.Resolve(ctx, req)
	}
	// Ask the wrapped resolver until it names an allowed instance, so its
	// round robin and failure marks still apply; it cycles through at
	// most len(addrs) names.
	for range len(addrs) {
		a, err := r.next.Resolve(ctx, req)
		if err != nil {
			return "", err
		}
		if slices.Contains(allowed, a) {
			return a, nil
		}
	}
	return allowed[pool.fallback.Add(1)%uint64(len(allowed))], nil
}

// pool returns req's ejection state, creating it on first use.
func (r *Resolver) pool(req resolve.Request) *appPool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.apps[req]
	if p == nil {
		cfg := r.opts.Ejection
		onEject, onReturn := cfg.OnEject, cfg.OnReturn
		cfg.OnEject = func(addr string, d time.Duration) {
			r.ejected.Add(1)
			if onEject != nil {
				onEject(addr, d)
			}
		}
		cfg.OnReturn = func(addr string) {
			r.ejected.Add(-1)
			if onReturn != nil {
				onReturn(addr)
			}
		}
		p = &appPool{ej: resiliency.NewEjector(cfg), onReturn: cfg.OnReturn}
		r.apps[req] = p
	}
	return p
}

func (p *appPool) syncedAt(r *Resolver) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return p.synced
}

// sync forgets instances no longer listed, so the share of ejected
// instances is counted over the live ones.
func (p *appPool) sync(r *Resolver, addrs []string) {
	r.mu.Lock()
	gone := make([]string, 0)
	for _, a := range p.known {
		if !slices.Contains(addrs, a) {
			gone = append(gone, a)
		}
	}
	p.known = slices.Clone(addrs)
	p.synced = time.Now()
	r.mu.Unlock()
	for _, a := range gone {
		wasEjected := slices.Contains(p.ej.Ejected(), a)
		p.ej.Forget(a)
		if wasEjected {
			p.onReturn(a)
		}
	}
}

// Report records the outcome of a call to addr, an instance of req's app:
// nil, a *resiliency.StatusError for an answer with a failure status, or
// the call's error. See resiliency.Ejector.Report for what counts.
func (r *Resolver) Report(req resolve.Request, addr string, err error) {
	if r.disabled {
		return
	}
	r.pool(req).ej.Report(addr, err)
}

// Ejected returns the ejected instances of req's app.
func (r *Resolver) Ejected(req resolve.Request) []string {
	r.mu.Lock()
	p := r.apps[req]
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.ej.Ejected()
}

// List passes through to the wrapped resolver (ejected instances
// included: List describes the app, not the rotation).
func (r *Resolver) List(ctx context.Context, req resolve.Request) ([]string, error) {
	if r.lister == nil {
		addr, err := r.next.Resolve(ctx, req)
		if err != nil {
			return nil, err
		}
		return []string{addr}, nil
	}
	return r.lister.List(ctx, req)
}

// MarkFailed passes through to the wrapped resolver, if it can.
func (r *Resolver) MarkFailed(addr string) {
	if fm, ok := r.next.(resolve.FailureMarker); ok {
		fm.MarkFailed(addr)
	}
}

// Close closes the wrapped resolver.
func (r *Resolver) Close() error { return r.next.Close() }

// recorder collects the instances handed out during one attempt.
type recorder struct {
	mu    sync.Mutex
	picks []pick
}

type pick struct {
	req  resolve.Request
	addr string
}

type recorderKey struct{}

func withRecorder(ctx context.Context, rec *recorder) context.Context {
	return context.WithValue(ctx, recorderKey{}, rec)
}

func recorderFrom(ctx context.Context) *recorder {
	rec, _ := ctx.Value(recorderKey{}).(*recorder)
	return rec
}

func (rec *recorder) add(req resolve.Request, addr string) {
	rec.mu.Lock()
	rec.picks = append(rec.picks, pick{req, addr})
	rec.mu.Unlock()
}

func (rec *recorder) len() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.picks)
}

func (rec *recorder) list() []pick {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.picks)
}
