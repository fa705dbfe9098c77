package components

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// Kind tells a Manager how to build and run one kind of component. It is
// filled by the kind's package (state, pubsub, secretstores) with small
// functions, so this package knows nothing of the kinds' interfaces.
type Kind[T any] struct {
	// Category is the spec.type prefix the Manager takes: "state" takes
	// "state.redis", "state.in-memory", ...
	Category string
	// Types lists the known types, for the "unknown type" message.
	Types []string
	// New returns a fresh, uninitialised instance for a spec.type.
	New func(typ string) (T, bool)
	// Versioned lists the types whose constructor depends on spec.version;
	// New is not asked for them, and a version they lack fails the
	// component for good. Optional.
	Versioned map[string]Versions[T]
	// Init initialises an instance; ctx ends after spec.initTimeout.
	// Returning an error wrapped with Permanent stops the retries.
	Init func(ctx context.Context, v T, md Metadata) error
	// Close releases an instance. Optional.
	Close func(v T) error
	// Capabilities lists an initialised instance's features for the
	// metadata API. Optional.
	Capabilities func(v T) []string
}

// ManagerOptions tune a Manager. Only Resolve is required.
type ManagerOptions struct {
	// Resolve turns a component into its Init metadata; usually
	// Env.Resolve.
	Resolve func(ctx context.Context, c Component) (Metadata, error)
	// Log receives one line per failed attempt (error level, or warn with
	// spec.ignoreErrors) and one when a component becomes ready.
	Log *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between attempts, which
	// doubles after each failure (with ±20% jitter). Defaults: 500ms, 30s.
	MinBackoff, MaxBackoff time.Duration
	// Grace is how long a replaced or removed instance keeps serving
	// callers that got it with Get before it is closed. Default 5s.
	Grace time.Duration
	// MaxDrain bounds the wait for Acquire callers to release a replaced
	// instance; it is closed anyway afterwards. Default 1m.
	MaxDrain time.Duration
	// FailFast makes Wait return as soon as a component without
	// spec.ignoreErrors fails an attempt (Dapr's startup behaviour). Off,
	// failing components are only retried and reported.
	FailFast bool
	// Fatal, if set, is called when a component without spec.ignoreErrors
	// fails for good (an error marked Permanent: it cannot work as
	// written), at start-up or after a reload: daprd exits then. A
	// component whose server is down is retried and never reaches Fatal.
	Fatal func(error)
	// Changed, if set, is called after a component became ready, was
	// taken out or removed, outside the Manager's lock: users of the
	// instances (subscriptions) follow at once instead of at their next
	// poll.
	Changed func()
}

// Manager initialises the components of one kind in the background,
// retries those that fail with backoff, and applies changes: a changed
// component is initialised as a new instance and swapped in only once
// ready, while the old one keeps serving.
type Manager[T any] struct {
	kind Kind[T]
	opts ManagerOptions
	log  *slog.Logger
	reg  *Registry[T]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	recs     map[string]*record
	notify   chan struct{} // closed and replaced on every status change
	closeErr []error
	closed   bool
}

// record is the Manager's view of one component name.
type record struct {
	comp   Component
	gen    uint64
	cancel context.CancelFunc
}

