package middleware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	cmw "github.com/tandemrun/tandem/components/middleware"
	"github.com/tandemrun/tandem/config"
)

// tagger appends its tag to header X-Trail; Init fails when metadata
// fail is set, and waits for metadata gate's channel when set.
type tagger struct{ tag string }

var gates sync.Map // name -> chan struct{}

func (t *tagger) Init(ctx context.Context, md components.Metadata) error {
	if msg, ok := md.Get("fail"); ok {
		return components.Permanent(errors.New(msg))
	}
	if g, ok := gates.Load(md.Name); ok {
		select {
		case <-g.(chan struct{}):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	t.tag = md.String("tag", md.Name)
	return nil
}

func (t *tagger) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Add("X-Trail", t.tag)
		next.ServeHTTP(w, r)
	})
}

func (t *tagger) Close() error { return nil }

func newManager(t *testing.T) *components.Manager[cmw.Middleware] {
	t.Helper()
	kind := cmw.Kind(func(typ string) (cmw.Middleware, bool) {
		switch typ {
		case "middleware.http.tag", "middleware.http.other":
			return &tagger{}, true
		}
		return nil, false
	}, []string{"middleware.http.tag", "middleware.http.other"})
	var p *Pipeline
	var mu sync.Mutex
	m := components.NewManager(kind, components.ManagerOptions{
		Resolve: func(_ context.Context, c components.Component) (components.Metadata, error) {
			props := map[string]string{}
			for _, it := range c.Metadata {
				props[it.Name] = it.Value
			}
			return components.Metadata{Name: c.Name, Type: c.Type, Version: c.Version, Properties: props}, nil
		},
		Changed: func() {
			mu.Lock()
			defer mu.Unlock()
			if p != nil {
				p.Rebuild()
			}
		},
	})
	t.Cleanup(func() { _ = m.Close() })
	// The pipeline under test registers itself through this hook.
	hooks.Store(m, func(pp *Pipeline) { mu.Lock(); p = pp; mu.Unlock() })
	return m
}

var hooks sync.Map

func comp(name, typ string, md ...string) components.Component {
	c := components.Component{Name: name, Type: typ, Version: "v1", InitTimeout: 5 * time.Second}
	for i := 0; i+1 < len(md); i += 2 {
		c.Metadata = append(c.Metadata, components.MetadataItem{Name: md[i], Value: md[i+1], HasValue: true})
	}
	return c
}

func handlers(spec ...string) []config.Handler {
	var out []config.Handler
	for _, s := range spec {
		name, typ, _ := strings.Cut(s, "=")
		out = append(out, config.Handler{Name: name, Type: typ})
	}
	return out
}

// setup applies comps, waits for them and returns a pipeline over them
// ending in a handler that echoes X-Trail.
func setup(t *testing.T, m *components.Manager[cmw.Middleware], hs []config.Handler, comps ...components.Component) (*Pipeline, http.Handler) {
	t.Helper()
	p := New("test", m.Registry(), hs, nil)
	h, _ := hooks.Load(m)
	h.(func(*Pipeline))(p)
	root := p.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strings.Join(r.Header.Values("X-Trail"), ","))
	}))
	m.Apply(comps)
	p.Rebuild()
	return p, root
}

func do(h http.Handler) (int, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/x", nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func waitFor(t *testing.T, h http.Handler, wantCode int, wantBody string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := do(h)
		if code == wantCode && strings.Contains(body, wantBody) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d %q, want %d %q", code, body, wantCode, wantBody)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOrderAndMissing(t *testing.T) {
	m := newManager(t)
	_, h := setup(t, m, handlers("a=middleware.http.tag", "missing=middleware.http.tag", "b=middleware.http.tag", "c=middleware.http.tag"),
		comp("a", "middleware.http.tag"), comp("b", "middleware.http.tag"), comp("c", "middleware.http.other"))
	if err := m.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	// missing is not loaded and c has another type: both are skipped.
	waitFor(t, h, http.StatusOK, "a,b")
	if _, body := do(h); body != "a,b" {
		t.Fatalf("trail %q, want a,b", body)
	}
}

