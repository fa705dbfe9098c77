package placement

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// startTestServer runs a Server (plaintext) made leader without Raft.
func startTestServer(t *testing.T, o Options) (*Server, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.Listener = lis
	o.NodeID = "p0"
	s := New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s, lis.Addr().String()
}

// host is a raw ReportDaprStatus stream driven by the test.
type host struct {
	t      *testing.T
	stream placementv1.Placement_ReportDaprStatusClient
	name   string
	ns     string
	cancel context.CancelFunc
}

func dialHost(t *testing.T, addr, ns, name string, types ...string) *host {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		_ = cc.Close()
	})
	s, err := placementv1.NewPlacementClient(cc).ReportDaprStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := &host{t: t, stream: s, name: name, ns: ns, cancel: cancel}
	h.report(types...)
	return h
}

func (h *host) report(types ...string) {
	h.t.Helper()
	if err := h.stream.Send(&placementv1.Host{Name: h.name, Id: "app-" + h.name, Namespace: h.ns, Entities: types,
		Operation: placementv1.HostOperation_REPORT}); err != nil && !errors.Is(err, io.EOF) {
		h.t.Fatal(err) // io.EOF: the server ended the stream; Recv says why
	}
}

func (h *host) recv(op string, version uint64) *placementv1.PlacementOrder {
	h.t.Helper()
	o, err := h.stream.Recv()
	if err != nil {
		h.t.Fatalf("%s: waiting for %s v%d: %v", h.name, op, version, err)
	}
	if o.GetOperation() != op || o.GetVersion() != version {
		h.t.Fatalf("%s: got %s v%d, want %s v%d", h.name, o.GetOperation(), o.GetVersion(), op, version)
	}
	return o
}

func (h *host) ack(op placementv1.HostOperation, version uint64) {
	h.t.Helper()
	if err := h.stream.Send(&placementv1.Host{Name: h.name, Id: "app-" + h.name, Namespace: h.ns, Operation: op, Version: &version}); err != nil {
		h.t.Fatal(err)
	}
}

// round takes one host through a full round and returns the table sent.
func (h *host) lockPhase(v uint64) {
	h.t.Helper()
	h.recv(opLock, v)
	h.ack(placementv1.HostOperation_LOCK, v)
}

func (h *host) updatePhase(v uint64) *placementv1.PlacementTables {
	h.t.Helper()
	o := h.recv(opUpdate, v)
	h.ack(placementv1.HostOperation_UPDATE, v)
	return o.GetTables()
}

func (h *host) unlockPhase(v uint64) {
	h.t.Helper()
	h.recv(opUnlock, v)
	h.ack(placementv1.HostOperation_UNLOCK, v)
}

// rounds takes all hosts through round v together and returns the table.
func rounds(v uint64, hosts ...*host) *placementv1.PlacementTables {
	for _, h := range hosts {
		h.lockPhase(v)
	}
	var tb *placementv1.PlacementTables
	for _, h := range hosts {
		tb = h.updatePhase(v)
	}
	for _, h := range hosts {
		h.unlockPhase(v)
	}
	return tb
}

