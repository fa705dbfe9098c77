package transport

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tandemrun/tandem/invoke/transport/transporttest"
)

// memoLean echoes calls and records each call's PeerMemo, using it the
// way a handler does; runs counts the values it had to work out.
type memoLean struct {
	echoLean
	mu    sync.Mutex
	memos []*PeerMemo
	runs  atomic.Int64
}

func (m *memoLean) ServeLean(ctx context.Context, call *ServerCall) error {
	memo := PeerMemoFrom(ctx)
	m.mu.Lock()
	m.memos = append(m.memos, memo)
	m.mu.Unlock()
	if memo != nil {
		memo.Do(func() any { return m.runs.Add(1) })
	}
	return m.echoLean.ServeLean(ctx, call)
}

// TestPeerMemoPerConnection: the calls of one lean connection share a
// PeerMemo, worked out once; another connection has its own.
func TestPeerMemoPerConnection(t *testing.T) {
	ca := transporttest.NewCA(t)
	serverSrc, clientSrc := ca.Source(t, "public", "default", "server"), ca.Source(t, "public", "default", "client")
	h := &memoLean{}
	addr := serveLeanProtos(t, serverSrc, leanProtos, h)
	pool := NewPool(Options{Source: clientSrc, Lean: true})
	t.Cleanup(func() { _ = pool.Close() })

	// Two connections at once, then one of them again.
	first, err := pool.Lean(t.Context(), addr)
	if err != nil || first == nil {
		t.Fatalf("Lean = %v, %v", first, err)
	}
	second, err := pool.Lean(t.Context(), addr)
	if err != nil || second == nil || second.reused {
		t.Fatalf("second Lean = %v, %v; want a new connection", second, err)
	}
	for _, c := range []*LeanConn{first, second} {
		if err := roundTrip(t, c, 0); err != nil {
			t.Fatal(err)
		}
	}
	again, err := pool.Lean(t.Context(), addr)
	if err != nil || again == nil || !again.reused {
		t.Fatalf("third Lean = %v, %v; want an idle connection again", again, err)
	}
	if err := roundTrip(t, again, 0); err != nil {
		t.Fatal(err)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.memos) != 3 || h.memos[0] == nil || h.memos[1] == nil {
		t.Fatalf("memos %v: want one per call, none nil", h.memos)
	}
	if h.memos[0] == h.memos[1] {
		t.Error("two connections share a PeerMemo")
	}
	if h.memos[2] != h.memos[0] && h.memos[2] != h.memos[1] {
		t.Error("a call on a reused connection has a PeerMemo of its own")
	}
	if n := h.runs.Load(); n != 2 {
		t.Errorf("values worked out %d times, want 2 (once per connection)", n)
	}
}
