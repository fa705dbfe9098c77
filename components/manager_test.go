package components

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// inst is a fake component instance.
type inst struct {
	id     string // metadata "v", to tell versions apart
	closed atomic.Bool
}

// fakeKind builds instances whose Init behaves as their metadata says:
// failTimes=N fails N times (per component and v), delay=D takes D,
// hang=true ignores its context until release is closed, panic=true panics,
// permanent=true fails for good.
type fakeKind struct {
	mu      sync.Mutex
	fails   map[string]int
	all     []*inst
	release chan struct{}
}

func newFakeKind() *fakeKind { return &fakeKind{fails: map[string]int{}, release: make(chan struct{})} }

func (f *fakeKind) kind() Kind[*inst] {
	return Kind[*inst]{
		Category: "state",
		Types:    []string{"state.fake", "state.other"},
		New: func(typ string) (*inst, bool) {
			if typ != "state.fake" {
				return nil, false
			}
			return &inst{}, true
		},
		Init:         f.init,
		Close:        func(i *inst) error { i.closed.Store(true); return nil },
		Capabilities: func(*inst) []string { return []string{"ETAG"} },
	}
}

func (f *fakeKind) init(ctx context.Context, i *inst, md Metadata) error {
	i.id = md.Properties["v"]
	f.mu.Lock()
	f.all = append(f.all, i)
	key := md.Name + "/" + i.id
	f.fails[key]++
	n := f.fails[key]
	f.mu.Unlock()
	if md.Properties["panic"] == "true" && n == 1 {
		panic("boom")
	}
	if md.Properties["permanent"] == "true" {
		return Permanent(errors.New("missing connection string"))
	}
	if want, _ := md.Int("failTimes", 0); n <= want {
		return fmt.Errorf("broker down (try %d)", n)
	}
	if md.Properties["hang"] == "true" && n == 1 {
		<-f.release
		return nil
	}
	if d, _ := md.Duration("delay", 0); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func comp(name string, props ...string) Component {
	c := Component{APIVersion: APIVersionV1Alpha1, Name: name, Type: "state.fake", Version: "v1", InitTimeout: DefaultInitTimeout, Source: name + ".yaml"}
	for i := 0; i+1 < len(props); i += 2 {
		c.Metadata = append(c.Metadata, MetadataItem{Name: props[i], Value: props[i+1], HasValue: true})
	}
	return c
}

func newTestManager(t *testing.T, f *fakeKind, opts ManagerOptions) *Manager[*inst] {
	t.Helper()
	opts.Resolve = Env{AppID: "app"}.Resolve
	m := NewManager(f.kind(), opts)
	t.Cleanup(func() {
		select {
		case <-f.release:
		default:
			close(f.release)
		}
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

func TestManagerRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKind()
		m := newTestManager(t, f, ManagerOptions{})
		start := time.Now()
		m.Apply([]Component{comp("db", "failTimes", "3")})

		synctest.Wait()
		_, st, ok := m.Registry().Get("db")
		if !ok || st.State != StateRetrying || st.Attempts != 1 || !strings.Contains(fmt.Sprint(st.Err), "broker down") {
			t.Fatalf("after the first failure: %+v", st)
		}
		if d := st.NextRetry.Sub(start); d < 400*time.Millisecond || d > 600*time.Millisecond {
			t.Errorf("first retry in %v, want about 500ms", d)
		}
		_, err := m.Registry().Ready("db")
		var nr *NotReadyError
		if !errors.Is(err, ErrNotReady) || !errors.As(err, &nr) || !strings.Contains(err.Error(), `component "db" (state.fake) is not ready: retrying after 1 attempt(s); last error: init: broker down`) {
			t.Errorf("Ready error = %v", err)
		}

		if err := m.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		if elapsed < 2800*time.Millisecond || elapsed > 4200*time.Millisecond {
			t.Errorf("ready after %v, want about 0.5+1+2s", elapsed)
		}
		v, st, _ := m.Registry().Get("db")
		if v == nil || st.State != StateReady || st.Attempts != 4 || st.Err != nil || st.Capabilities[0] != "ETAG" {
			t.Errorf("ready status: %v %+v", v, st)
		}
		// Failed attempts' instances were closed.
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, i := range f.all[:3] {
			if !i.closed.Load() {
				t.Error("instance of a failed attempt not closed")
			}
		}
	})
}

func TestManagerBackoffCaps(t *testing.T) {
	m := NewManager(newFakeKind().kind(), ManagerOptions{Resolve: Env{}.Resolve, MinBackoff: time.Second, MaxBackoff: 4 * time.Second})
	defer m.Close()
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 10: 4 * time.Second} {
		got := m.backoff(attempt)
		if got < want*8/10 || got > want*12/10 {
			t.Errorf("backoff(%d) = %v, want %v ±20%%", attempt, got, want)
		}
	}
}

func TestManagerPermanentFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKind()
		m := newTestManager(t, f, ManagerOptions{})
		bad := comp("x")
		bad.Type = "state.nope"
		tmpl := comp("y", "consumer", "{podName}")
		m.Apply([]Component{bad, tmpl, comp("ok")})
		err := m.Wait(context.Background())
		if err == nil || !strings.Contains(err.Error(), `x.yaml: component "x": spec.type: unknown state type "state.nope"; known types: state.fake, state.other`) ||
			!strings.Contains(err.Error(), "{podName}") {
			t.Fatalf("Wait = %v", err)
		}
		time.Sleep(time.Minute)
		_, st, _ := m.Registry().Get("x")
		if st.State != StateFailed || st.Attempts != 1 {
			t.Errorf("permanent failure retried: %+v", st)
		}
		if _, err := m.Registry().Ready("x"); !strings.Contains(fmt.Sprint(err), "failed after 1 attempt(s)") || !strings.Contains(fmt.Sprint(err), "fix x.yaml") {
			t.Errorf("Ready(x) = %v", err)
		}
		if _, err := m.Registry().Ready("missing"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Ready(missing) = %v", err)
		}
		if len(m.Registry().List()) != 3 {
			t.Errorf("List = %+v", m.Registry().List())
		}
	})
}

// fatalRecorder collects what Manager passes to ManagerOptions.Fatal.
type fatalRecorder struct {
	mu   sync.Mutex
	errs []error
}

func (r *fatalRecorder) fatal(err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() }

func (r *fatalRecorder) list() []error { r.mu.Lock(); defer r.mu.Unlock(); return slices.Clone(r.errs) }

// TestManagerFatal: a component without spec.ignoreErrors that cannot work
// as written is fatal (daprd exits), at start-up and on a reload, with
// daprd's log lines; with ignoreErrors, or when its server is only down, it
// is not.
func TestManagerFatal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKind()
		var logs bytes.Buffer
		rec := &fatalRecorder{}
		m := newTestManager(t, f, ManagerOptions{Fatal: rec.fatal, Log: slog.New(slog.NewTextHandler(&logs, nil))})

		ignored := comp("a", "permanent", "true")
		ignored.IgnoreErrors = true
		m.Apply([]Component{ignored, comp("down", "failTimes", "2")})
		synctest.Wait()
		time.Sleep(time.Minute)
		if errs := rec.list(); len(errs) != 0 {
			t.Fatalf("fatal with ignoreErrors or a passing failure: %v", errs)
		}

		m.Apply([]Component{comp("a", "permanent", "true"), comp("down", "failTimes", "2")})
		synctest.Wait()
		errs := rec.list()
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "a (state.fake/v1)") || !strings.Contains(errs[0].Error(), "missing connection string") {
			t.Fatalf("fatal errors = %v, want one for a", errs)
		}
		for _, want := range []string{
			"Failed to init component a (state.fake/v1): [INIT_COMPONENT_FAILURE]: initialization error occurred for a (state.fake/v1): missing connection string",
			"Ignoring error processing component: process component a error: [INIT_COMPONENT_FAILURE]: initialization error occurred for a (state.fake/v1): [INIT_COMPONENT_FAILURE]: initialization error occurred for a (state.fake/v1): missing connection string",
			"Error processing component, daprd will exit gracefully: process component a error: [INIT_COMPONENT_FAILURE]: initialization error occurred for a (state.fake/v1): [INIT_COMPONENT_FAILURE]: initialization error occurred for a (state.fake/v1): missing connection string",
		} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs.String())
			}
		}
	})
}