func hostsOf(tb *placementv1.PlacementTables, typ string) []string {
	var out []string
	for name := range tb.GetEntries()[typ].GetLoadMap() {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

func TestDisseminationRounds(t *testing.T) {
	s, addr := startTestServer(t, Options{DisseminateTimeout: time.Minute})
	s.SetLeader(true)

	a := dialHost(t, addr, "ns1", "a:1", "counter")
	tb := rounds(1, a)
	if got := hostsOf(tb, "counter"); !slices.Equal(got, []string{"a:1"}) || tb.GetReplicationFactor() != DefaultReplicationFactor {
		t.Fatalf("v1 table: %v rf %d", got, tb.GetReplicationFactor())
	}

	// A caller without actor types gets the current table on its own.
	c := dialHost(t, addr, "ns1", "c:1")
	c.recv(opLock, 1)
	if got := hostsOf(c.recv(opUpdate, 1).GetTables(), "counter"); !slices.Equal(got, []string{"a:1"}) {
		t.Fatalf("caller's table: %v", got)
	}
	c.recv(opUnlock, 1)
	c.ack(placementv1.HostOperation_UNLOCK, 1) // acks of its own push are not part of a round

	// A second actor host: a round through all three.
	b := dialHost(t, addr, "ns1", "b:1", "counter", "other")
	tb = rounds(2, a, b, c)
	if got := hostsOf(tb, "counter"); !slices.Equal(got, []string{"a:1", "b:1"}) {
		t.Fatalf("v2 counter: %v", got)
	}
	if got := hostsOf(tb, "other"); !slices.Equal(got, []string{"b:1"}) {
		t.Fatalf("v2 other: %v", got)
	}

	// The update phase waits for every lock.
	b.report("counter")
	a.lockPhase(3)
	c.lockPhase(3)
	b.recv(opLock, 3)
	time.Sleep(50 * time.Millisecond)
	b.ack(placementv1.HostOperation_LOCK, 3)
	for _, h := range []*host{a, b, c} {
		h.updatePhase(3)
	}
	for _, h := range []*host{a, b, c} {
		h.unlockPhase(3)
	}

	// A host leaving starts a round without it.
	b.cancel()
	tb = rounds(4, a, c)
	if got := hostsOf(tb, "counter"); !slices.Equal(got, []string{"a:1"}) {
		t.Fatalf("v4 counter: %v", got)
	}
	if _, ok := tb.GetEntries()["other"]; ok {
		t.Fatalf("v4 still has type other: %v", tb)
	}

	st, err := s.StatePlacementTables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ns := st.GetTables()["ns1"]; ns.GetVersion() != 4 || len(ns.GetHosts()) != 1 || ns.GetHosts()[0].GetName() != "a:1" {
		t.Fatalf("state: %v", st)
	}
}

func TestNamespacesApart(t *testing.T) {
	s, addr := startTestServer(t, Options{DisseminateTimeout: time.Minute})
	s.SetLeader(true)
	a := dialHost(t, addr, "ns1", "a:1", "counter")
	rounds(1, a)
	b := dialHost(t, addr, "ns2", "b:1", "counter")
	if got := hostsOf(rounds(1, b), "counter"); !slices.Equal(got, []string{"b:1"}) {
		t.Fatalf("ns2 table: %v", got)
	}
	// ns1 saw no round for ns2's host.
	a.report("counter", "more")
	if got := hostsOf(rounds(2, a), "counter"); !slices.Equal(got, []string{"a:1"}) {
		t.Fatalf("ns1 table: %v", got)
	}
}

func TestDisseminationTimeoutDisconnectsSilentHost(t *testing.T) {
	s, addr := startTestServer(t, Options{DisseminateTimeout: 500 * time.Millisecond})
	s.SetLeader(true)
	a := dialHost(t, addr, "ns", "a:1", "counter")
	rounds(1, a)
	b := dialHost(t, addr, "ns", "b:1", "counter")
	a.lockPhase(2)
	b.recv(opLock, 2) // b never answers
	_, err := b.stream.Recv()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("silent host: %v, want DeadlineExceeded", err)
	}
	if got := hostsOf(rounds(3, a), "counter"); !slices.Equal(got, []string{"a:1"}) {
		t.Fatalf("after the timeout: %v", got)
	}
}

func TestNotLeaderRefuses(t *testing.T) {
	s, addr := startTestServer(t, Options{})
	h := dialHost(t, addr, "ns", "a:1", "counter")
	if _, err := h.stream.Recv(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("follower: %v, want FailedPrecondition", err)
	}
	if _, err := s.StatePlacementTables(context.Background()); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("state on a follower: %v", err)
	}
	// Losing the leadership disconnects the hosts.
	s.SetLeader(true)
	h = dialHost(t, addr, "ns", "a:1", "counter")
	rounds(1, h)
	s.SetLeader(false)
	if _, err := h.stream.Recv(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("after losing the leadership: %v, want FailedPrecondition", err)
	}
}

func TestBadReportRefused(t *testing.T) {
	s, addr := startTestServer(t, Options{})
	s.SetLeader(true)
	h := dialHost(t, addr, "", "a:1", "counter")
	if _, err := h.stream.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("no namespace: %v, want InvalidArgument", err)
	}
	h = dialHost(t, addr, "ns", "a:1", "dapr.internal.other.app.x")
	if _, err := h.stream.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("internal type of another app: %v, want PermissionDenied", err)
	}
}

// TestLeaderSettle: after gaining the leadership, hosts joining within the
// settle window are admitted together: a caller without actor types that
// connects first still gets a table with the actor host.
func TestLeaderSettle(t *testing.T) {
	s, addr := startTestServer(t, Options{DisseminateTimeout: time.Minute, LeaderSettle: 300 * time.Millisecond})
	s.SetLeader(true)
	c := dialHost(t, addr, "ns", "c:1")
	time.Sleep(50 * time.Millisecond)
	a := dialHost(t, addr, "ns", "a:1", "counter")
	if got := hostsOf(rounds(1, a, c), "counter"); !slices.Equal(got, []string{"a:1"}) {
		t.Fatalf("first table: %v", got)
	}
}
