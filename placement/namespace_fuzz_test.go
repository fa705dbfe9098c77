package placement

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// fakeStream is a host's stream that accepts every order and never sends.
type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f *fakeStream) Context() context.Context               { return f.ctx }
func (f *fakeStream) Send(*placementv1.PlacementOrder) error { return nil }
func (f *fakeStream) Recv() (*placementv1.Host, error) {
	<-f.ctx.Done()
	return nil, f.ctx.Err()
}
func (f *fakeStream) SetHeader(metadata.MD) error  { return nil }
func (f *fakeStream) SendHeader(metadata.MD) error { return nil }
func (f *fakeStream) SetTrailer(metadata.MD)       {}

// FuzzNamespace drives a namespace's state machine with arbitrary
// sequences of joins, reports, acknowledgements (right or wrong phase and
// version), disconnections and timeouts: it never panics, never counts
// more acknowledgements than it has hosts, and never keeps a host in the
// table whose stream is gone once it is idle.
func FuzzNamespace(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 10, 2, 11, 2, 12, 2, 20, 2, 21, 2, 22, 3, 0, 4})
	f.Add([]byte{0, 0, 0, 1, 2, 0, 3, 1, 1, 0, 2, 1, 4, 0, 2, 2})
	f.Fuzz(func(t *testing.T, prog []byte) {
		if len(prog) > 400 {
			return
		}
		var wg sync.WaitGroup
		n := newNamespace("ns", &nsOptions{replicationFactor: 10, authorize: func(placementv1.Placement_ReportDaprStatusServer, *placementv1.Host) error { return nil },
			record: func(string, int, int) {}, disseminated: func(string, time.Duration) {}, wg: &wg, log: slog.New(slog.DiscardHandler)})
		ctx, cancel := context.WithCancel(context.Background())
		var conns []*conn
		host := func(b byte, op placementv1.HostOperation, version *uint64) *placementv1.Host {
			var types []string
			for i, typ := range []string{"a", "b", "c"} {
				if b&(1<<i) != 0 {
					types = append(types, typ)
				}
			}
			return &placementv1.Host{Name: "h", Id: "app", Namespace: "ns", Entities: types, Operation: op, Version: version}
		}
		for i := 0; i+1 < len(prog); i += 2 {
			op, arg := prog[i]%5, prog[i+1]
			var c *conn
			if len(conns) > 0 {
				c = conns[int(arg)%len(conns)]
			}
			switch {
			case op == 0:
				c = newConn(uint64(len(conns)+1), host(arg, placementv1.HostOperation_REPORT, nil), &fakeStream{ctx: ctx})
				conns = append(conns, c)
				n.handle(evAdd{c: c})
			case op == 1 && c != nil:
				n.handle(evReport{c: c, h: host(arg>>2, placementv1.HostOperation_REPORT, nil)})
			case op == 2 && c != nil:
				v := n.version
				if arg&0x80 != 0 {
					v = uint64(arg & 3)
				}
				ack := []placementv1.HostOperation{placementv1.HostOperation_LOCK, placementv1.HostOperation_UPDATE, placementv1.HostOperation_UNLOCK, n.op}[arg>>5&3]
				n.handle(evReport{c: c, h: &placementv1.Host{Id: "app", Namespace: "ns", Operation: ack, Version: &v}})
			case op == 3 && c != nil:
				n.handle(evClose{c: c})
			case op == 4:
				n.handle(evTimeout{version: n.version})
			}
			if n.inTarget < 0 || n.inTarget > len(n.streams) {
				t.Fatalf("step %d: %d acknowledgements for %d hosts", i/2, n.inTarget, len(n.streams))
			}
			if n.idle() && len(n.waitingAdd) == 0 {
				for id := range n.store.hosts {
					if _, ok := n.streams[id]; !ok {
						t.Fatalf("step %d: idle with host %d in the table but no stream", i/2, id)
					}
				}
			}
		}
		cancel()
		n.shutdown(ctx)
		wg.Wait()
		if n.roundTimer != nil {
			n.roundTimer.Stop()
		}
	})
}
