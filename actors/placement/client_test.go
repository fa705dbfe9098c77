package placement

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// server is a small real placement server: the test drives its stream.
type server struct {
	placementv1.UnimplementedPlacementServer
	streams chan placementv1.Placement_ReportDaprStatusServer
	done    chan struct{}
}

func (s *server) ReportDaprStatus(st placementv1.Placement_ReportDaprStatusServer) error {
	s.streams <- st
	select {
	case <-s.done:
	case <-st.Context().Done():
	}
	return errors.New("stream closed by the test")
}

func startServer(t *testing.T) (*server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{streams: make(chan placementv1.Placement_ReportDaprStatusServer, 1), done: make(chan struct{})}
	g := grpc.NewServer()
	placementv1.RegisterPlacementServer(g, s)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return s, ln.Addr().String()
}

func recvOp(t *testing.T, st placementv1.Placement_ReportDaprStatusServer, want placementv1.HostOperation, version uint64) *placementv1.Host {
	t.Helper()
	h, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if h.GetOperation() != want || (want != placementv1.HostOperation_REPORT && h.GetVersion() != version) {
		t.Fatalf("got %v v%d, want %v v%d", h.GetOperation(), h.GetVersion(), want, version)
	}
	return h
}

func tables(version string, hosts ...string) *placementv1.PlacementTables {
	lm := map[string]*placementv1.Host{}
	for _, h := range hosts {
		lm[h] = &placementv1.Host{Name: h, Id: "app-" + h}
	}
	//lint:ignore SA1019 the test sends the version both ways, as placement does
	return &placementv1.PlacementTables{Version: version, ReplicationFactor: 100,
		Entries: map[string]*placementv1.PlacementTable{"counter": {LoadMap: lm}}}
}

func round(t *testing.T, st placementv1.Placement_ReportDaprStatusServer, v uint64, tb *placementv1.PlacementTables, beforeUnlock func()) {
	t.Helper()
	if err := st.Send(&placementv1.PlacementOrder{Operation: "lock", Version: v}); err != nil {
		t.Fatal(err)
	}
	recvOp(t, st, placementv1.HostOperation_LOCK, v)
	if err := st.Send(&placementv1.PlacementOrder{Operation: "update", Version: v, Tables: tb}); err != nil {
		t.Fatal(err)
	}
	recvOp(t, st, placementv1.HostOperation_UPDATE, v)
	if beforeUnlock != nil {
		beforeUnlock()
	}
	if err := st.Send(&placementv1.PlacementOrder{Operation: "unlock", Version: v}); err != nil {
		t.Fatal(err)
	}
	recvOp(t, st, placementv1.HostOperation_UNLOCK, v)
}

func TestClientDissemination(t *testing.T) {
	srv, addr := startServer(t)
	var disconnects, updates atomic.Int32
	c, err := New(Config{
		Addresses: []string{addr}, HostName: "127.0.0.1:5000", AppID: "app", Namespace: "default",
		DialOptions:  []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		OnUpdate:     func(context.Context, []string) { updates.Add(1) },
		OnDisconnect: func(context.Context) { disconnects.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	c.SetTypes([]string{"counter"})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	st := <-srv.streams
	h := recvOp(t, st, placementv1.HostOperation_REPORT, 0)
	if h.GetName() != "127.0.0.1:5000" || h.GetPort() != 5000 || h.GetId() != "app" || h.GetNamespace() != "default" ||
		len(h.GetEntities()) != 1 || h.GetEntities()[0] != "counter" || h.Version != nil {
		t.Fatalf("report %v", h)
	}
	// No table yet: lookups wait.
	short, stop := context.WithTimeout(t.Context(), 20*time.Millisecond)
	if _, err := c.Table().Lookup(short, "counter", "1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lookup before any table: %v", err)
	}
	stop()
	round(t, st, 1, tables("1", "127.0.0.1:5000"), nil)
	got, err := c.Table().Lookup(t.Context(), "counter", "1")
	if err != nil || got.Name != "127.0.0.1:5000" || got.AppID != "app-127.0.0.1:5000" {
		t.Fatalf("lookup: %v %v", got, err)
	}
	if _, err := c.Table().Lookup(t.Context(), "other", "1"); !errors.Is(err, ErrNoAddress) {
		t.Fatalf("unknown type: %v", err)
	}
	if c.Connected() != addr {
		t.Fatalf("connected %q", c.Connected())
	}
	// A second round that changes the ring: lookups of the type wait for
	// the unlock.
	round(t, st, 2, tables("2", "127.0.0.1:5000", "127.0.0.1:6000"), func() {
		short, stop := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer stop()
		if _, err := c.Table().Lookup(short, "counter", "1"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("lookup during a rebalance: %v", err)
		}
	})
	if _, err := c.Table().Lookup(t.Context(), "counter", "1"); err != nil {
		t.Fatal(err)
	}
	if updates.Load() != 2 || c.Table().Version() != 2 {
		t.Fatalf("updates %d version %d", updates.Load(), c.Table().Version())
	}
	// The stream ends: the table is dropped, the host told, and the
	// client reconnects.
	srv.done <- struct{}{}
	st2 := <-srv.streams
	recvOp(t, st2, placementv1.HostOperation_REPORT, 0)
	if disconnects.Load() != 1 || c.Table().Ready() {
		t.Fatalf("after disconnect: disconnects %d ready %v", disconnects.Load(), c.Table().Ready())
	}
}

func TestNewChecks(t *testing.T) {
	if _, err := New(Config{HostName: "h:1", AppID: "a", Namespace: "n"}); err == nil {
		t.Fatal("no addresses accepted")
	}
	if _, err := New(Config{Addresses: []string{"x:1"}, AppID: "a", Namespace: "n"}); err == nil {
		t.Fatal("no host name accepted")
	}
}
