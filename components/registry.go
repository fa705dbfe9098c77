package components

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// State is where a component is in its life.
type State int

const (
	// StateInitializing: the first Init attempt is running.
	StateInitializing State = iota
	// StateReady: the component serves calls.
	StateReady
	// StateRetrying: an attempt failed; another is scheduled (NextRetry).
	StateRetrying
	// StateFailed: the component cannot work as written (unknown type, bad
	// reference); it is retried only when its file changes.
	StateFailed
)

func (s State) String() string {
	switch s {
	case StateInitializing:
		return "INITIALIZING"
	case StateReady:
		return "READY"
	case StateRetrying:
		return "RETRYING"
	case StateFailed:
		return "FAILED"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Status describes one component for the metadata API, health checks and
// error messages. It never holds secret values.
type Status struct {
	Name    string
	Type    string
	Version string
	State   State
	// Capabilities are the features of the ready instance (e.g. "ETAG",
	// "TRANSACTIONAL"), as the metadata API lists them.
	Capabilities []string
	// Err is the last failure of the current attempt series; nil when
	// ready.
	Err error
	// Attempts counts Init attempts since the component (or its latest
	// version) was loaded.
	Attempts int
	// Since is when State was entered; NextRetry when the next attempt
	// starts (StateRetrying only).
	Since     time.Time
	NextRetry time.Time
	// IgnoreErrors is spec.ignoreErrors.
	IgnoreErrors bool
	// Source is the file the component came from.
	Source string
	// Reload, when not nil, is the state of a changed version of the
	// component being initialised while this one keeps serving.
	Reload *Status
}

// ErrNotFound and ErrNotReady are what Registry.Ready returns (wrapped) for
// a name that is not loaded and for a component that is loaded but cannot
// serve yet.
var (
	ErrNotFound = errors.New("component not found")
	ErrNotReady = errors.New("component not ready")
)

// NotReadyError is returned for calls to a component that is loaded but not
// ready; errors.Is(err, ErrNotReady) holds.
type NotReadyError struct {
	Status Status
}

func (e *NotReadyError) Error() string {
	s := e.Status
	var b strings.Builder
	fmt.Fprintf(&b, "component %q (%s) is not ready: %s", s.Name, s.Type, strings.ToLower(s.State.String()))
	if s.Attempts > 0 {
		fmt.Fprintf(&b, " after %d attempt(s)", s.Attempts)
	}
	if s.Err != nil {
		fmt.Fprintf(&b, "; last error: %v", s.Err)
	}
	if s.State == StateFailed {
		fmt.Fprintf(&b, "; fix %s", s.Source)
	}
	return b.String()
}

func (e *NotReadyError) Is(target error) bool { return target == ErrNotReady }

// Registry holds the live instances of one kind of component by name. It is
// safe for concurrent use; a Manager fills it.
type Registry[T any] struct {
	mu      sync.RWMutex
	entries map[string]*entry[T]
}

type entry[T any] struct {
	status Status
	cur    *slot[T] // the instance serving calls; nil until ready
}

// slot is one live instance with a count of callers using it, so a
// replaced instance is closed only once they are done.
type slot[T any] struct {
	val     T
	mu      sync.Mutex
	refs    int
	retired bool
	drained chan struct{} // closed when retired and refs reach 0
}

func newSlot[T any](v T) *slot[T] { return &slot[T]{val: v, drained: make(chan struct{})} }

func (s *slot[T]) acquire() { s.mu.Lock(); s.refs++; s.mu.Unlock() }

func (s *slot[T]) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	if s.retired && s.refs == 0 {
		close(s.drained)
	}
}

func (s *slot[T]) retire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retired = true
	if s.refs == 0 {
		close(s.drained)
	}
}

// NewRegistry returns an empty registry.
func NewRegistry[T any]() *Registry[T] {
	return &Registry[T]{entries: map[string]*entry[T]{}}
}

// Get returns the ready instance of a component (the zero T if it is not
// ready), its status, and whether the name is loaded at all. An instance
// obtained with Get stays usable for the Manager's grace period after a
// reload replaces it; use Acquire for calls that may run longer.
func (r *Registry[T]) Get(name string) (T, Status, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.entries[name]
	if !ok {
		var zero T
		return zero, Status{}, false
	}
	var v T
	if e.cur != nil {
		v = e.cur.val
	}
	return v, e.status.copy(), true
}

// Ready returns the ready instance of a component, or an error wrapping
// ErrNotFound or a *NotReadyError (which says why and since when).
func (r *Registry[T]) Ready(name string) (T, error) {
	v, st, ok := r.Get(name)
	switch {
	case !ok:
		return v, fmt.Errorf("%w: %q", ErrNotFound, name)
	case st.State != StateReady:
		return v, &NotReadyError{Status: st}
	}
	return v, nil
}

// Acquire is Ready for calls that must not see their instance closed under
// them: the instance is closed after a reload only once release has been
// called (or after the Manager's drain limit). Call release exactly once.
func (r *Registry[T]) Acquire(name string) (v T, release func(), err error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.entries[name]
	switch {
	case !ok:
		return v, nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	case e.cur == nil || e.status.State != StateReady:
		return v, nil, &NotReadyError{Status: e.status.copy()}
	}
	s := e.cur
	s.acquire()
	var once sync.Once
	return s.val, func() { once.Do(s.release) }, nil
}

// List returns the status of every loaded component, sorted by name.
func (r *Registry[T]) List() []Status {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Status, 0, len(r.entries))
	for _, e := range r.entries {
		out = append(out, e.status.copy())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names returns the loaded component names, sorted.
func (r *Registry[T]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.entries))
	for n := range r.entries {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (s Status) copy() Status {
	if s.Reload != nil {
		r := s.Reload.copy()
		s.Reload = &r
	}
	return s
}

// update runs fn on the named entry under the write lock; false if the
// name is not loaded.
func (r *Registry[T]) update(name string, fn func(e *entry[T])) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[name]
	if ok {
		fn(e)
	}
	return ok
}

func (r *Registry[T]) add(name string, st Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries[name] = &entry[T]{status: st}
}

// remove drops a name and returns its instance, if any, for retiring.
func (r *Registry[T]) remove(name string) *slot[T] {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[name]
	if !ok {
		return nil
	}
	delete(r.entries, name)
	return e.cur
}

// Versions are the constructors of one component type by spec.version, for
// a type whose versions are different components: Dapr's state.postgresql
// v1 and v2 keep their data in different tables, so serving a v2 component
// with v1 would not find what daprd wrote. Kind.Versioned holds them.
type Versions[T any] struct {
	// Default is the version an empty spec.version means (Dapr's is the
	// first one, "v1").
	Default string
	// New maps a version ("v1", "v2") to a constructor of fresh,
	// uninitialised instances.
	New map[string]func() T
}

// Build returns a fresh instance of version (Default when empty; matched
// without regard to case, as Dapr does), or an error naming the versions
// there are.
func (v Versions[T]) Build(typ, version string) (T, error) {
	want := strings.ToLower(strings.TrimSpace(version))
	if want == "" {
		want = v.Default
	}
	if mk, ok := v.New[want]; ok {
		return mk(), nil
	}
	known := make([]string, 0, len(v.New))
	for k := range v.New {
		known = append(known, k)
	}
	sort.Strings(known)
	var zero T
	return zero, fmt.Errorf("%s has no version %q; set spec.version to one of %s (empty means %s)",
		typ, version, strings.Join(known, ", "), v.Default)
}
