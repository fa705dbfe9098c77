// Package placement is the actor host's side of Dapr's placement protocol:
// a bidirectional dapr.proto.placement.v1.Placement/ReportDaprStatus stream
// on which the host reports itself and its actor types, and receives the
// hashing table in rounds of three orders (lock, update, unlock), each
// acknowledged with the round's version. The table (Table) answers which
// host owns an actor; while a round changes a type's ring, lookups of that
// type wait.
//
// Addresses are tried in turn until one accepts the stream (non-leader
// replicas refuse it), as daprd does in self-hosted mode.
package placement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Config configures a Client.
type Config struct {
	// Addresses are the placement replicas (host:port).
	Addresses []string
	// HostName is this host as other sidecars call it: host:port of the
	// internal gRPC server.
	HostName  string
	AppID     string
	Namespace string
	// DialOptions carry the transport credentials (mTLS with the
	// sidecar's SVID, or insecure).
	DialOptions []grpc.DialOption
	// OnUpdate, if set, is called during an update round, before it is
	// acknowledged: the host deactivates the actors it no longer owns.
	OnUpdate func(ctx context.Context, changed []string)
	// DisseminationTimeout bounds a lock -> update -> unlock round; a
	// round that takes longer resets the stream (daprd's
	// --actors-disseminate-timeout). 0: no bound.
	DisseminationTimeout time.Duration
	// OnDisconnect, if set, is called when the stream is lost: the host
	// deactivates every actor (another host may own them now).
	OnDisconnect func(ctx context.Context)
	Log          *slog.Logger
}

// Client keeps the stream to placement open and the Table current.
type Client struct {
	cfg   Config
	table *Table

	mu        sync.Mutex
	types     []string
	stream    placementv1.Placement_ReportDaprStatusClient
	connected string // address of the replica streamed to; "" when none
	sendMu    sync.Mutex
}

// New returns a client; Run connects.
func New(cfg Config) (*Client, error) {
	if len(cfg.Addresses) == 0 {
		return nil, errors.New("placement: no placement addresses provided")
	}
	if cfg.AppID == "" || cfg.Namespace == "" || cfg.HostName == "" {
		return nil, errors.New("placement: app id, namespace and host name are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, table: NewTable()}, nil
}

// Table is the placement table this client keeps.
func (c *Client) Table() *Table { return c.table }

// Connected returns the address of the placement replica streamed to, or
// "" when not connected.
func (c *Client) Connected() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// SetTypes sets the actor types this host serves and reports them.
func (c *Client) SetTypes(types []string) {
	c.mu.Lock()
	c.types = slices.Clone(types)
	s := c.stream
	c.mu.Unlock()
	if s != nil {
		if err := c.send(s, c.report()); err != nil {
			c.cfg.Log.Warn("report actor types to placement", "error", err)
		}
	}
}

func (c *Client) report() *placementv1.Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	port := int64(0)
	if i := lastColon(c.cfg.HostName); i >= 0 {
		port, _ = strconv.ParseInt(c.cfg.HostName[i+1:], 10, 64)
	}
	return &placementv1.Host{
		Name: c.cfg.HostName, Port: port, Entities: slices.Clone(c.types), Id: c.cfg.AppID,
		//lint:ignore SA1019 daprd still reports API level 20; placement reads it
		ApiLevel:  20,
		Namespace: c.cfg.Namespace, Operation: placementv1.HostOperation_REPORT,
	}
}

func lastColon(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			return i
		}
	}
	return -1
}

func (c *Client) send(s placementv1.Placement_ReportDaprStatusClient, h *placementv1.Host) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return s.Send(h)
}

