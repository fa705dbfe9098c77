package api

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/components/bindings/localstorage"
	"github.com/tandemrun/tandem/proxy/appchannel"
)

// feed is an input (and output) binding whose events the test sends: each
// send waits for the handler's answer, as a broker waits for an ack.
type feed struct {
	events chan feedEvent
}

type feedEvent struct {
	data   string
	answer chan feedAnswer
}

type feedAnswer struct {
	data []byte
	err  error
}

func (f *feed) Init(context.Context, components.Metadata) error { return nil }
func (f *feed) Close() error                                    { return nil }
func (f *feed) Operations() []string                            { return []string{"create"} }
func (f *feed) Invoke(_ context.Context, req *bindings.InvokeRequest) (*bindings.InvokeResponse, error) {
	return &bindings.InvokeResponse{Data: req.Data, Metadata: map[string]string{"echo": req.Operation}}, nil
}

func (f *feed) Read(ctx context.Context, h bindings.Handler) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-f.events:
			wg.Go(func() {
				out, err := h(ctx, &bindings.Event{Data: []byte(ev.data), Metadata: map[string]string{"Source": "feed"}})
				ev.answer <- feedAnswer{out, err}
			})
		}
	}
}

// send sends an event and returns a channel with its answer.
func (f *feed) send(data string) <-chan feedAnswer {
	ch := make(chan feedAnswer, 1)
	f.events <- feedEvent{data, ch}
	return ch
}

// bindingsManager runs the components comps with a feed binding type
// (bindings.feed) and localstorage.
func bindingsManager(t *testing.T, f *feed, comps ...components.Component) *components.Manager[*bindings.Instance] {
	t.Helper()
	newFn, types := components.FactoryFromMap(map[string]func() bindings.Binding{
		"bindings.feed":         func() bindings.Binding { return f },
		"bindings.localstorage": func() bindings.Binding { return localstorage.New() },
	})
	m := components.NewManager(bindings.Kind(newFn, types), components.ManagerOptions{Resolve: components.Env{AppID: "me"}.Resolve})
	t.Cleanup(func() { _ = m.Close() })
	for i := range comps {
		comps[i].InitTimeout = components.DefaultInitTimeout
	}
	m.Apply(comps)
	for _, c := range comps {
		waitUntil(t, c.Name+" ready", func() bool { _, err := m.Registry().Ready(c.Name); return err == nil })
	}
	return m
}

func md(kv ...string) []components.MetadataItem {
	var out []components.MetadataItem
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, components.MetadataItem{Name: kv[i], Value: kv[i+1], HasValue: true})
	}
	return out
}

func TestInvokeBinding(t *testing.T) {
	f := &feed{events: make(chan feedEvent)}
	m := bindingsManager(t, f,
		components.Component{Name: "out", Type: "bindings.feed", Metadata: md("direction", "output")},
		components.Component{Name: "in", Type: "bindings.feed", Metadata: md("direction", "input")},
		components.Component{Name: "files", Type: "bindings.localstorage", Metadata: md("rootPath", t.TempDir())})
	b := NewBindings(BindingsConfig{Registry: m.Registry()})
	ctx := context.Background()
	resp, err := b.Invoke(ctx, "out", &bindings.InvokeRequest{Operation: "create", Data: []byte("x")})
	if err != nil || string(resp.Data) != "x" || resp.Metadata["echo"] != "create" {
		t.Fatalf("Invoke = %v, %v", resp, err)
	}
	for _, c := range []struct{ name, op, want string }{
		{"out", "", "operation field is missing from request"},
		{"nope", "create", "couldn't find output binding nope"},
		{"in", "create", "couldn't find output binding in"}, // input only
		{"out", "get", "binding out does not support operation get. supported operations:create"},
	} {
		_, err := b.Invoke(ctx, c.name, &bindings.InvokeRequest{Operation: c.op})
		if err == nil || err.Error() != c.want {
			t.Errorf("Invoke(%q, %q) = %v, want %q", c.name, c.op, err, c.want)
		}
	}
	if _, err := b.Invoke(ctx, "files", &bindings.InvokeRequest{Operation: "get", Metadata: map[string]string{"fileName": "none"}}); err == nil {
		t.Error("get of a missing file succeeded")
	}
}