// NewManager returns a Manager for one kind; it does nothing until Apply.
func NewManager[T any](k Kind[T], opts ManagerOptions) *Manager[T] {
	if opts.Resolve == nil {
		panic("components.NewManager: ManagerOptions.Resolve is required")
	}
	if k.New == nil || k.Init == nil {
		panic("components.NewManager: Kind.New and Kind.Init are required")
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.Grace <= 0 {
		opts.Grace = 5 * time.Second
	}
	if opts.MaxDrain <= 0 {
		opts.MaxDrain = time.Minute
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager[T]{
		kind: k, opts: opts, log: log.With("kind", k.Category), reg: NewRegistry[T](),
		ctx: ctx, cancel: cancel, recs: map[string]*record{}, notify: make(chan struct{}),
	}
}

// Registry is where the API finds the instances.
func (m *Manager[T]) Registry() *Registry[T] { return m.reg }

// Apply makes the set of running components match comps (those of other
// categories are skipped): new components start initialising, changed ones
// get a replacement initialised beside the serving instance, removed ones
// are closed after the grace period. It returns at once.
func (m *Manager[T]) Apply(comps []Component) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	want := map[string]bool{}
	for _, c := range comps {
		if c.Category() != m.kind.Category || want[c.Name] {
			continue
		}
		want[c.Name] = true
		rec, ok := m.recs[c.Name]
		switch {
		case !ok:
			rec = &record{comp: c}
			m.recs[c.Name] = rec
			m.reg.add(c.Name, Status{Name: c.Name, Type: c.Type, Version: c.Version, State: StateInitializing,
				Since: time.Now(), IgnoreErrors: c.IgnoreErrors, Source: c.Source})
			m.start(rec)
		case rec.comp.Same(c):
			rec.comp.Source = c.Source
			m.reg.update(c.Name, func(e *entry[T]) { e.status.Source = c.Source })
		default:
			rec.cancel()
			rec.comp = c
			m.reg.update(c.Name, func(e *entry[T]) {
				fresh := Status{Name: c.Name, Type: c.Type, Version: c.Version, State: StateInitializing,
					Since: time.Now(), IgnoreErrors: c.IgnoreErrors, Source: c.Source}
				if e.cur != nil {
					e.status.Reload = &fresh // the old instance keeps serving
				} else {
					e.status = fresh
				}
			})
			m.log.Info("component changed; initialising the new version", "component", c.Name, "type", c.Type, "file", c.Source)
			m.start(rec)
		}
	}
	for name, rec := range m.recs {
		if want[name] {
			continue
		}
		rec.cancel()
		delete(m.recs, name)
		if s := m.reg.remove(name); s != nil {
			m.retire(name, s)
		}
		m.log.Info("component removed", "component", name, "type", rec.comp.Type)
	}
	m.changed()
}

// start launches a runner for rec's current spec. Called with m.mu held.
func (m *Manager[T]) start(rec *record) {
	rec.gen++
	ctx, cancel := context.WithCancel(m.ctx)
	rec.cancel = cancel
	m.wg.Add(1)
	go m.run(ctx, rec.comp, rec.gen)
}

// run attempts to initialise c until it succeeds, fails permanently, or
// is superseded.
func (m *Manager[T]) run(ctx context.Context, c Component, gen uint64) {
	defer m.wg.Done()
	log := m.log.With("component", c.Name, "type", c.Type)
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return
		}
		v, err := m.attempt(ctx, c)
		if ctx.Err() != nil {
			if err == nil {
				m.closeQuietly(v)
			}
			return
		}
		if err == nil {
			if !m.succeed(c, gen, v, attempt) {
				m.closeQuietly(v)
				return
			}
			m.notifyChanged()
			// daprd's words: tools and tests look for them.
			if attempt > 1 {
				log.Info("Component loaded: "+c.LogName(), "attempts", attempt)
			} else {
				log.Info("Component loaded: " + c.LogName())
			}
			return
		}
		perm := IsPermanent(err)
		wait := m.backoff(attempt)
		if !m.fail(c, gen, err, attempt, perm, wait) {
			return
		}
		m.notifyChanged()
		level := slog.LevelError
		if c.IgnoreErrors {
			level = slog.LevelWarn
		}
		// daprd's words first: tools and tests look for them.
		initErr := fmt.Sprintf("[INIT_COMPONENT_FAILURE]: initialization error occurred for %s: %v", c.LogName(), initCause(err))
		log.Error(fmt.Sprintf("Failed to init component %s: %s", c.LogName(), initErr))
		if perm {
			processErr := fmt.Sprintf("process component %s error: [INIT_COMPONENT_FAILURE]: initialization error occurred for %s: %s", c.Name, c.LogName(), initErr)
			if c.IgnoreErrors {
				log.Error("Ignoring error processing component: " + processErr)
			} else {
				log.Warn("Error processing component, daprd will exit gracefully: " + processErr)
			}
			log.Log(ctx, level, "component failed; fix its file, it is not retried until then", "file", c.Source, "attempt", attempt, "error", err)
			if !c.IgnoreErrors && m.opts.Fatal != nil {
				m.opts.Fatal(fmt.Errorf("component %s cannot be initialised and spec.ignoreErrors is false: %w", c.LogName(), err))
			}
			return
		}
		log.Log(ctx, level, "component failed to initialise; retrying", "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// attempt makes and initialises one instance.
func (m *Manager[T]) attempt(ctx context.Context, c Component) (T, error) {
	var zero T
	md, err := m.opts.Resolve(ctx, c)
	if err != nil {
		return zero, err
	}
	v, ok, err := m.build(c)
	if err != nil {
		return zero, Permanent(&ResourceError{File: c.Source, Kind: KindComponent, Name: c.Name, Field: "spec.version", Err: err})
	}
	if !ok {
		known := slices.Clone(m.kind.Types)
		slices.Sort(known)
		return zero, Permanent(&ResourceError{File: c.Source, Kind: KindComponent, Name: c.Name, Field: "spec.type",
			Err: fmt.Errorf("unknown %s type %q; known types: %s", m.kind.Category, c.Type, strings.Join(known, ", "))})
	}
	ictx, cancel := context.WithTimeout(ctx, c.InitTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- safeCall(func() error { return m.kind.Init(ictx, v, md) }) }()
	select {
	case err := <-done:
		if err != nil {
			m.closeQuietly(v) // release whatever the failed Init opened
			return zero, &initError{err}
		}
		return v, nil
	case <-ictx.Done():
		// Init ignores its context: leave it, and close the instance
		// whenever it returns.
		go func() { <-done; m.closeQuietly(v) }()
		if ctx.Err() != nil {
			return zero, ctx.Err()
		}
		return zero, fmt.Errorf("init did not finish within spec.initTimeout (%s); raise spec.initTimeout or check that the service is reachable", c.InitTimeout)
	}
}

// build makes a fresh instance of c's type (and version, for the types in
// Kind.Versioned); ok is false for an unknown type.
func (m *Manager[T]) build(c Component) (v T, ok bool, err error) {
	if vs, found := m.kind.Versioned[c.Type]; found {
		v, err = vs.Build(c.Type, c.Version)
		return v, err == nil, err
	}
	v, ok = m.kind.New(c.Type)
	if ok {
		// Every other type has one version, v1, and Dapr refuses a
		// component that asks for one it does not have.
		if ver := strings.ToLower(strings.TrimSpace(c.Version)); ver != "" && ver != "v1" {
			var zero T
			return zero, true, fmt.Errorf("%s has no version %q: the only one is v1 (set spec.version: v1)", c.Type, c.Version)
		}
	}
	return v, ok, nil
}

// succeed swaps v in; false if the run was superseded.
func (m *Manager[T]) succeed(c Component, gen uint64, v T, attempt int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.recs[c.Name]
	if !ok || rec.gen != gen || m.closed {
		return false
	}
	var caps []string
	if m.kind.Capabilities != nil {
		caps = m.kind.Capabilities(v)
	}
	var old *slot[T]
	m.reg.update(c.Name, func(e *entry[T]) {
		old = e.cur
		e.cur = newSlot(v)
		e.status = Status{Name: c.Name, Type: c.Type, Version: c.Version, State: StateReady, Capabilities: caps,
			Attempts: attempt, Since: time.Now(), IgnoreErrors: c.IgnoreErrors, Source: c.Source}
	})
	if old != nil {
		m.retire(c.Name, old)
	}
	m.changed()
	return true
}

// initError is an error Init returned, as opposed to one found before
// (metadata resolution, unknown type).
type initError struct{ err error }

func (e *initError) Error() string { return "init: " + e.err.Error() }
func (e *initError) Unwrap() error { return e.err }

// initCause is the error Init itself returned, if err is one, else err.
func initCause(err error) error {
	var ie *initError
	if errors.As(err, &ie) {
		if p, ok := ie.err.(permanent); ok {
			return p.err
		}
		return ie.err
	}
	if p, ok := err.(permanent); ok {
		return p.err
	}
	return err
}

// fail records a failed attempt; false if the run was superseded. A
// replacement that fails for good takes the serving instance out (daprd
// closes the old version before it initialises the new one): the file
// asks for something else, and the old version must not keep serving as
// if the change had worked. A replacement that fails for a passing reason
// (its server is down) leaves the old one serving while it is retried.
func (m *Manager[T]) fail(c Component, gen uint64, err error, attempt int, perm bool, wait time.Duration) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.recs[c.Name]
	if !ok || rec.gen != gen || m.closed {
		return false
	}
	now := time.Now()
	st := Status{Name: c.Name, Type: c.Type, Version: c.Version, State: StateRetrying, Err: err, Attempts: attempt,
		Since: now, NextRetry: now.Add(wait), IgnoreErrors: c.IgnoreErrors, Source: c.Source}
	if perm {
		st.State, st.NextRetry = StateFailed, time.Time{}
	}
	var old *slot[T]
	m.reg.update(c.Name, func(e *entry[T]) {
		switch {
		case e.cur != nil && perm:
			old, e.cur = e.cur, nil
			e.status = st
		case e.cur != nil:
			e.status.Reload = &st
		default:
			e.status = st
		}
	})
	if old != nil {
		m.log.Info("the component's new version cannot work; its previous version is closed", "component", c.Name, "type", c.Type)
		m.retire(c.Name, old)
	}
	m.changed()
	return true
}

// retire closes a replaced or removed instance after the grace period and
// once its Acquire callers are done (bounded by MaxDrain). Called with
// m.mu held.
func (m *Manager[T]) retire(name string, s *slot[T]) {
	s.retire()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		grace := time.NewTimer(m.opts.Grace)
		select {
		case <-grace.C:
		case <-m.ctx.Done():
			grace.Stop()
		}
		drain := time.NewTimer(m.opts.MaxDrain)
		defer drain.Stop()
		select {
		case <-s.drained:
		case <-drain.C:
			m.log.Warn("closing a replaced component that is still in use", "component", name, "waited", m.opts.MaxDrain)
		}
		if err := m.closeInstance(s.val); err != nil {
			m.log.Warn("closing replaced component", "component", name, "error", err)
			m.mu.Lock()
			m.closeErr = append(m.closeErr, fmt.Errorf("close %q: %w", name, err))
			m.mu.Unlock()
		}
	}()
}