// Run connects and reconnects until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	log := c.cfg.Log
	for i := 0; ; i++ {
		addr := c.cfg.Addresses[i%len(c.cfg.Addresses)]
		err := c.session(ctx, addr)
		c.disconnected(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if isNotLeader(err) {
			log.Debug("placement replica is not the leader", "address", addr)
		} else {
			log.Warn("placement stream closed; reconnecting", "address", addr, "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250*time.Millisecond + rand.N(250*time.Millisecond)):
		}
	}
}

func isNotLeader(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.FailedPrecondition
}

func (c *Client) disconnected(ctx context.Context) {
	c.mu.Lock()
	was := c.connected != ""
	c.stream, c.connected = nil, ""
	c.mu.Unlock()
	c.table.reset()
	if was && c.cfg.OnDisconnect != nil {
		c.cfg.OnDisconnect(context.WithoutCancel(ctx))
	}
}

// session streams with one replica until the stream fails.
func (c *Client) session(ctx context.Context, addr string) error {
	cc, err := grpc.NewClient("passthrough:///"+addr, c.cfg.DialOptions...)
	if err != nil {
		return fmt.Errorf("connect to placement at %s: %w", addr, err)
	}
	defer cc.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := placementv1.NewPlacementClient(cc).ReportDaprStatus(sctx)
	if err != nil {
		return fmt.Errorf("open stream to placement at %s: %w", addr, err)
	}
	if err := c.send(s, c.report()); err != nil {
		return fmt.Errorf("report to placement at %s: %w", addr, err)
	}
	c.mu.Lock()
	c.stream, c.connected = s, addr
	types := c.types
	c.mu.Unlock()
	c.cfg.Log.Info("connected to placement; reported host", "address", addr, "actor_types", types)
	var current placementv1.HostOperation
	var round *time.Timer
	defer func() {
		if round != nil {
			round.Stop()
		}
	}()
	for {
		order, err := s.Recv()
		if err != nil {
			return err
		}
		if current, err = c.handle(ctx, s, order, current); err != nil {
			return err
		}
		switch {
		case current == placementv1.HostOperation_LOCK && c.cfg.DisseminationTimeout > 0:
			if round != nil {
				round.Stop()
			}
			version := order.GetVersion()
			round = time.AfterFunc(c.cfg.DisseminationTimeout, func() {
				c.cfg.Log.Warn(fmt.Sprintf("Dissemination timeout for version %d, closing stream to reconnect", version))
				cancel()
			})
		case current == placementv1.HostOperation_UNLOCK && round != nil:
			round.Stop()
		}
	}
}

// handle applies one order and acknowledges it, returning the operation
// now in progress.
func (c *Client) handle(ctx context.Context, s placementv1.Placement_ReportDaprStatusClient, o *placementv1.PlacementOrder, current placementv1.HostOperation) (placementv1.HostOperation, error) {
	version := o.GetVersion()
	if version == 0 {
		//lint:ignore SA1019 older placement replicas send the version only here
		version, _ = strconv.ParseUint(o.GetTables().GetVersion(), 10, 64)
	}
	var op placementv1.HostOperation
	switch o.GetOperation() {
	case "lock":
		op = placementv1.HostOperation_LOCK
	case "update":
		if v := c.table.Version(); v > version && c.table.Ready() {
			return current, fmt.Errorf("placement table version went back from %d to %d", v, version)
		}
		op = placementv1.HostOperation_UPDATE
		changed := c.table.update(o.GetTables(), version)
		if c.cfg.OnUpdate != nil && len(changed) > 0 {
			c.cfg.OnUpdate(ctx, changed)
		}
	case "unlock":
		if current != placementv1.HostOperation_UPDATE {
			c.cfg.Log.Warn("placement sent unlock without an update; ignored", "version", version)
			return current, nil
		}
		op = placementv1.HostOperation_UNLOCK
		c.table.unlock(version)
		c.cfg.Log.Debug("placement table disseminated", "version", version)
	default:
		return current, fmt.Errorf("unknown placement operation %q", o.GetOperation())
	}
	ack := &placementv1.Host{Operation: op, Version: &version, Namespace: c.cfg.Namespace, Id: c.cfg.AppID}
	if err := c.send(s, ack); err != nil {
		return current, fmt.Errorf("acknowledge %s: %w", o.GetOperation(), err)
	}
	return op, nil
}
