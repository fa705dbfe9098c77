// Package bindingstest is the contract suite every binding passes against
// its real server:
//
//	func TestContract(t *testing.T) {
//		bindingstest.RequireServer(t, "127.0.0.1:5672", "RabbitMQ")
//		queue := "test-" + bindingstest.RandomSuffix()
//		bindingstest.Run(t, bindingstest.Config{
//			New:      func() bindings.Binding { return rabbitmq.New(nil) },
//			Metadata: func(t *testing.T) components.Metadata { ... queueName: queue ... },
//			Send:     func(data []byte) *bindings.InvokeRequest { return &bindings.InvokeRequest{Operation: "create", Data: data} },
//		})
//	}
//
// Every binding: Close is safe before Init and twice after it, Operations
// is not empty for an output binding and an unknown operation is an error,
// not a panic. A binding with both sides (Send set) also passes the input
// contract: what is sent arrives on Read intact; a Handler error makes the
// event come again (at-least-once, nothing dropped); Read returns only
// after the handler it started has returned; an event left unacknowledged
// when Read stops comes to the next Read.
package bindingstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
)

// Timeout bounds every wait for events.
const Timeout = 20 * time.Second

// Config describes the binding under test.
type Config struct {
	// New returns an uninitialised binding.
	New func() bindings.Binding
	// Metadata is the component metadata to Init with; every call within
	// one Run must point at the same queue or topic (a new instance
	// continues where a closed one stopped).
	Metadata func(t *testing.T) components.Metadata
	// Send, for a binding with both sides, is the output request that
	// makes one event with data arrive on Read; nil skips the input
	// contract.
	Send func(data []byte) *bindings.InvokeRequest
}

// RandomSuffix returns 8 random hex characters for unique names.
func RandomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RequireServer checks that a TCP server (what, e.g. "Redis") listens on
// addr. When it does not, the test is skipped with a message saying how to
// start it, or fails when the environment has CI=true.
func RequireServer(t testing.TB, addr, what string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	msg := what + " is not reachable at " + addr + " (" + err.Error() + "); start it (bash scripts/services.sh) to run these tests"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Run runs the contract suite.
func Run(t *testing.T, cfg Config) {
	s := &suite{cfg: cfg}
	t.Run("CloseBeforeInit", s.closeBeforeInit)
	t.Run("CloseIsIdempotent", s.closeIdempotent)
	t.Run("UnknownOperation", s.unknownOperation)
	if cfg.Send == nil {
		return
	}
	t.Run("RoundTrip", s.roundTrip)
	t.Run("HandlerErrorRedelivers", s.handlerErrorRedelivers)
	t.Run("StopWaitsForHandler", s.stopWaitsForHandler)
}

type suite struct {
	cfg Config
}

// open returns an initialised binding closed when the test ends.
func (s *suite) open(t *testing.T) bindings.Binding {
	t.Helper()
	b := s.cfg.New()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := b.Init(ctx, s.cfg.Metadata(t)); err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func (s *suite) closeBeforeInit(t *testing.T) {
	if err := s.cfg.New().Close(); err != nil {
		t.Fatalf("Close before Init: %v", err)
	}
}

func (s *suite) closeIdempotent(t *testing.T) {
	b := s.open(t)
	if err := b.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	// The cleanup closes it a second time.
}

func (s *suite) unknownOperation(t *testing.T) {
	out, ok := s.open(t).(bindings.OutputBinding)
	if !ok {
		t.Skip("no output side")
	}
	if len(out.Operations()) == 0 {
		t.Fatal("Operations is empty")
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if _, err := out.Invoke(ctx, &bindings.InvokeRequest{Operation: "no-such-operation", Metadata: map[string]string{}}); err == nil {
		t.Fatal("Invoke with an unknown operation succeeded")
	}
}

// both returns an initialised binding's two sides.
func (s *suite) both(t *testing.T) (bindings.InputBinding, bindings.OutputBinding) {
	b := s.open(t)
	in, ok1 := b.(bindings.InputBinding)
	out, ok2 := b.(bindings.OutputBinding)
	if !ok1 || !ok2 {
		t.Fatal("Send is set but the binding lacks an input or an output side")
	}
	return in, out
}

func (s *suite) send(t *testing.T, out bindings.OutputBinding, data string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if _, err := out.Invoke(ctx, s.cfg.Send([]byte(data))); err != nil {
		t.Fatalf("Invoke: %v", err)
	}
}

// read runs Read with h until the returned stop is called; stop returns
// Read's error.
func read(t *testing.T, in bindings.InputBinding, h bindings.Handler) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Read(ctx, h) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(Timeout):
				err = errors.New("read did not return after its context ended")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// wait waits for a value on ch.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Timeout):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

func (s *suite) roundTrip(t *testing.T) {
	in, out := s.both(t)
	got := make(chan string, 16)
	stop := read(t, in, func(_ context.Context, ev *bindings.Event) ([]byte, error) {
		got <- string(ev.Data)
		return nil, nil
	})
	want := "round-trip-" + RandomSuffix()
	s.send(t, out, want)
	for {
		if v := wait(t, got, "the event"); v == want {
			break
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Read: %v", err)
	}
}

func (s *suite) handlerErrorRedelivers(t *testing.T) {
	in, out := s.both(t)
	want := "redeliver-" + RandomSuffix()
	var mu sync.Mutex
	attempts := 0
	delivered := make(chan struct{}, 1)
	stop := read(t, in, func(_ context.Context, ev *bindings.Event) ([]byte, error) {
		if string(ev.Data) != want {
			return nil, nil
		}
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts == 1 {
			return nil, errors.New("app failed")
		}
		select {
		case delivered <- struct{}{}:
		default:
		}
		return nil, nil
	})
	s.send(t, out, want)
	wait(t, delivered, "the event to come again after a handler error")
	if err := stop(); err != nil {
		t.Fatalf("Read: %v", err)
	}
}

func (s *suite) stopWaitsForHandler(t *testing.T) {
	in, out := s.both(t)
	want := "inflight-" + RandomSuffix()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var mu sync.Mutex
	returned := false
	stop := read(t, in, func(_ context.Context, ev *bindings.Event) ([]byte, error) {
		if string(ev.Data) != want {
			return nil, nil
		}
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		mu.Lock()
		returned = true
		mu.Unlock()
		return nil, nil
	})
	s.send(t, out, want)
	wait(t, entered, "the handler to start")
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(100 * time.Millisecond)
	close(release)
	if err := wait(t, stopped, "Read to return"); err != nil {
		t.Fatalf("Read: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !returned {
		t.Fatal("Read returned before the handler it started")
	}
}