func TestInvokeBindingOutboundPolicy(t *testing.T) {
	f := &feed{events: make(chan feedEvent)}
	m := bindingsManager(t, f, components.Component{Name: "files", Type: "bindings.localstorage", Metadata: md("rootPath", t.TempDir())})
	policies := resiliencySet(t, `
  policies:
    retries:
      thrice: {policy: constant, duration: 1ms, maxRetries: 3}
  targets:
    components:
      files:
        outbound: {retry: thrice}
`)
	b := NewBindings(BindingsConfig{Registry: m.Registry(), Resiliency: policies})
	_, err := b.Invoke(context.Background(), "files", &bindings.InvokeRequest{Operation: "get", Metadata: map[string]string{"fileName": "none"}})
	if err == nil || !strings.Contains(err.Error(), "file not found") {
		t.Fatalf("err = %v", err)
	}
}

// bindingApp is an HTTP app that takes events at /in (and /custom).
type bindingApp struct {
	mu       sync.Mutex
	got      []string
	headers  http.Header
	options  atomic.Int32
	fail     atomic.Int32 // answer the next n events with 500
	block    chan struct{}
	entered  chan struct{}
	hasRoute bool
}

func (a *bindingApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		a.options.Add(1)
		if !a.hasRoute {
			w.WriteHeader(http.StatusNotFound)
		}
		return
	}
	body, _ := io.ReadAll(r.Body)
	if a.entered != nil {
		a.entered <- struct{}{}
		<-a.block
	}
	if a.fail.Load() > 0 {
		a.fail.Add(-1)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	a.mu.Lock()
	a.got = append(a.got, r.URL.Path+" "+string(body))
	a.headers = r.Header.Clone()
	a.mu.Unlock()
	_, _ = w.Write([]byte("thanks " + string(body)))
}

func runBindings(t *testing.T, b *Bindings, app App) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, app) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func answer(t *testing.T, ch <-chan feedAnswer) feedAnswer {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to the event")
	}
	return feedAnswer{}
}

func TestInputBindingDelivers(t *testing.T) {
	f := &feed{events: make(chan feedEvent)}
	m := bindingsManager(t, f, components.Component{Name: "in", Type: "bindings.feed", Metadata: md("direction", "input", "route", "/custom")})
	a := &bindingApp{}
	b := NewBindings(BindingsConfig{Registry: m.Registry()})
	runBindings(t, b, serveApp(t, a))
	got := answer(t, f.send(`{"n":1}`))
	if got.err != nil || string(got.data) != `thanks {"n":1}` {
		t.Fatalf("answer = %q, %v", got.data, got.err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.got) != 1 || a.got[0] != `/custom {"n":1}` || a.headers.Get("Source") != "feed" || a.headers.Get("Content-Type") != "application/json" {
		t.Errorf("app got %v with %v", a.got, a.headers)
	}
	if a.options.Load() != 0 {
		t.Error("direction input must spare the OPTIONS probe")
	}
}

func TestInputBindingNeedsTheAppsRoute(t *testing.T) {
	f := &feed{events: make(chan feedEvent, 1)}
	m := bindingsManager(t, f, components.Component{Name: "in", Type: "bindings.feed"})
	a := &bindingApp{}
	b := NewBindings(BindingsConfig{Registry: m.Registry()})
	runBindings(t, b, serveApp(t, a))
	waitUntil(t, "the OPTIONS probe", func() bool { return a.options.Load() > 0 })
	time.Sleep(50 * time.Millisecond)
	if r := b.Reading(); len(r) != 0 {
		t.Fatalf("reading %v for an app without the route", r)
	}
	a2 := &bindingApp{hasRoute: true}
	b2 := NewBindings(BindingsConfig{Registry: m.Registry()})
	runBindings(t, b2, serveApp(t, a2))
	waitUntil(t, "reading", func() bool { return len(b2.Reading()) == 1 })
}

func TestInputBindingRetriesUnderInboundPolicy(t *testing.T) {
	f := &feed{events: make(chan feedEvent)}
	m := bindingsManager(t, f, components.Component{Name: "in", Type: "bindings.feed", Metadata: md("direction", "input")})
	a := &bindingApp{}
	a.fail.Store(2)
	policies := resiliencySet(t, `
  policies:
    retries:
      thrice: {policy: constant, duration: 1ms, maxRetries: 3}
  targets:
    components:
      in:
        inbound: {retry: thrice}
`)
	b := NewBindings(BindingsConfig{Registry: m.Registry(), Resiliency: policies})
	app := serveApp(t, a)
	stop := runBindings(t, b, app)
	if got := answer(t, f.send("x")); got.err != nil {
		t.Fatalf("two 500s then 200 under a 3-retry policy: %v", got.err)
	}
	stop()
	// Without a policy a failure goes back to the binding, which keeps the
	// event.
	a.fail.Store(1)
	b2 := NewBindings(BindingsConfig{Registry: m.Registry()})
	runBindings(t, b2, app)
	if got := answer(t, f.send("y")); got.err == nil || !strings.Contains(got.err.Error(), "status code: 500") {
		t.Fatalf("500 without a policy: %v", got.err)
	}
}

func TestInputBindingStopLetsInflightFinish(t *testing.T) {
	f := &feed{events: make(chan feedEvent)}
	m := bindingsManager(t, f, components.Component{Name: "in", Type: "bindings.feed", Metadata: md("direction", "input")})
	a := &bindingApp{entered: make(chan struct{}, 1), block: make(chan struct{})}
	b := NewBindings(BindingsConfig{Registry: m.Registry()})
	// Long enough for the next event to arrive while reading lingers,
	// however loaded the machine.
	b.linger = 5 * time.Second
	stop := runBindings(t, b, serveApp(t, a))
	waitUntil(t, "reading", func() bool { return len(b.Reading()) == 1 })
	first := f.send("first")
	<-a.entered
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case <-first:
		t.Fatal("the event in flight was answered before the app")
	default:
	}
	close(a.block)
	if got := answer(t, first); got.err != nil || string(got.data) != "thanks first" {
		t.Fatalf("in-flight answer = %q, %v", got.data, got.err)
	}
	// Until reading stops, what comes next is refused, not delivered.
	a.entered = nil
	if got := answer(t, f.send("second")); !errors.Is(got.err, ErrInputClosed) {
		t.Fatalf("event after stop: %v, want %v", got.err, ErrInputClosed)
	}
	<-stopped
}

