package pluggable_test

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/pluggable"
	"github.com/tandemrun/tandem/components/pubsub/pubsubtest"
)

// socketDir is a short folder for sockets (a socket path has at most 108
// bytes, more than some t.TempDir paths).
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "plg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// open starts a server named "broker" and returns an initialised client of
// it, found the way the sidecar finds it, and the server.
func open(t *testing.T, pausable bool) (*pluggable.PubSub, *server) {
	t.Helper()
	dir := socketDir(t)
	srv := startServer(t, dir, "broker", pausable)
	newPS := pluggable.Fallback(func(string) (pubsub.PubSub, bool) { return nil, false }, components.SocketsFolder(dir), nil)
	ps, ok := newPS("pubsub.broker")
	if !ok {
		t.Fatal("the socket broker.sock was not found for pubsub.broker")
	}
	if err := ps.Init(t.Context(), components.Metadata{Name: "mypub", Type: "pubsub.broker"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ps.Close() })
	return ps.(*pluggable.PubSub), srv
}

func TestContract(t *testing.T) {
	pubsubtest.Run(t, func(t *testing.T) pubsub.PubSub {
		ps, _ := open(t, false)
		return ps
	})
}

func TestFallback(t *testing.T) {
	dir := socketDir(t)
	startServer(t, dir, "mine", false)
	builtin := pluggable.New("builtin-marker", nil)
	newPS := pluggable.Fallback(func(typ string) (pubsub.PubSub, bool) {
		return builtin, typ == "pubsub.redis"
	}, components.SocketsFolder(dir), nil)
	if ps, ok := newPS("pubsub.redis"); !ok || ps != builtin {
		t.Errorf("a built-in type must stay built in")
	}
	if _, ok := newPS("pubsub.mine"); !ok {
		t.Errorf("pubsub.mine: the socket mine.sock was not used")
	}
	for _, typ := range []string{"pubsub.other", "state.mine", "pubsub.", "mine"} {
		if _, ok := newPS(typ); ok {
			t.Errorf("%q: found a broker, want none", typ)
		}
	}
}

// TestStoppingHoldsMessages: when the subscription stops, the handler
// running is still answered (acked), a message arriving afterwards gets no
// answer at all (no nack a component could dead-letter on), and a handler
// failing because the subscription stops is not nacked either.
func TestStoppingHoldsMessages(t *testing.T) {
	ps, srv := open(t, false)
	entered := make(chan string, 4)
	release := make(chan error)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := ps.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "a", MaxConcurrency: 2}, func(_ context.Context, m *pubsub.Message) error {
		entered <- string(m.Data)
		return <-release
	}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"one", "two"} {
		if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: "a", Data: []byte(d)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatal("handler not called")
		}
	}
	cancel()
	if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: "a", Data: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := srv.answered(); len(got) != 0 {
		t.Fatalf("answers before the handlers returned: %v", got)
	}
	release <- nil
	release <- errors.New("app gone while stopping")
	deadline := time.Now().Add(5 * time.Second)
	for len(srv.answered()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	got := srv.answered()
	if len(got) != 1 || got[0].GetAckError() != nil {
		t.Fatalf("answers = %v, want one ack without error (the failed one and the late one unanswered)", got)
	}
	select {
	case d := <-entered:
		t.Errorf("message %q handled after the subscription stopped", d)
	default:
	}
}

// TestNackWhileRunning: a failing handler nacks (ack with error) while the
// subscription runs, and the component redelivers.
func TestNackWhileRunning(t *testing.T) {
	ps, srv := open(t, false)
	calls := make(chan struct{}, 4)
	var n atomic.Int32
	if err := ps.Subscribe(t.Context(), pubsub.SubscribeRequest{Topic: "a"}, func(context.Context, *pubsub.Message) error {
		calls <- struct{}{}
		if n.Add(1) == 1 {
			return errors.New("first try fails")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: "a", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-calls:
		case <-time.After(5 * time.Second):
			t.Fatal("not redelivered")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(srv.answered()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := srv.answered()
	if len(got) != 2 || got[0].GetAckError().GetMessage() != "first try fails" || got[1].GetAckError() != nil {
		t.Fatalf("answers = %v, want a nack with the handler's error, then an ack", got)
	}
}

func TestPause(t *testing.T) {
	ps, srv := open(t, false)
	if err := ps.Pause(t.Context()); !errors.Is(err, pubsub.ErrPauseUnsupported) {
		t.Errorf("Pause on a component without it = %v, want ErrPauseUnsupported", err)
	}
	if srv.pauses.Load() != 1 {
		t.Errorf("Pause not sent")
	}
	ps, _ = open(t, true)
	if err := ps.Pause(t.Context()); err != nil {
		t.Errorf("Pause = %v", err)
	}
}

func TestCloseBeforeInit(t *testing.T) {
	ps := pluggable.New("/nonexistent.sock", nil)
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: "a"}); err == nil {
		t.Error("Publish before Init succeeded")
	}
}

// TestCloseDeliversLastAck: a handler that finishes while the broker
// closes is still acknowledged; Close does not cut the stream under the
// ack.
func TestCloseDeliversLastAck(t *testing.T) {
	ps, srv := open(t, false)
	entered := make(chan struct{})
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := ps.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "a"}, func(context.Context, *pubsub.Message) error {
		close(entered)
		<-release
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: "a", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	<-entered
	cancel()
	closed := make(chan error, 1)
	go func() { closed <- ps.Close() }()
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if got := srv.answered(); len(got) != 1 || got[0].GetAckError() != nil {
		t.Fatalf("answers after Close = %v, want the ack", got)
	}
}

// TestStopKeepsStreamForAcksToSettle: when a delivery was running as the
// subscription stopped, the stream stays open a moment after its answer
// (daprd's ack settling): a message the component sends meanwhile is taken
// and held unanswered, and goes back to the component once the stream
// ends (hotreload/selfhosted/subscriptions/closing).
func TestStopKeepsStreamForAcksToSettle(t *testing.T) {
	// Restored once the component is closed (cleanups run last first).
	t.Cleanup(pluggable.SetAckSettle(5 * time.Second))
	ps, srv := open(t, false)
	entered := make(chan string, 4)
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := ps.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "a"}, func(_ context.Context, m *pubsub.Message) error {
		entered <- string(m.Data)
		<-release
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: "a", Data: []byte("one")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("handler not called")
	}
	cancel()
	close(release)
	pubsubtest.Eventually(t, "the ack", func() bool { return len(srv.answered()) == 1 })
	if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: "a", Data: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	pubsubtest.Eventually(t, "the late message taken by the open stream", func() bool { return srv.sent.Load() == 2 })
	if got := srv.answered(); len(got) != 1 || got[0].GetAckError() != nil {
		t.Fatalf("answers = %v, want the one ack (the late message held unanswered)", got)
	}
	select {
	case d := <-entered:
		t.Errorf("message %q handled after the subscription stopped", d)
	default:
	}
}