// TestManagerBrokenReplacement: a changed version that cannot work takes
// the serving one out (daprd closes the old version first), and the
// component leaves the ready list; one whose server is down leaves the old
// version serving while it is retried.
func TestManagerBrokenReplacement(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKind()
		m := newTestManager(t, f, ManagerOptions{Grace: time.Second})
		reg := m.Registry()
		m.Apply([]Component{comp("a", "v", "1")})
		if err := m.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		v1, _, _ := reg.Get("a")

		m.Apply([]Component{comp("a", "v", "2", "failTimes", "1")})
		synctest.Wait()
		if v, st, _ := reg.Get("a"); v != v1 || st.State != StateReady || st.Reload == nil || st.Reload.State != StateRetrying {
			t.Fatalf("server down: %v %+v, want v1 serving while v2 retries", v, st)
		}
		if err := m.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		v2, _, _ := reg.Get("a")
		if v2 == v1 || v2.id != "2" {
			t.Fatalf("after the retry: %+v", v2)
		}

		broken := comp("a", "v", "3", "permanent", "true")
		broken.IgnoreErrors = true
		m.Apply([]Component{broken})
		synctest.Wait()
		if v, st, _ := reg.Get("a"); v != nil || st.State != StateFailed {
			t.Fatalf("broken replacement: %v %+v, want no instance, FAILED", v, st)
		}
		time.Sleep(2 * time.Second)
		if !v2.closed.Load() {
			t.Fatal("the taken-out version is not closed after the grace period")
		}

		m.Apply([]Component{comp("a", "v", "4")})
		if err := m.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if v, st, _ := reg.Get("a"); v == nil || v.id != "4" || st.State != StateReady {
			t.Fatalf("fixed: %v %+v", v, st)
		}
	})
}

func TestManagerInitTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKind()
		m := newTestManager(t, f, ManagerOptions{})
		slow := comp("slow", "delay", "10s")
		slow.InitTimeout = 2 * time.Second
		start := time.Now()
		m.Apply([]Component{slow})
		time.Sleep(2*time.Second + time.Millisecond)
		synctest.Wait()
		_, st, _ := m.Registry().Get("slow")
		if st.State != StateRetrying || !strings.Contains(fmt.Sprint(st.Err), "did not finish within spec.initTimeout (2s)") {
			t.Fatalf("status after the timeout: %+v", st)
		}
		if st.Since.Sub(start) != 2*time.Second {
			t.Errorf("attempt ended after %v, want 2s", st.Since.Sub(start))
		}
	})
}

func TestManagerInitIgnoringContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKind()
		m := newTestManager(t, f, ManagerOptions{})
		c := comp("stuck", "hang", "true")
		c.InitTimeout = time.Second
		m.Apply([]Component{c})
		// The first Init never returns by itself; the second attempt (after
		// the timeout and a backoff) succeeds.
		if err := m.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		close(f.release)
		synctest.Wait()
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.all) != 2 || !f.all[0].closed.Load() || f.all[1].closed.Load() {
			t.Errorf("the abandoned instance must be closed once its Init returns, the live one kept")
		}
	})
}

func TestManagerPanicInInitIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKind()
		m := newTestManager(t, f, ManagerOptions{})
		m.Apply([]Component{comp("p", "panic", "true")})
		synctest.Wait()
		if _, st, _ := m.Registry().Get("p"); !strings.Contains(fmt.Sprint(st.Err), "panic: boom") {
			t.Errorf("status %+v", st)
		}
		if err := m.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestManagerFailFast(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprint("ignoreErrors=", ignore), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeKind()
				m := newTestManager(t, f, ManagerOptions{FailFast: true})
				c := comp("db", "failTimes", "2")
				c.IgnoreErrors = ignore
				m.Apply([]Component{c})
				err := m.Wait(context.Background())
				if ignore && err != nil {
					t.Errorf("Wait = %v; ignoreErrors must not fail fast", err)
				}
				if !ignore && (err == nil || !strings.Contains(err.Error(), "spec.ignoreErrors is false")) {
					t.Errorf("Wait = %v; want a fail-fast error", err)
				}
			})
		})
	}
}

