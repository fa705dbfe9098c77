package placement

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// replica is one Leadership run by the test.
type replica struct {
	mu     sync.Mutex
	leader bool
	cancel context.CancelFunc
	done   chan error
}

func (r *replica) isLeader() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader
}

func startReplica(t *testing.T, id string, peers []Peer, dir string) *replica {
	t.Helper()
	r := &replica{done: make(chan error, 1)}
	l, err := NewLeadership(LeadershipOptions{ID: id, Peers: peers, LogStorePath: dir, OnLeader: func(on bool) {
		r.mu.Lock()
		r.leader = on
		r.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- l.Run(ctx) }()
	return r
}

func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("leadership Run: %v", err)
	}
}

// oneLeader waits until exactly one of the running replicas leads.
func oneLeader(t *testing.T, rs map[string]*replica) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var leaders []string
		for id, r := range rs {
			if r.isLeader() {
				leaders = append(leaders, id)
			}
		}
		if len(leaders) == 1 {
			return leaders[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no single leader within 30s")
	return ""
}

// TestLeadershipFailover: three replicas elect one leader; when it stops,
// the other two elect another.
func TestLeadershipFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("elections take seconds")
	}
	var peers []Peer
	for i := range 3 {
		peers = append(peers, Peer{ID: fmt.Sprintf("p%d", i), Address: freeAddr(t)})
	}
	rs := map[string]*replica{}
	for i, p := range peers {
		dir := ""
		if i == 0 {
			dir = t.TempDir() // one replica keeps its log in raft-boltdb
		}
		rs[p.ID] = startReplica(t, p.ID, peers, dir)
	}
	first := oneLeader(t, rs)
	rs[first].stop(t)
	delete(rs, first)
	second := oneLeader(t, rs)
	if second == first {
		t.Fatalf("the stopped replica %s still leads", first)
	}
	for _, r := range rs {
		r.stop(t)
	}
}

func TestLeadershipSingleReplica(t *testing.T) {
	dir := t.TempDir()
	peers := []Peer{{ID: "p0", Address: freeAddr(t)}}
	for range 2 { // the second start reads the Raft state the first left
		r := startReplica(t, "p0", peers, dir)
		oneLeader(t, map[string]*replica{"p0": r})
		r.stop(t)
	}
}

func TestLeadershipOptions(t *testing.T) {
	if _, err := NewLeadership(LeadershipOptions{ID: "x", Peers: []Peer{{"p0", "127.0.0.1:1"}}}); err == nil {
		t.Error("an id missing from the peers was accepted")
	}
	if _, err := NewLeadership(LeadershipOptions{ID: "p0", Peers: []Peer{{"p0", "127.0.0.1:1"}, {"p0", "127.0.0.1:2"}}}); err == nil {
		t.Error("a duplicate peer was accepted")
	}
}

func mustListen(tb testing.TB) net.Listener {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return l
}
