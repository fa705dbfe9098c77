package client

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	operatorv1 "github.com/dapr/dapr/pkg/proto/operator/v1"

	"github.com/tandemrun/tandem/internal/syncbuf"
)

const (
	sidecarID  = "spiffe://cluster.local/ns/default/myapp"
	operatorSV = "spiffe://cluster.local/ns/dapr-system/dapr-operator"
)

// component is a Component as Dapr's operator sends it: no kind or
// apiVersion, Kubernetes' empty fields.
func component(name, typ string) map[string]any {
	return map[string]any{
		"metadata": map[string]any{"name": name, "namespace": "default", "creationTimestamp": nil},
		"spec": map[string]any{"type": typ, "version": "v1", "metadata": []any{
			map[string]any{"name": "a", "value": "1", "secretKeyRef": map[string]any{"name": "", "key": ""}},
		}},
		"auth": map[string]any{"secretStore": ""},
	}
}

func newClient(t *testing.T, tca *testCA, addr string, log *slog.Logger) *Client {
	t.Helper()
	opID, err := OperatorID("cluster.local", "dapr-system")
	if err != nil {
		t.Fatal(err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := New(Config{Address: addr, Source: tca.source(sidecarID), OperatorID: opID, Namespace: "default", Log: log,
		MaxAttempts: 3, RetryWait: time.Millisecond, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestOperatorID(t *testing.T) {
	id, err := OperatorID("public", "")
	if err != nil || id.String() != "spiffe://public/ns/default/dapr-operator" {
		t.Fatalf("OperatorID = %v, %v", id, err)
	}
	if _, err := OperatorID("not a domain", "x"); err == nil {
		t.Fatal("a bad trust domain was accepted")
	}
}

func TestListAndConfiguration(t *testing.T) {
	tca := newTestCA(t)
	op := newFakeOperator()
	op.setComponents(component("statestore", "state.in-memory"), component("pubsub", "pubsub.in-memory"))
	op.config = []byte(`{"kind":"Configuration","apiVersion":"dapr.io/v1alpha1","metadata":{"name":"appconfig"},"spec":{"tracing":{"samplingRate":"1"}}}`)
	addr, stop := tca.serve("127.0.0.1:0", operatorSV, op)
	defer stop()
	c := newClient(t, tca, addr, nil)

	list, err := c.List(t.Context(), Components)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "statestore" || list[0].Namespace != "default" || list[0].Kind != Components {
		t.Fatalf("list = %+v", list)
	}
	want := `{"apiVersion":"dapr.io/v1alpha1","auth":{"secretStore":""},"kind":"Component","metadata":{"name":"statestore","namespace":"default"},"spec":{"metadata":[{"name":"a","value":"1"}],"type":"state.in-memory","version":"v1"}}`
	if got := string(list[0].JSON); got != want {
		t.Fatalf("JSON =\n%s\nwant\n%s", got, want)
	}

	cfg, err := c.Configuration(t.Context(), "appconfig")
	if err != nil || cfg.Name != "appconfig" || !strings.Contains(string(cfg.JSON), `"samplingRate":"1"`) {
		t.Fatalf("Configuration = %+v, %v", cfg, err)
	}
	if _, err := c.Configuration(t.Context(), "missing"); err == nil || err.Error() != "configuration missing not found" {
		t.Fatalf("missing configuration: err = %v", err)
	}
}

// recorder collects what Follow hands on.
type recorder struct {
	mu        sync.Mutex
	snapshots [][]Resource
	events    []Event
	changed   chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 64)} }

func (r *recorder) watch() Watch {
	return Watch{Kind: Components,
		Snapshot: func(l []Resource) {
			r.mu.Lock()
			r.snapshots = append(r.snapshots, l)
			r.mu.Unlock()
			r.changed <- struct{}{}
		},
		Event: func(e Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock(); r.changed <- struct{}{} },
	}
}

func (r *recorder) wait(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		done := ok()
		r.mu.Unlock()
		if done {
			return
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestFollowEventsAndReconnect: the stream's events are handed on; when
// the operator goes away and comes back, Follow opens the stream again and
// lists again, so a change made meanwhile is seen.
func TestFollowEventsAndReconnect(t *testing.T) {
	tca := newTestCA(t)
	op := newFakeOperator()
	op.setComponents(component("a", "state.in-memory"))
	addr, stop := tca.serve("127.0.0.1:0", operatorSV, op)
	var logs syncbuf.Buffer
	c := newClient(t, tca, addr, slog.New(slog.NewTextHandler(&logs, nil)))

	ctx, cancel := context.WithCancel(t.Context())
	rec := newRecorder()
	done := make(chan error, 1)
	go func() { done <- c.Follow(ctx, rec.watch()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Follow returned %v after cancel, want nil", err)
		}
	}()
	<-op.opened
	rec.wait(t, "the first snapshot", func() bool { return len(rec.snapshots) == 1 && rec.snapshots[0][0].Name == "a" })

	if err := op.send(ctx, operatorv1.ResourceEventType_CREATED, component("b", "pubsub.in-memory")); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "the CREATED event", func() bool {
		return len(rec.events) == 1 && rec.events[0].Type == Created && rec.events[0].Resource.Name == "b" &&
			strings.Contains(string(rec.events[0].Resource.JSON), `"kind":"Component"`)
	})

	// The operator goes away; meanwhile c is added. It comes back on the
	// same address.
	stop()
	op2 := newFakeOperator()
	op2.setComponents(component("a", "state.in-memory"), component("c", "state.in-memory"))
	_, stop2 := tca.serve(addr, operatorSV, op2)
	defer stop2()
	<-op2.opened
	rec.wait(t, "the snapshot after reconnecting", func() bool {
		return len(rec.snapshots) == 2 && len(rec.snapshots[1]) == 2 && rec.snapshots[1][1].Name == "c"
	})
	if !strings.Contains(logs.String(), "Reconnected to operator") {
		t.Errorf("log lacks daprd's reconnect line:\n%s", logs.String())
	}
	if err := op2.send(ctx, operatorv1.ResourceEventType_DELETED, component("a", "state.in-memory")); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "the DELETED event", func() bool { return len(rec.events) == 2 && rec.events[1].Type == Deleted })
}

// TestWrongOperatorRefused: a server whose SPIFFE ID is not the operator's
// is refused, although its certificate chains to the trust anchors.
func TestWrongOperatorRefused(t *testing.T) {
	tca := newTestCA(t)
	op := newFakeOperator()
	op.setComponents(component("a", "state.in-memory"))
	addr, stop := tca.serve("127.0.0.1:0", "spiffe://cluster.local/ns/dapr-system/dapr-sentry", op)
	defer stop()
	c := newClient(t, tca, addr, nil)
	_, err := c.List(t.Context(), Components)
	if err == nil || !strings.Contains(err.Error(), "unexpected ID") || !strings.Contains(err.Error(), "dapr-sentry") {
		t.Fatalf("List from an impostor: err = %v, want the impostor's ID refused", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	rec := newRecorder()
	if err := c.Follow(ctx, rec.watch()); err != nil {
		t.Fatal(err)
	}
	if len(rec.snapshots) != 0 || len(rec.events) != 0 {
		t.Fatalf("resources from an impostor were handed on: %+v %+v", rec.snapshots, rec.events)
	}
}

// TestOperatorDownAtStart: List gives up after MaxAttempts; Follow keeps
// trying until the operator is there.
func TestOperatorDownAtStart(t *testing.T) {
	tca := newTestCA(t)
	op := newFakeOperator()
	op.setComponents(component("a", "state.in-memory"))
	addr, stop := tca.serve("127.0.0.1:0", operatorSV, op)
	stop()
	c := newClient(t, tca, addr, nil)
	if _, err := c.List(t.Context(), Components); err == nil {
		t.Fatal("List succeeded with no operator")
	}
	ctx, cancel := context.WithCancel(t.Context())
	rec := newRecorder()
	done := make(chan error, 1)
	go func() { done <- c.Follow(ctx, rec.watch()) }()
	time.Sleep(100 * time.Millisecond) // a few failed attempts
	_, stop = tca.serve(addr, operatorSV, op)
	defer stop()
	rec.wait(t, "the snapshot once the operator is up", func() bool { return len(rec.snapshots) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestUnimplementedStream: an operator without the stream is logged once,
// as daprd does, and Follow waits.
func TestUnimplementedStream(t *testing.T) {
	tca := newTestCA(t)
	addr, stop := tca.serve("127.0.0.1:0", operatorSV, newFakeOperator())
	defer stop()
	var logs syncbuf.Buffer
	c := newClient(t, tca, addr, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if err := c.Follow(ctx, Watch{Kind: Configurations, Event: func(Event) { t.Error("event from nowhere") }}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "Configuration HotReloading is not supported by the Dapr control plane."); n != 1 {
		t.Fatalf("warning logged %d times, want 1:\n%s", n, logs.String())
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, in, want string
		kind           Kind
	}{
		{"fills kind and version", `{"metadata":{"name":"s"},"spec":{"topic":"a"}}`,
			`{"apiVersion":"dapr.io/v2alpha1","kind":"Subscription","metadata":{"name":"s"},"spec":{"topic":"a"}}`, Subscriptions},
		{"keeps what is given", `{"apiVersion":"dapr.io/v1alpha1","kind":"Subscription","metadata":{"name":"s"}}`,
			`{"apiVersion":"dapr.io/v1alpha1","kind":"Subscription","metadata":{"name":"s"}}`, Subscriptions},
		{"numbers as written", `{"metadata":{"name":"c"},"spec":{"metadata":[{"name":"n","value":12345678901234567890}]}}`,
			`{"apiVersion":"dapr.io/v1alpha1","kind":"Component","metadata":{"name":"c"},"spec":{"metadata":[{"name":"n","value":12345678901234567890}]}}`, Components},
		{"a named secretKeyRef stays", `{"metadata":{"name":"c"},"spec":{"metadata":[{"name":"p","secretKeyRef":{"name":"s","key":""}}]}}`,
			`{"apiVersion":"dapr.io/v1alpha1","kind":"Component","metadata":{"name":"c"},"spec":{"metadata":[{"name":"p","secretKeyRef":{"key":"","name":"s"}}]}}`, Components},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := decode(tt.kind, []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(r.JSON) != tt.want {
				t.Fatalf("got  %s\nwant %s", r.JSON, tt.want)
			}
		})
	}
	for _, bad := range []string{``, `null`, `[]`, `{`, `"x"`} {
		if _, err := decode(Components, []byte(bad)); err == nil {
			t.Errorf("decode(%q) succeeded", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"metadata":{"name":"c"},"spec":{"metadata":[{"name":"n","value":null,"secretKeyRef":{"name":""}}]}}`))
	f.Add([]byte(`{"kind":"X","apiVersion":"v","metadata":{"name":1}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decode(Components, data)
		if err != nil {
			return
		}
		// What decode returns decodes again to the same.
		again, err := decode(Components, r.JSON)
		if err != nil || !bytes.Equal(again.JSON, r.JSON) || again.Name != r.Name {
			t.Fatalf("not stable: %s -> %s (%v)", r.JSON, again.JSON, err)
		}
	})
}
