package transport

import (
	"context"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/invoke/transport/transporttest"
)

// echoLean answers a call with its head and body, and counts the calls
// and the actor calls among them.
type echoLean struct{ calls, actorCalls atomic.Int64 }

func (e *echoLean) ServeLean(_ context.Context, call *ServerCall) error {
	e.calls.Add(1)
	if call.Flags&FlagActor != 0 {
		e.actorCalls.Add(1)
	}
	head := slices.Clone(call.Head)
	body, err := io.ReadAll(call)
	if err != nil {
		return err
	}
	if err := call.SendHead(head); err != nil {
		return err
	}
	_, err = call.Write(body)
	return err
}

// serveLeanProtos starts an internal server whose TLS offers protos (an
// earlier Tandem offers only LeanALPNv2 and h2).
func serveLeanProtos(t *testing.T, src *identity.Source, protos []string, h LeanHandler) string {
	t.Helper()
	lean := NewLeanServer(h, 0, nil)
	t.Cleanup(func() { _ = lean.Close() })
	conf := identity.ServerTLS(src, sameTrustDomainAsSelf(src))
	lc := conf.Clone()
	lc.NextProtos = protos
	g := grpc.NewServer(grpc.Creds(&alpnCreds{TransportCredentials: credentials.NewTLS(conf), conf: lc, lean: lean}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return ln.Addr().String()
}

// roundTrip makes one call on c and checks the echo.
func roundTrip(t *testing.T, c *LeanConn, flags byte) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call, err := c.Start(ctx, 4, flags, []byte("head"))
	if err != nil {
		return err
	}
	defer call.Close()
	if _, err := call.Write([]byte("body")); err != nil {
		return err
	}
	if err := call.CloseSend(); err != nil {
		return err
	}
	h, err := call.RecvHead()
	if err != nil {
		return err
	}
	if string(h) != "head" {
		t.Errorf("answer's head %q, want the echo", h)
	}
	b, err := io.ReadAll(call)
	if err != nil {
		return err
	}
	if string(b) != "body" {
		t.Errorf("answer's body %q, want the echo", b)
	}
	return nil
}

// TestLeanVersions: a version 3 pair carries actor calls; with a peer of
// version 2 only (an earlier Tandem) LeanActor says to use gRPC while
// invocations keep the lean transport (on the connection LeanActor made),
// an actor call on a version 2 connection is refused, and an earlier
// Tandem's pool still reaches a version 3 server.
func TestLeanVersions(t *testing.T) {
	ca := transporttest.NewCA(t)
	serverSrc, clientSrc := ca.Source(t, "public", "default", "server"), ca.Source(t, "public", "default", "client")

	t.Run("version 3 peer", func(t *testing.T) {
		h := &echoLean{}
		addr := serveLeanProtos(t, serverSrc, leanProtos, h)
		pool := NewPool(Options{Source: clientSrc, Lean: true})
		t.Cleanup(func() { _ = pool.Close() })
		c, err := pool.LeanActor(t.Context(), addr)
		if err != nil || c == nil || !c.Actors() {
			t.Fatalf("LeanActor = %v, %v; want a connection that carries actor calls", c, err)
		}
		if err := roundTrip(t, c, FlagActor); err != nil {
			t.Fatal(err)
		}
		if h.actorCalls.Load() != 1 {
			t.Errorf("server saw %d actor calls, want 1", h.actorCalls.Load())
		}
		c, err = pool.Lean(t.Context(), addr)
		if err != nil || c == nil || !c.reused {
			t.Fatalf("Lean after the actor call = %v, %v; want the idle connection again", c, err)
		}
		c.Discard()
	})

	t.Run("version 2 peer", func(t *testing.T) {
		h := &echoLean{}
		addr := serveLeanProtos(t, serverSrc, []string{LeanALPNv2, "h2"}, h)
		pool := NewPool(Options{Source: clientSrc, Lean: true})
		t.Cleanup(func() { _ = pool.Close() })
		for i := range 2 {
			if c, err := pool.LeanActor(t.Context(), addr); c != nil || err != nil {
				t.Fatalf("LeanActor %d = %v, %v; want nil, nil (gRPC)", i, c, err)
			}
		}
		c, err := pool.Lean(t.Context(), addr)
		if err != nil || c == nil {
			t.Fatalf("Lean = %v, %v; want a connection", c, err)
		}
		if c.Actors() || !c.reused {
			t.Errorf("Lean's connection: actors %v, reused %v; want the version 2 one LeanActor kept", c.Actors(), c.reused)
		}
		if err := roundTrip(t, c, 0); err != nil {
			t.Fatal(err)
		}
		// An actor call on it: refused by the client, and by the server
		// if it came.
		c, err = pool.Lean(t.Context(), addr)
		if err != nil || c == nil {
			t.Fatalf("Lean = %v, %v", c, err)
		}
		if err := roundTrip(t, c, FlagActor); err == nil {
			t.Error("an actor call on a version 2 connection was sent")
		}
		c, err = pool.Lean(t.Context(), addr)
		if err != nil || c == nil {
			t.Fatalf("Lean = %v, %v", c, err)
		}
		c.actors = true // a client that misreads the protocol
		if err := roundTrip(t, c, FlagActor); err == nil {
			t.Error("an actor call on a version 2 connection was answered")
		}
		if h.calls.Load() != 1 || h.actorCalls.Load() != 0 {
			t.Errorf("server handled %d calls (%d actor calls), want the invocation only", h.calls.Load(), h.actorCalls.Load())
		}
	})

	t.Run("version 2 client", func(t *testing.T) {
		h := &echoLean{}
		addr := serveLeanProtos(t, serverSrc, leanProtos, h)
		pool := NewPool(Options{Source: clientSrc, Lean: true})
		t.Cleanup(func() { _ = pool.Close() })
		pool.leanTLS.NextProtos = []string{LeanALPNv2, "h2"}
		c, err := pool.Lean(t.Context(), addr)
		if err != nil || c == nil || c.Actors() {
			t.Fatalf("Lean = %v, %v; want a version 2 connection", c, err)
		}
		if err := roundTrip(t, c, 0); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("h2-only peer", func(t *testing.T) {
		addr := serveLeanProtos(t, serverSrc, []string{"h2"}, &echoLean{})
		pool := NewPool(Options{Source: clientSrc, Lean: true})
		t.Cleanup(func() { _ = pool.Close() })
		if c, err := pool.LeanActor(t.Context(), addr); c != nil || err != nil {
			t.Fatalf("LeanActor = %v, %v; want nil, nil (gRPC)", c, err)
		}
	})
}