func (m *Manager[T]) closeInstance(v T) error {
	if m.kind.Close == nil {
		return nil
	}
	return safeCall(func() error { return m.kind.Close(v) })
}

func (m *Manager[T]) closeQuietly(v T) { _ = m.closeInstance(v) }

func (m *Manager[T]) backoff(attempt int) time.Duration {
	d := m.opts.MinBackoff
	for i := 1; i < attempt && d < m.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, m.opts.MaxBackoff)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// notifyChanged calls ManagerOptions.Changed. Never with m.mu held.
func (m *Manager[T]) notifyChanged() {
	if m.opts.Changed != nil {
		m.opts.Changed()
	}
}

// changed wakes Wait. Called with m.mu held.
func (m *Manager[T]) changed() {
	close(m.notify)
	m.notify = make(chan struct{})
}

// Wait blocks until every component is ready or has failed for good, and
// returns the errors of those that failed (nil when all are ready). With
// FailFast it returns as soon as a component without spec.ignoreErrors
// fails an attempt. It returns ctx.Err() if ctx ends first.
func (m *Manager[T]) Wait(ctx context.Context) error {
	for {
		m.mu.Lock()
		ch := m.notify
		m.mu.Unlock()
		settled := true
		var errs []error
		for _, st := range m.reg.List() {
			if st.Reload != nil {
				st = *st.Reload
			}
			switch st.State {
			case StateReady:
			case StateFailed:
				errs = append(errs, fmt.Errorf("component %q: %w", st.Name, st.Err))
			case StateRetrying:
				if m.opts.FailFast && !st.IgnoreErrors {
					return fmt.Errorf("component %q (%s) failed to initialise and spec.ignoreErrors is false: %w", st.Name, st.Type, st.Err)
				}
				settled = false
			default:
				settled = false
			}
		}
		if settled {
			return errors.Join(errs...)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Close stops all retries and closes every instance (waiting for Acquire
// callers up to MaxDrain). The Manager cannot be used afterwards.
func (m *Manager[T]) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.cancel()
	for name, rec := range m.recs {
		rec.cancel()
		if s := m.reg.remove(name); s != nil {
			m.retire(name, s)
		}
	}
	m.recs = map[string]*record{}
	m.changed()
	m.mu.Unlock()
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	return errors.Join(m.closeErr...)
}

// safeCall runs fn, turning a panic into an error so that a broken
// component never takes the sidecar down.
func safeCall(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn()
}

// FactoryFromMap turns a map of constructors by spec.type (the shape the
// kinds' builtin packages list) into Kind.New and Kind.Types.
func FactoryFromMap[T any](m map[string]func() T) (newFn func(typ string) (T, bool), types []string) {
	for t := range m {
		types = append(types, t)
	}
	slices.Sort(types)
	return func(typ string) (T, bool) {
		mk, ok := m[typ]
		if !ok {
			var zero T
			return zero, false
		}
		return mk(), true
	}, types
}
