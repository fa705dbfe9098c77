package placement

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/tandemrun/tandem/identity"
)

// Peer is a replica of the Raft cluster (--initial-cluster id=host:port).
type Peer struct {
	ID      string
	Address string
}

// ParsePeers parses --initial-cluster entries "id=host:port"; entries
// without exactly one "=" are skipped, as Dapr's placement does.
func ParsePeers(entries []string) []Peer {
	var out []Peer
	for _, e := range entries {
		parts := strings.SplitN(e, "=", 3)
		if len(parts) != 2 {
			continue
		}
		out = append(out, Peer{ID: strings.TrimSpace(parts[0]), Address: strings.TrimSpace(parts[1])})
	}
	return out
}

// LeadershipOptions configure a Leadership.
type LeadershipOptions struct {
	// ID is this replica's --id; its Raft address is its entry in Peers.
	ID    string
	Peers []Peer
	// Source, if set, secures Raft with mTLS: every replica presents, and
	// accepts only, PlacementID (spiffe://<td>/ns/<namespace>/dapr-placement).
	Source      *identity.Source
	PlacementID spiffeid.ID
	// LogStorePath keeps the Raft log, vote and snapshots on disk in this
	// folder (raft.db); empty keeps them in memory, as Dapr 1.18 always does.
	LogStorePath string
	// OnLeader is called with true when this replica becomes the leader
	// and false when it stops being it.
	OnLeader func(bool)
	// OnReady is called once Raft runs.
	OnReady func()
	Metrics *Metrics
	Log     *slog.Logger
}

// Leadership runs this replica's Raft node. Its state machine is empty:
// Raft only elects the replica that serves hosts.
type Leadership struct{ o LeadershipOptions }

// NewLeadership checks the options.
func NewLeadership(o LeadershipOptions) (*Leadership, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.OnLeader == nil {
		o.OnLeader = func(bool) {}
	}
	if o.OnReady == nil {
		o.OnReady = func() {}
	}
	if _, err := o.address(); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, p := range o.Peers {
		if seen[p.ID] {
			return nil, fmt.Errorf("--initial-cluster names replica %q twice", p.ID)
		}
		seen[p.ID] = true
	}
	if o.Source != nil && o.PlacementID.IsZero() {
		return nil, errors.New("placement: mTLS between replicas needs placement's SPIFFE ID")
	}
	return &Leadership{o: o}, nil
}

func (o LeadershipOptions) address() (string, error) {
	for _, p := range o.Peers {
		if p.ID == o.ID {
			return p.Address, nil
		}
	}
	return "", fmt.Errorf("--id %q is not in --initial-cluster %v: add %s=<host>:<raft port>", o.ID, o.Peers, o.ID)
}

// raftConfig is Dapr's: fast timeouts for a single replica, 2 s ones for a
// cluster.
func raftConfig(id string, single bool) *raft.Config {
	c := raft.DefaultConfig()
	c.ProtocolVersion = raft.ProtocolVersionMax
	c.LocalID = raft.ServerID(id)
	c.MaxAppendEntries = 64
	c.ShutdownOnRemove = true
	if single {
		c.HeartbeatTimeout, c.ElectionTimeout, c.CommitTimeout, c.LeaderLeaseTimeout = 5*time.Millisecond, 5*time.Millisecond, 5*time.Millisecond, 5*time.Millisecond
		c.TrailingLogs, c.SnapshotInterval, c.SnapshotThreshold = 500, 60*time.Second, 1000
	} else {
		c.HeartbeatTimeout, c.ElectionTimeout, c.CommitTimeout, c.LeaderLeaseTimeout = 2*time.Second, 2*time.Second, 100*time.Millisecond, 2*time.Second
		c.TrailingLogs, c.SnapshotInterval, c.SnapshotThreshold = 1000, 30*time.Second, 2000
	}
	return c
}

