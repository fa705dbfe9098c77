// Package placement is Tandem's placement service, wire-compatible with
// Dapr 1.18's: actor hosts (tandemd or daprd) hold a
// dapr.proto.placement.v1.Placement/ReportDaprStatus stream to the leader
// replica, report their actor types on it, and receive every namespace's
// hashing table in rounds of lock, update and unlock (namespace.go).
//
// Replicas elect a leader with Raft (Leadership); as in Dapr, membership is
// not replicated: it is the set of streams the leader holds, and after a
// failover the hosts report again to the new leader. Replicas that are not
// the leader refuse streams with FailedPrecondition, which sends a host on
// to the next address.
package placement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/identity"
)

// Defaults of Dapr's placement flags.
const (
	DefaultReplicationFactor  = 100
	DefaultKeepAliveTime      = 2 * time.Second
	DefaultKeepAliveTimeout   = 3 * time.Second
	DefaultDisseminateTimeout = 8 * time.Second
)

// Options configure a Server.
type Options struct {
	// NodeID names this replica in errors and logs.
	NodeID string
	// Listener is where the gRPC service is served.
	Listener net.Listener
	// Source, if set, enables mTLS: the server presents its SVID, accepts
	// any client with an SVID of the trust anchors and checks that hosts
	// report the app ID and namespace of their SPIFFE ID.
	Source                    *identity.Source
	KeepAliveTime             time.Duration
	KeepAliveTimeout          time.Duration
	ReplicationFactor         int64
	DisseminateTimeout        time.Duration
	DisseminateCoalesceWindow time.Duration
	// LeaderSettle holds back the first round of each namespace for this
	// long after this replica becomes the leader, so that the hosts of the
	// old leader, which all reconnect at once, share one table: a caller
	// admitted alone would otherwise get a table without the actor types
	// whose hosts are a moment late (Tandem's addition; 0: none, as Dapr).
	LeaderSettle time.Duration
	Metrics      *Metrics
	Log          *slog.Logger
}

// Server serves ReportDaprStatus while this replica is the leader.
type Server struct {
	placementv1.UnimplementedPlacementServer
	o      Options
	nso    *nsOptions
	nextID atomic.Uint64
	wg     sync.WaitGroup // namespace loops and stream goroutines

	base       context.Context
	baseCancel context.CancelCauseFunc

	mu           sync.Mutex
	leader       bool
	leaderCtx    context.Context
	leaderCancel context.CancelCauseFunc
	settleUntil  time.Time
	namespaces   map[string]*nsEntry
}

type nsEntry struct {
	n      *namespace
	conns  int
	cancel context.CancelCauseFunc
}

// New returns a server; Run serves it.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.KeepAliveTime <= 0 {
		o.KeepAliveTime = DefaultKeepAliveTime
	}
	if o.KeepAliveTimeout <= 0 {
		o.KeepAliveTimeout = DefaultKeepAliveTimeout
	}
	if o.ReplicationFactor <= 0 {
		o.ReplicationFactor = DefaultReplicationFactor
	}
	s := &Server{o: o, namespaces: map[string]*nsEntry{}}
	s.base, s.baseCancel = context.WithCancelCause(context.Background())
	s.nso = &nsOptions{
		replicationFactor: o.ReplicationFactor, timeout: o.DisseminateTimeout, coalesce: o.DisseminateCoalesceWindow,
		authorize: authorize(o.Source != nil), record: o.Metrics.runtimes, disseminated: o.Metrics.disseminated,
		wg: &s.wg, log: o.Log,
	}
	return s
}

// Run serves until ctx ends; the hosts connected are then disconnected
// with Unavailable.
func (s *Server) Run(ctx context.Context) error {
	opts := []grpc.ServerOption{grpc.KeepaliveParams(keepalive.ServerParameters{Time: s.o.KeepAliveTime, Timeout: s.o.KeepAliveTimeout})}
	if s.o.Source != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(identity.ServerTLS(s.o.Source, tlsconfig.AuthorizeAny()))))
	}
	g := grpc.NewServer(opts...)
	placementv1.RegisterPlacementServer(g, s)
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(s.o.Listener) }()
	s.o.Log.Info("placement API serving", "address", s.o.Listener.Addr().String(), "node_id", s.o.NodeID, "mtls", s.o.Source != nil)
	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("placement API on %s: %w", s.o.Listener.Addr(), err)
	case <-ctx.Done():
	}
	s.baseCancel(status.Error(codes.Unavailable, "placement server is shutting down"))
	s.SetLeader(false)
	stopped := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		g.Stop()
		<-stopped
	}
	if err == nil {
		<-errc
	}
	s.wg.Wait()
	return err
}

