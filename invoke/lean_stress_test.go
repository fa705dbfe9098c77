package invoke

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/invoke/transport/transporttest"
)

// TestLeanStress runs many concurrent calls over the lean transport (small,
// streamed, large and unknown-size bodies) while some are cancelled, the
// caller's idle connections are dropped, and the callee restarts
// gracefully on the same address, as a sidecar does on a rolling update.
// Every call that is not cancelled by its caller must succeed with its
// body intact. TANDEM_STRESS_CALLS sets the number of calls (default 3000),
// TANDEM_TEST_LEAN=0 runs the same load over gRPC.
func TestLeanStress(t *testing.T) {
	calls := 3000
	if testing.Short() {
		calls = 600
	}
	if s := os.Getenv("TANDEM_STRESS_CALLS"); s != "" {
		calls, _ = strconv.Atoi(s)
	}
	lean := os.Getenv("TANDEM_TEST_LEAN") != "0"
	ca := transporttest.NewCA(t)
	calleeSrc := ca.Source(t, testTD, "default", "server")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	app := &echoApp{}
	type server struct {
		g    *grpc.Server
		lean *transport.LeanServer
		done chan struct{}
	}
	start := func(ln net.Listener) *server {
		s, err := NewServer(ServerOptions{AppID: "server", Namespace: "default", App: app})
		if err != nil {
			t.Error(err)
			return nil
		}
		ls := transport.NewLeanServer(s, 0, nil)
		g := grpc.NewServer(transport.ServerOptions(transport.ServerConfig{Source: calleeSrc, Lean: ls})...)
		s.Register(g)
		srv := &server{g: g, lean: ls, done: make(chan struct{})}
		go func() { defer close(srv.done); _ = g.Serve(ln) }()
		return srv
	}
	// Every generation of the callee serves the one listener: the next is
	// serving before the previous one drains, as a replacement is ready
	// before the old sidecar stops in a rolling update.
	conns := make(chan net.Conn)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(conns)
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	var cur atomic.Pointer[server]
	cur.Store(start(newHandoff(ln, conns)))
	t.Cleanup(func() {
		s := cur.Load()
		_ = s.lean.Close()
		s.g.Stop()
	})

	pool := transport.NewPool(transport.Options{Source: ca.Source(t, testTD, "default", "caller"), Lean: lean})
	t.Cleanup(func() { _ = pool.Close() })
	inv, err := NewClient(ClientOptions{Resolver: fixedResolver(addr), Pool: pool, AppID: "caller", Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}

	big := bytes.Repeat([]byte("0123456789abcdef"), 150<<10/16)
	var next, ok, cancelled, failed atomic.Int64
	var failures sync.Map // message -> count
	stop := make(chan struct{})
	var churn sync.WaitGroup
	churn.Go(func() {
		// Connection churn and graceful restarts of the callee.
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(50+rand.IntN(100)) * time.Millisecond):
			}
			if i%4 != 3 {
				pool.DropIdle(addr)
				continue
			}
			old := cur.Swap(start(newHandoff(ln, conns)))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = old.lean.Shutdown(ctx)
			cancel()
			old.g.GracefulStop()
			<-old.done
		}
	})
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(calls) {
					return
				}
				var body []byte
				size, method, stream := int64(0), "echo", false
				switch i % 6 {
				case 0, 1:
					body = []byte("small " + strconv.FormatInt(i, 10))
					size = int64(len(body))
				case 2:
					body = []byte("streamed answer " + strconv.FormatInt(i, 10))
					size, stream = int64(len(body)), true
				case 3:
					body, size, stream = big, int64(len(big)), true
				case 4:
					body, size, method, stream = big[:70<<10], -1, "stream-echo", true
				case 5:
					size = 0
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				cancelMe := i%13 == 0
				if cancelMe {
					time.AfterFunc(time.Duration(rand.IntN(2000))*time.Microsecond, cancel)
				}
				req := newReq(method, commonv1.HTTPExtension_POST, "", nil, size, nil)
				if body != nil {
					req.Body = onlyReader{bytes.NewReader(body)}
				}
				req.StreamResponse = stream
				resp, err := inv.Invoke(ctx, "server", req)
				var got []byte
				if err == nil {
					got, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && !bytes.Equal(got, body) {
						err = fmt.Errorf("body of %d bytes back, want %d", len(got), len(body))
					}
				}
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
				case cancelMe && (status.Code(err) == codes.Canceled || ctx.Err() != nil):
					cancelled.Add(1)
				default:
					failed.Add(1)
					key := fmt.Sprintf("kind %d: %v", i%6, err)
					v, _ := failures.LoadOrStore(key, new(atomic.Int64))
					v.(*atomic.Int64).Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	churn.Wait()
	t.Logf("lean=%v: %d calls: %d ok, %d cancelled by the caller, %d failed", lean, calls, ok.Load(), cancelled.Load(), failed.Load())
	failures.Range(func(k, v any) bool {
		t.Errorf("%d× %s", v.(*atomic.Int64).Load(), k)
		return true
	})
}

// handoff is one server's view of a listener that several servers share:
// it accepts until closed, leaving the listener open for the others.
type handoff struct {
	net.Listener
	conns <-chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoff(ln net.Listener, conns <-chan net.Conn) *handoff {
	return &handoff{Listener: ln, conns: conns, done: make(chan struct{})}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c, ok := <-h.conns:
		if !ok {
			return nil, net.ErrClosed
		}
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error { h.once.Do(func() { close(h.done) }); return nil }

// fixedResolver always resolves to one address.
type fixedResolver string

func (r fixedResolver) Resolve(context.Context, resolve.Request) (string, error) {
	return string(r), nil
}
func (fixedResolver) Close() error { return nil }