// Run runs the Raft node until ctx ends; a leader hands the leadership
// over before it stops, so that the others need not wait for an election
// timeout.
func (l *Leadership) Run(ctx context.Context) error {
	addr, _ := l.o.address()
	lis, err := listenRaft(ctx, addr)
	if err != nil {
		return err
	}
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: &hclogWriter{log: l.o.Log}, DisableTime: true})
	layer := &streamLayer{Listener: lis}
	if l.o.Source != nil {
		layer.Listener = tls.NewListener(lis, identity.ServerTLS(l.o.Source, tlsconfig.AuthorizeID(l.o.PlacementID)))
		layer.client = identity.ClientTLS(l.o.Source, tlsconfig.AuthorizeID(l.o.PlacementID))
	}
	trans := raft.NewNetworkTransportWithLogger(layer, 3, 10*time.Second, hl)
	defer trans.Close()

	cfg := raftConfig(l.o.ID, len(l.o.Peers) == 1)
	cfg.Logger = hl
	var logs raft.LogStore
	var stable raft.StableStore
	var snaps raft.SnapshotStore
	if l.o.LogStorePath == "" {
		mem := raft.NewInmemStore()
		logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
	} else {
		if err := os.MkdirAll(l.o.LogStorePath, 0o700); err != nil {
			return fmt.Errorf("--raft-logstore-path: %w", err)
		}
		db, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(l.o.LogStorePath, "raft.db")})
		if err != nil {
			return fmt.Errorf("raft log store in %s: %w (is another placement using it?)", l.o.LogStorePath, err)
		}
		defer db.Close()
		cached, err := raft.NewLogCache(512, db)
		if err != nil {
			return err
		}
		fs, err := raft.NewFileSnapshotStoreWithLogger(l.o.LogStorePath, 2, hl)
		if err != nil {
			return fmt.Errorf("raft snapshots in %s: %w", l.o.LogStorePath, err)
		}
		logs, stable, snaps = cached, db, fs
	}
	existing, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fmt.Errorf("raft state: %w", err)
	}
	if !existing {
		var servers []raft.Server
		for _, p := range l.o.Peers {
			servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address)})
		}
		if err := raft.BootstrapCluster(cfg, logs, stable, snaps, trans, raft.Configuration{Servers: servers}); err != nil {
			return fmt.Errorf("raft bootstrap: %w", err)
		}
	}
	r, err := raft.NewRaft(cfg, noopFSM{}, logs, stable, snaps, trans)
	if err != nil {
		return fmt.Errorf("raft: %w", err)
	}
	l.o.Log.Info("raft started", "id", l.o.ID, "address", addr, "peers", len(l.o.Peers), "persistent", l.o.LogStorePath != "")
	l.o.OnReady()
	leaderCh := r.LeaderCh()
	for {
		select {
		case on := <-leaderCh:
			l.o.Metrics.RaftLeader(on)
			l.o.OnLeader(on)
			continue
		case <-ctx.Done():
		}
		break
	}
	if r.State() == raft.Leader && len(l.o.Peers) > 1 {
		if err := r.LeadershipTransfer().Error(); err != nil {
			l.o.Log.Debug("raft leadership transfer on shutdown", "error", err)
		}
	}
	l.o.OnLeader(false)
	l.o.Metrics.RaftLeader(false)
	return r.Shutdown().Error()
}

// listenRaft listens on the replica's Raft address, retrying its name
// resolution for a while: a StatefulSet pod's DNS name may not resolve yet
// when it starts.
func listenRaft(ctx context.Context, addr string) (net.Listener, error) {
	var err error
	for range 240 {
		var ta *net.TCPAddr
		if ta, err = net.ResolveTCPAddr("tcp", addr); err == nil {
			lis, lerr := net.Listen("tcp", ta.String())
			if lerr != nil {
				return nil, fmt.Errorf("raft listener on %s: %w (the --initial-cluster entry of this --id)", addr, lerr)
			}
			return lis, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("raft address %s: %w", addr, err)
}

// streamLayer is Raft's transport: TCP, or mTLS between placement replicas.
// Closing it closes every connection it made or accepted too: Raft's
// transport leaves them (and the goroutines serving them) open otherwise.
type streamLayer struct {
	net.Listener
	client *tls.Config

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	var c net.Conn
	var err error
	if s.client == nil {
		c, err = d.Dial("tcp", string(addr))
	} else {
		c, err = (&tls.Dialer{NetDialer: d, Config: s.client}).Dial("tcp", string(addr))
	}
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

func (s *streamLayer) track(c net.Conn) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, layer: s}
	if s.conns == nil {
		s.conns = map[*trackedConn]struct{}{}
	}
	s.conns[tc] = struct{}{}
	return tc, nil
}

func (s *streamLayer) Close() error {
	err := s.Listener.Close()
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
	return err
}

type trackedConn struct {
	net.Conn
	layer *streamLayer
}

func (c *trackedConn) Close() error {
	c.layer.mu.Lock()
	delete(c.layer.conns, c)
	c.layer.mu.Unlock()
	return c.Conn.Close()
}

// noopFSM is the empty state machine: the cluster only elects a leader.
type noopFSM struct{}

func (noopFSM) Apply(*raft.Log) any                 { return nil }
func (noopFSM) Snapshot() (raft.FSMSnapshot, error) { return noopSnapshot{}, nil }
func (noopFSM) Restore(r io.ReadCloser) error       { return r.Close() }

type noopSnapshot struct{}

func (noopSnapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }
func (noopSnapshot) Release()                             {}

// hclogWriter passes Raft's log lines to slog at their level.
type hclogWriter struct{ log *slog.Logger }

func (w *hclogWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		msg := strings.TrimSpace(string(line))
		level := slog.LevelInfo
		for tag, l := range map[string]slog.Level{"[ERROR]": slog.LevelError, "[WARN]": slog.LevelWarn, "[DEBUG]": slog.LevelDebug, "[TRACE]": slog.LevelDebug, "[INFO]": slog.LevelInfo} {
			if rest, ok := strings.CutPrefix(msg, tag); ok {
				level, msg = l, strings.TrimSpace(rest)
				break
			}
		}
		w.log.Log(context.Background(), level, msg, "component", "raft")
	}
	return len(p), nil
}
