package transport_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/invoke/transport/transporttest"
)

func serveHealth(t *testing.T, c transport.ServerConfig) string {
	t.Helper()
	g := grpc.NewServer(transport.ServerOptions(c)...)
	healthpb.RegisterHealthServer(g, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return ln.Addr().String()
}

func check(cc *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestPoolReuseDiscardClose(t *testing.T) {
	ca := transporttest.NewCA(t)
	addr := serveHealth(t, transport.ServerConfig{Source: ca.Source(t, "public", "default", "b")})
	p := transport.NewPool(transport.Options{Source: ca.Source(t, "public", "default", "a")})

	cc1, err := p.Get(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := check(cc1); err != nil {
		t.Fatal(err)
	}
	cc2, _ := p.Get(addr)
	if cc1 != cc2 || p.Len() != 1 {
		t.Fatal("second Get did not reuse the connection")
	}
	p.Discard(addr, cc1)
	cc3, _ := p.Get(addr)
	if cc3 == cc1 {
		t.Fatal("discarded connection handed out again")
	}
	if err := check(cc3); err != nil {
		t.Fatal(err)
	}
	p.Discard(addr, cc1) // stale discard must not close the replacement
	if err := check(cc3); err != nil {
		t.Fatalf("stale Discard closed the live connection: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Get(addr); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := check(cc3); status.Code(err) != codes.Canceled {
		t.Fatalf("connection still usable after Close: %v", err)
	}
}

func TestPoolAuthorization(t *testing.T) {
	ca := transporttest.NewCA(t)
	other := transporttest.NewCA(t)
	cases := []struct {
		name   string
		server transport.ServerConfig
		client transport.Options
		ok     bool
	}{
		{"same trust domain", transport.ServerConfig{Source: ca.Source(t, "public", "default", "b")},
			transport.Options{Source: ca.Source(t, "public", "default", "a")}, true},
		{"server in another trust domain", transport.ServerConfig{Source: ca.Source(t, "other", "default", "b")},
			transport.Options{Source: ca.Source(t, "public", "default", "a")}, false},
		{"server from another CA", transport.ServerConfig{Source: other.Source(t, "public", "default", "b")},
			transport.Options{Source: ca.Source(t, "public", "default", "a")}, false},
		{"plaintext both", transport.ServerConfig{}, transport.Options{}, true},
		{"plaintext client, mTLS server", transport.ServerConfig{Source: ca.Source(t, "public", "default", "b")},
			transport.Options{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := serveHealth(t, tc.server)
			p := transport.NewPool(tc.client)
			defer p.Close()
			cc, err := p.Get(addr)
			if err != nil {
				t.Fatal(err)
			}
			err = check(cc)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestPoolDiscardWhileCallsInFlight is the pod-deletion race: one caller
// discards the pooled connection after a transport failure while other
// calls are running on it or about to start. The calls in flight must
// finish, and a call that starts on the retired connection must fail with
// codes.Unavailable (retried by every caller) instead of "grpc: the client
// connection is closing" (Canceled, which nobody retries).
func TestPoolDiscardWhileCallsInFlight(t *testing.T) {
	ca := transporttest.NewCA(t)
	g := grpc.NewServer(transport.ServerOptions(transport.ServerConfig{Source: ca.Source(t, "public", "default", "b")})...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	addr := ln.Addr().String()
	p := transport.NewPool(transport.Options{Source: ca.Source(t, "public", "default", "a")})
	defer p.Close()

	stale, err := p.Get(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	watch, err := healthpb.NewHealthClient(stale).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}

	p.Discard(addr, stale) // another caller saw Unavailable

	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if _, err := watch.Recv(); err != nil {
		t.Fatalf("call in flight on the discarded connection was cut off: %v", err)
	}
	if err := check(stale); err != nil {
		t.Fatalf("call on the discarded connection while another still runs: %v", err)
	}
	cancel() // the last call ends: now the connection closes
	if _, err := watch.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("watch after cancel: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	for stale.GetState() != connectivity.Shutdown && stale.WaitForStateChange(ctx2, stale.GetState()) {
	}
	if s := stale.GetState(); s != connectivity.Shutdown {
		t.Fatalf("discarded connection not closed after its last call: %v", s)
	}
	err = check(stale)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("call started on a closed pooled connection = %v, want codes.Unavailable so callers retry", err)
	}
	fresh, err := p.Get(addr)
	if err != nil || fresh == stale {
		t.Fatalf("Get after Discard = %v, %v; want a fresh connection", fresh == stale, err)
	}
	if err := check(fresh); err != nil {
		t.Fatal(err)
	}
}