// SetLeader is told by Leadership when this replica gains or loses the
// leadership. On losing it every host is disconnected (FailedPrecondition),
// so that it reports to the new leader.
func (s *Server) SetLeader(leader bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if leader == s.leader {
		return
	}
	if leader && s.base.Err() != nil {
		return // shutting down
	}
	s.leader = leader
	s.o.Metrics.leader(leader)
	if leader {
		s.leaderCtx, s.leaderCancel = context.WithCancelCause(s.base)
		s.settleUntil = time.Now().Add(s.o.LeaderSettle)
		s.o.Log.Info("this replica is the placement leader; accepting hosts", "node_id", s.o.NodeID)
		return
	}
	s.leaderCancel(status.Errorf(codes.FailedPrecondition, "node id=%s lost the leadership; report to the new leader", s.o.NodeID))
	clear(s.namespaces)
	s.o.Log.Info("this replica is no longer the placement leader; hosts disconnected", "node_id", s.o.NodeID)
}

// IsLeader says whether this replica serves hosts now.
func (s *Server) IsLeader() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leader
}

func (s *Server) notLeader() error {
	return status.Errorf(codes.FailedPrecondition, "node id=%s is not a leader. Only the leader can serve requests", s.o.NodeID)
}

// ReportDaprStatus is a host's stream: its first message is its report;
// it stays open until the host leaves, fails to answer a round in time,
// or this replica stops leading.
func (s *Server) ReportDaprStatus(stream placementv1.Placement_ReportDaprStatusServer) error {
	if !s.IsLeader() {
		return s.notLeader()
	}
	if s.base.Err() != nil {
		return status.Error(codes.Unavailable, "placement server is shutting down")
	}
	h, err := stream.Recv()
	if err != nil {
		return err
	}
	if err := s.nso.authorize(stream, h); err != nil {
		return err
	}
	c := newConn(s.nextID.Add(1), h, stream)
	defer c.cancel(nil)
	e := s.join(c)
	if e == nil {
		return s.notLeader()
	}
	s.o.Log.Info("host connected", "namespace", h.GetNamespace(), "app_id", h.GetId(), "host", h.GetName(), "peer", c.addr)
	<-c.ctx.Done()
	err = context.Cause(c.ctx)
	s.leave(e, c, err)
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.FromContextError(err).Err()
}

// join hands the stream to its namespace's loop, starting one if needed.
func (s *Server) join(c *conn) *nsEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.leader || s.leaderCtx.Err() != nil {
		return nil
	}
	e := s.namespaces[c.ns]
	if e == nil {
		ctx, cancel := context.WithCancelCause(s.leaderCtx)
		e = &nsEntry{n: newNamespace(c.ns, s.nso), cancel: cancel}
		if d := time.Until(s.settleUntil); d > 0 {
			e.n.hold(d)
		}
		s.namespaces[c.ns] = e
		s.wg.Go(func() { e.n.run(ctx) })
	}
	e.conns++
	e.n.enqueue(evAdd{c: c})
	return e
}

// leave tells the namespace a stream ended; the last one ends the
// namespace (its table and version start afresh with the next host).
func (s *Server) leave(e *nsEntry, c *conn, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.n.enqueue(evClose{c: c, err: err})
	e.conns--
	if e.conns == 0 {
		if s.namespaces[c.ns] == e {
			delete(s.namespaces, c.ns)
		}
		e.cancel(errors.New("no hosts left in the namespace"))
	}
}

// StatePlacementTables returns every namespace's hosts and table version
// (Dapr's /placement/state). Only the leader has them.
func (s *Server) StatePlacementTables(ctx context.Context) (*placementv1.StatePlacementTables, error) {
	s.mu.Lock()
	if !s.leader {
		s.mu.Unlock()
		return nil, s.notLeader()
	}
	type pending struct {
		name  string
		reply chan *placementv1.StatePlacementTable
		done  <-chan struct{}
	}
	var waits []pending
	for name, e := range s.namespaces {
		p := pending{name: name, reply: make(chan *placementv1.StatePlacementTable, 1), done: e.n.done}
		e.n.enqueue(evState{reply: p.reply})
		waits = append(waits, p)
	}
	s.mu.Unlock()
	out := &placementv1.StatePlacementTables{Tables: map[string]*placementv1.StatePlacementTable{}}
	for _, p := range waits {
		select {
		case t := <-p.reply:
			out.Tables[p.name] = t
		case <-p.done: // the namespace ended meanwhile
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, nil
}