// grpcBindingApp is a gRPC app that takes input binding events; its
// answer names output bindings in "to" (daprd's legacy reply).
type grpcBindingApp struct {
	runtimev1.UnimplementedAppCallbackServer
	to          []string
	concurrency runtimev1.BindingEventResponse_BindingEventConcurrency
	mu          sync.Mutex
	got         []string
}

func (a *grpcBindingApp) ListInputBindings(context.Context, *emptypb.Empty) (*runtimev1.ListInputBindingsResponse, error) {
	return &runtimev1.ListInputBindingsResponse{Bindings: []string{"in"}}, nil
}

func (a *grpcBindingApp) OnBindingEvent(_ context.Context, in *runtimev1.BindingEventRequest) (*runtimev1.BindingEventResponse, error) {
	a.mu.Lock()
	a.got = append(a.got, in.GetName()+" "+string(in.GetData())+" "+in.GetMetadata()["Source"])
	a.mu.Unlock()
	return &runtimev1.BindingEventResponse{Data: []byte(`{"forwarded":true}`), To: a.to, Concurrency: a.concurrency}, nil
}

func serveGRPCApp(t *testing.T, a *grpcBindingApp) App {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	runtimev1.RegisterAppCallbackServer(s, a)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	ch, err := appchannel.NewGRPC(appchannel.GRPCConfig{Port: ln.Addr().(*net.TCPAddr).Port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.Close() })
	return App{GRPC: ch}
}

func TestInputBindingGRPCAppForwardsToOutputBindings(t *testing.T) {
	f := &feed{events: make(chan feedEvent)}
	dir := t.TempDir()
	// "in" has no direction: the app's ListInputBindings decides.
	m := bindingsManager(t, f,
		components.Component{Name: "in", Type: "bindings.feed"},
		components.Component{Name: "files", Type: "bindings.localstorage", Metadata: md("rootPath", dir)})
	for _, conc := range []runtimev1.BindingEventResponse_BindingEventConcurrency{runtimev1.BindingEventResponse_SEQUENTIAL, runtimev1.BindingEventResponse_PARALLEL} {
		a := &grpcBindingApp{to: []string{"files"}, concurrency: conc}
		b := NewBindings(BindingsConfig{Registry: m.Registry()})
		stop := runBindings(t, b, serveGRPCApp(t, a))
		waitUntil(t, "reading", func() bool { return slices.Contains(b.Reading(), "in") })
		got := answer(t, f.send("ev"))
		if got.err != nil || string(got.data) != `{"forwarded":true}` {
			t.Fatalf("answer = %q, %v", got.data, got.err)
		}
		a.mu.Lock()
		if len(a.got) != 1 || a.got[0] != "in ev feed" {
			t.Errorf("app got %v", a.got)
		}
		a.mu.Unlock()
		// The app's data went to the files binding (create, a generated
		// name).
		entries, _ := os.ReadDir(dir)
		if len(entries) == 0 {
			t.Fatalf("%v: nothing written through the output binding the app named", conc)
		}
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			if string(b) != `{"forwarded":true}` {
				t.Errorf("forwarded data %q", b)
			}
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
		stop()
	}
}
