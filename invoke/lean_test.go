package invoke

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"

	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/invoke/transport/transporttest"
)

// TestLeanAndFallback: a Tandem callee is reached over the lean transport
// (no gRPC call at all); a callee that offers only h2, as a daprd does, is
// reached over Dapr's ServiceInvocation gRPC by the same client, with the
// same results, deadlines and caller identity.
func TestLeanAndFallback(t *testing.T) {
	for _, tc := range []struct {
		name      string
		noLean    bool
		wantGRPC  bool
		poolNoLan bool
	}{
		{name: "tandem callee: lean", noLean: false},
		{name: "h2-only callee: gRPC", noLean: true, wantGRPC: true},
		{name: "client without lean: gRPC", noLean: false, wantGRPC: true, poolNoLan: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := transporttest.NewCA(t)
			callee := startSidecarWith(t, ca.Source(t, testTD, "default", "server"), "server", nil, tc.noLean)
			pool := transport.NewPool(transport.Options{Source: ca.Source(t, testTD, "default", "caller"), Lean: !tc.poolNoLan})
			t.Cleanup(func() { _ = pool.Close() })
			inv, err := NewClient(ClientOptions{Resolver: &mapResolver{addrs: map[string][]string{"server/default": {callee.addr}}}, Pool: pool, AppID: "caller", Namespace: "default"})
			if err != nil {
				t.Fatal(err)
			}
			big := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16)
			calls := []struct {
				method string
				body   []byte
				size   int64
				stream bool
			}{
				{"echo", []byte("small"), 5, false},
				{"echo", []byte("small, streamed answer"), 22, true},
				{"echo", nil, 0, true},
				{"echo", big, int64(len(big)), true},
				{"stream-echo", big, -1, true},
				{"echo", []byte("again"), 5, false},
			}
			for i, c := range calls {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				req := newReq(c.method, commonv1.HTTPExtension_POST, "a=b", nil, c.size, map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
				if c.body != nil {
					req.Body = onlyReader{bytes.NewReader(c.body)}
				}
				req.StreamResponse = c.stream
				resp, err := inv.Invoke(ctx, "server", req)
				if err != nil {
					cancel()
					t.Fatalf("call %d: %v", i, err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				cancel()
				if err != nil || !bytes.Equal(got, c.body) {
					t.Fatalf("call %d: body of %d bytes (want %d), %v", i, len(got), len(c.body), err)
				}
				h := resp.Message.GetHeaders()
				if v := h["x-caller"].GetValues(); len(v) != 1 || v[0] != "caller" {
					t.Errorf("call %d: callee saw caller %v, want the certificate's app id", i, v)
				}
				if v := h["x-traceparent"].GetValues(); len(v) != 1 || !strings.HasPrefix(v[0], "00-0af7651916cd43dd8448eb211c80319c-") {
					t.Errorf("call %d: callee saw traceparent %v", i, v)
				}
				if v := h["x-query"].GetValues(); len(v) != 1 || v[0] != "a=b" {
					t.Errorf("call %d: callee saw query %v", i, v)
				}
			}
			n := callee.grpcCalls.Load()
			if tc.wantGRPC && n != int64(len(calls)) {
				t.Errorf("gRPC calls = %d, want %d (fallback)", n, len(calls))
			}
			if !tc.wantGRPC && n != 0 {
				t.Errorf("gRPC calls = %d, want 0 (lean transport)", n)
			}
			if got := callee.app.calls.Load(); got != int64(len(calls)) {
				t.Errorf("app calls = %d, want %d", got, len(calls))
			}
		})
	}
}

// TestLeanDeadlineAndCancel: the caller's deadline reaches the callee's
// app, and cancelling a call in flight cancels it at the callee; the
// connection pool keeps working after both.
func TestLeanDeadlineAndCancel(t *testing.T) {
	t.Setenv("TANDEM_TEST_LEAN", "1")
	p := newPair(t, true)
	app := &blockingApp{started: make(chan struct{}, 2), done: make(chan error, 2)}
	p.callee.app.block = app
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := p.inv.Invoke(ctx, "server", newReq("block", commonv1.HTTPExtension_POST, "", []byte("x"), 1, nil))
	if err == nil {
		t.Fatal("call past its deadline succeeded")
	}
	if e := <-app.done; e == nil {
		t.Fatal("callee's app context did not end with the caller's deadline")
	}

	<-app.started // the first call's
	cancelBlocked(t, p, app, 0)
	ctx3, cancel3 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel3()
	resp, err := p.inv.Invoke(ctx3, "server", newReq("echo", commonv1.HTTPExtension_POST, "", []byte("ok"), 2, nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestLeanWatchAcrossCalls: the callee watches a long call's connection
// with one timer per connection; calls after a watched one are watched
// too (a cancelled call is seen), and a watch never fails a call that
// ends normally.
func TestLeanWatchAcrossCalls(t *testing.T) {
	t.Setenv("TANDEM_TEST_LEAN", "1")
	p := newPair(t, true)
	app := &blockingApp{started: make(chan struct{}, 2), done: make(chan error, 2)}
	p.callee.app.block = app
	for round := range 3 {
		for i := range 3 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := p.inv.Invoke(ctx, "server", newReq("slow", commonv1.HTTPExtension_POST, "", []byte("x"), 1, nil))
			if err != nil {
				cancel()
				t.Fatalf("round %d, slow call %d: %v", round, i, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			cancel()
			if err != nil || string(b) != "x" {
				t.Fatalf("round %d, slow call %d: %q, %v", round, i, b, err)
			}
		}
		cancelBlocked(t, p, app, 10*time.Millisecond) // past watchAfter: the watch is on
	}
}

// cancelBlocked makes a "block" call and cancels it pause after the app
// has it: the call must fail and the app's context end with it.
func cancelBlocked(t *testing.T, p *pair, app *blockingApp, pause time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := p.inv.Invoke(ctx, "server", newReq("block", commonv1.HTTPExtension_POST, "", []byte("x"), 1, nil))
		errc <- err
	}()
	<-app.started
	time.Sleep(pause)
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("cancelled call succeeded")
	}
	if e := <-app.done; e == nil {
		t.Fatal("callee's app context was not cancelled with the call")
	}
}

// TestLeanCalleeRestart: a callee that restarts on the same address closes
// the caller's pooled connections. A call right after, small (replayable:
// its reused connection is not checked first, and it is sent again on a
// fresh one) or streamed (not replayable: its connection is checked
// first), reaches the new callee once.
func TestLeanCalleeRestart(t *testing.T) {
	ca := transporttest.NewCA(t)
	src := ca.Source(t, testTD, "default", "server")
	callee := startSidecar(t, src, "server", nil)
	pool := transport.NewPool(transport.Options{Source: ca.Source(t, testTD, "default", "caller"), Lean: true})
	t.Cleanup(func() { _ = pool.Close() })
	inv, err := NewClient(ClientOptions{Resolver: &mapResolver{addrs: map[string][]string{"server/default": {callee.addr}}}, Pool: pool, AppID: "caller", Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	call := func(body []byte, size int64) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req := newReq("echo", commonv1.HTTPExtension_POST, "", nil, size, nil)
		req.Body = onlyReader{bytes.NewReader(body)}
		resp, err := inv.Invoke(ctx, "server", req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil || !bytes.Equal(got, body) {
			return fmt.Errorf("echoed %d bytes of %d: %v", len(got), len(body), err)
		}
		return nil
	}
	for i, c := range []struct {
		name string
		body []byte
		size int64
	}{
		{"small", []byte("small"), 5},
		{"streamed", bytes.Repeat([]byte("x"), 100), -1},
		{"small again", []byte("again"), 5},
	} {
		// Two calls in parallel leave two pooled connections.
		errs := make(chan error, 2)
		for range 2 {
			go func() { errs <- call([]byte("warm"), 4) }()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("%s: call before the restart: %v", c.name, err)
			}
		}
		callee.stop()
		callee = startSidecarOn(t, src, "server", nil, false, callee.addr)
		if err := call(c.body, c.size); err != nil {
			t.Fatalf("%s (restart %d): call after the restart: %v", c.name, i+1, err)
		}
		if n := callee.app.calls.Load(); n != 1 {
			t.Errorf("%s: the new callee's app got %d calls, want 1", c.name, n)
		}
	}
}