func TestHotReload(t *testing.T) {
	m := newManager(t)
	p, h := setup(t, m, handlers("a=middleware.http.tag", "b=middleware.http.tag"), comp("a", "middleware.http.tag"))
	waitFor(t, h, http.StatusOK, "a")
	if p.Empty() {
		t.Fatal("pipeline with a ready middleware reports empty")
	}
	m.Apply([]components.Component{comp("a", "middleware.http.tag", "tag", "A2"), comp("b", "middleware.http.tag")})
	waitFor(t, h, http.StatusOK, "A2,b")
	p.SetHandlers(handlers("b=middleware.http.tag", "a=middleware.http.tag"))
	if _, body := do(h); body != "b,A2" {
		t.Fatalf("after reordering: %q", body)
	}
	m.Apply(nil)
	p.Rebuild() // as cmd/tandemd does after every Apply
	if _, body := do(h); body != "" {
		t.Fatalf("after removing the components: %q", body)
	}
	if !p.Empty() {
		t.Fatal("pipeline without components is not empty")
	}
}

func TestFailedMiddlewareRefuses(t *testing.T) {
	m := newManager(t)
	_, h := setup(t, m, handlers("a=middleware.http.tag", "bad=middleware.http.tag"),
		comp("a", "middleware.http.tag"), comp("bad", "middleware.http.tag", "fail", "no key"))
	_ = m.Wait(context.Background())
	waitFor(t, h, http.StatusInternalServerError, "ERR_MIDDLEWARE_FAILED")
	_, body := do(h)
	for _, want := range []string{"bad (middleware.http.tag)", "no key"} {
		if !strings.Contains(body, want) {
			t.Errorf("body %q does not say %q", body, want)
		}
	}
	// Fixing the file lets requests through again.
	m.Apply([]components.Component{comp("a", "middleware.http.tag"), comp("bad", "middleware.http.tag")})
	waitFor(t, h, http.StatusOK, "a,bad")
}

func TestIgnoreErrorsLeavesFailedOut(t *testing.T) {
	m := newManager(t)
	bad := comp("bad", "middleware.http.tag", "fail", "boom")
	bad.IgnoreErrors = true
	_, h := setup(t, m, handlers("bad=middleware.http.tag", "a=middleware.http.tag"), comp("a", "middleware.http.tag"), bad)
	_ = m.Wait(context.Background())
	waitFor(t, h, http.StatusOK, "a")
}

func TestInitialisingIsWaitedFor(t *testing.T) {
	m := newManager(t)
	gate := make(chan struct{})
	gates.Store("slow", gate)
	defer gates.Delete("slow")
	p, h := setup(t, m, handlers("slow=middleware.http.tag"), comp("slow", "middleware.http.tag"))
	got := make(chan string, 1)
	go func() { _, body := do(h); got <- body }()
	select {
	case b := <-got:
		t.Fatalf("request passed a middleware that is still initialising: %q", b)
	case <-time.After(300 * time.Millisecond):
	}
	// The request waits for a rebuild; it does not spin.
	p.Rebuild()
	time.Sleep(50 * time.Millisecond)
	if n := p.waits.Load(); n < 1 || n > 2 {
		t.Fatalf("the waiting request went through the chain %d times", n)
	}
	close(gate)
	select {
	case b := <-got:
		if b != "slow" {
			t.Fatalf("trail %q, want slow", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("request still waiting after the middleware became ready")
	}
}

type panicker struct{ tagger }

func (*panicker) Handler(http.Handler) http.Handler {
	return http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("guest bug") })
}

type fixedRegistry map[string]cmw.Middleware

func (f fixedRegistry) Get(name string) (cmw.Middleware, components.Status, bool) {
	mw, ok := f[name]
	return mw, components.Status{Name: name, Type: "middleware.http.tag", Version: "v1", State: components.StateReady}, ok
}

func TestPanicIs500(t *testing.T) {
	p := New("test", fixedRegistry{"p": &panicker{}}, handlers("p=middleware.http.tag"), nil)
	h := p.Wrap(http.NotFoundHandler())
	code, body := do(h)
	if code != http.StatusInternalServerError || !strings.Contains(body, "guest bug") {
		t.Fatalf("got %d %q", code, body)
	}
}