func TestManagerHotSwap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKind()
		m := newTestManager(t, f, ManagerOptions{Grace: 3 * time.Second})
		reg := m.Registry()
		m.Apply([]Component{comp("db", "v", "1")})
		if err := m.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		v1, _, _ := reg.Get("db")
		held, release, err := reg.Acquire("db")
		if err != nil || held != v1 {
			t.Fatalf("Acquire = %v, %v", held, err)
		}

		// Unchanged: nothing happens.
		m.Apply([]Component{comp("db", "v", "1")})
		synctest.Wait()
		if v, _, _ := reg.Get("db"); v != v1 {
			t.Fatal("an unchanged component was replaced")
		}

		// Changed, and the new version fails twice: v1 keeps serving.
		m.Apply([]Component{comp("db", "v", "2", "failTimes", "2")})
		synctest.Wait()
		v, st, _ := reg.Get("db")
		if v != v1 || st.State != StateReady || st.Reload == nil || st.Reload.State != StateRetrying {
			t.Fatalf("during the reload: %v %+v", v, st)
		}
		if _, err := reg.Ready("db"); err != nil {
			t.Errorf("Ready during reload: %v", err)
		}
		if err := m.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		v2, st, _ := reg.Get("db")
		if v2 == v1 || v2.id != "2" || st.Reload != nil || st.State != StateReady {
			t.Fatalf("after the reload: %+v %+v", v2, st)
		}
		// v1 is still held by an Acquire caller: not closed, even after the grace period.
		time.Sleep(10 * time.Second)
		if v1.closed.Load() {
			t.Fatal("replaced instance closed while in use")
		}
		release()
		synctest.Wait()
		if !v1.closed.Load() {
			t.Fatal("replaced instance not closed after release")
		}

		// A broken change (unknown type) takes v2 out, as daprd closes the
		// old version first: the file asks for something that cannot work.
		broken := comp("db", "v", "3")
		broken.Type = "state.nope"
		m.Apply([]Component{broken})
		synctest.Wait()
		v, st, ok := reg.Get("db")
		if !ok || v != nil || st.State != StateFailed || st.Reload != nil {
			t.Fatalf("after a broken change: %v %+v", v, st)
		}
		if _, err := reg.Ready("db"); !errors.Is(err, ErrNotReady) {
			t.Fatalf("Ready after a broken change = %v, want ErrNotReady", err)
		}
		time.Sleep(2 * time.Second)
		if v2.closed.Load() {
			t.Fatal("taken-out instance closed before the grace period")
		}
		time.Sleep(4 * time.Second)
		if !v2.closed.Load() {
			t.Fatal("taken-out instance not closed after the grace period")
		}

		// Removed: gone at once.
		m.Apply(nil)
		if _, _, ok := reg.Get("db"); ok {
			t.Fatal("removed component still listed")
		}
	})
}

func TestManagerChangeWhileRetrying(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKind()
		m := newTestManager(t, f, ManagerOptions{})
		m.Apply([]Component{comp("db", "v", "1", "failTimes", "100")})
		synctest.Wait()
		m.Apply([]Component{comp("db", "v", "2")}) // the fix
		if err := m.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if v, st, _ := m.Registry().Get("db"); v.id != "2" || st.Attempts != 1 {
			t.Errorf("got %+v %+v", v, st)
		}
	})
}

func TestManagerSkipsOtherCategories(t *testing.T) {
	m := NewManager(newFakeKind().kind(), ManagerOptions{Resolve: Env{}.Resolve})
	defer m.Close()
	c := comp("q")
	c.Type = "pubsub.fake"
	m.Apply([]Component{c})
	if names := m.Registry().Names(); len(names) != 0 {
		t.Errorf("names = %v", names)
	}
}

func TestManagerCloseStopsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKind()
		m := NewManager(f.kind(), ManagerOptions{Resolve: Env{}.Resolve})
		m.Apply([]Component{comp("a", "failTimes", "1000"), comp("b")})
		synctest.Wait()
		b, _, _ := m.Registry().Get("b")
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if !b.closed.Load() {
			t.Error("Close did not close the ready instance")
		}
		if len(m.Registry().Names()) != 0 {
			t.Error("registry not empty after Close")
		}
		m.Apply([]Component{comp("c")}) // ignored after Close
		// synctest.Test fails if any goroutine is left running.
	})
}

func TestFactoryFromMap(t *testing.T) {
	n := 0
	newFn, types := FactoryFromMap(map[string]func() int{"b.y": func() int { n++; return n }, "a.x": func() int { return -1 }})
	if fmt.Sprint(types) != "[a.x b.y]" {
		t.Errorf("types = %v", types)
	}
	if v, ok := newFn("b.y"); !ok || v != 1 {
		t.Errorf("New(b.y) = %v, %v", v, ok)
	}
	if v, ok := newFn("b.y"); !ok || v != 2 {
		t.Errorf("New(b.y) must build a fresh value each time: %v, %v", v, ok)
	}
	if _, ok := newFn("c"); ok {
		t.Error("New(c) = ok")
	}
}

// TestManagerChanged: ManagerOptions.Changed is called once a component is
// ready (and when it fails), so users follow at once.
func TestManagerChanged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKind()
		var calls atomic.Int32
		m := newTestManager(t, f, ManagerOptions{Changed: func() { calls.Add(1) }})
		m.Apply([]Component{comp("a", "failTimes", "1")})
		synctest.Wait()
		if n := calls.Load(); n != 1 {
			t.Fatalf("Changed called %d times after a failure, want 1", n)
		}
		if err := m.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := calls.Load(); n != 2 {
			t.Fatalf("Changed called %d times once ready, want 2", n)
		}
	})
}
