package placement

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// autoHost acknowledges every order at once and reports each unlock.
type autoHost struct {
	stream placementv1.Placement_ReportDaprStatusClient
	name   string
	send   sync.Mutex
}

func (h *autoHost) report(types ...string) error {
	h.send.Lock()
	defer h.send.Unlock()
	return h.stream.Send(&placementv1.Host{Name: h.name, Id: "app", Namespace: "ns", Entities: types, Operation: placementv1.HostOperation_REPORT})
}

func (h *autoHost) run(unlocked func(v uint64, hosts int)) {
	hosts := map[uint64]int{}
	ops := map[string]placementv1.HostOperation{opLock: placementv1.HostOperation_LOCK, opUpdate: placementv1.HostOperation_UPDATE, opUnlock: placementv1.HostOperation_UNLOCK}
	for {
		o, err := h.stream.Recv()
		if err != nil {
			return
		}
		v := o.GetVersion()
		h.send.Lock()
		err = h.stream.Send(&placementv1.Host{Name: h.name, Id: "app", Namespace: "ns", Operation: ops[o.GetOperation()], Version: &v})
		h.send.Unlock()
		if err != nil {
			return
		}
		if o.GetOperation() == opUpdate {
			hosts[v] = len(o.GetTables().GetEntries()["counter"].GetLoadMap())
		}
		if o.GetOperation() == opUnlock {
			unlocked(v, hosts[v])
		}
	}
}

// BenchmarkDissemination measures one round (a host's new report to the
// last host's unlock) with N actor hosts on loopback gRPC. With
// TANDEM_PLACEMENT_BENCH_ADDR=host:port it measures that placement (Dapr's,
// say) instead of an in-process one; each size then needs a fresh one
// (-bench 'Dissemination/hosts=100$').
func BenchmarkDissemination(b *testing.B) {
	for _, n := range []int{10, 100, 500} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			addr := os.Getenv("TANDEM_PLACEMENT_BENCH_ADDR")
			stop := func() {}
			if addr == "" {
				lis := mustListen(b)
				s := New(Options{Listener: lis, NodeID: "bench", DisseminateTimeout: time.Minute})
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- s.Run(ctx) }()
				s.SetLeader(true)
				addr, stop = lis.Addr().String(), func() {
					cancel()
					<-done
				}
			}
			cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			var mu sync.Mutex
			cond := sync.NewCond(&mu)
			unlocks := map[uint64]int{}
			var full uint64 // a version all n hosts unlocked, with all n in the table
			unlocked := func(v uint64, hosts int) {
				mu.Lock()
				unlocks[v]++
				if unlocks[v] == n && hosts == n {
					full = v
				}
				mu.Unlock()
				cond.Broadcast()
			}
			waitAll := func(v uint64) {
				mu.Lock()
				for unlocks[v] < n {
					cond.Wait()
				}
				mu.Unlock()
			}
			sctx, scancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			hosts := make([]*autoHost, n)
			for i := range hosts {
				st, err := placementv1.NewPlacementClient(cc).ReportDaprStatus(sctx)
				if err != nil {
					b.Fatal(err)
				}
				hosts[i] = &autoHost{stream: st, name: fmt.Sprintf("h%d:1", i)}
				wg.Go(func() { hosts[i].run(unlocked) })
			}
			// Join them all, then wait for a round that includes everyone.
			for _, h := range hosts {
				if err := h.report("counter"); err != nil {
					b.Fatal(err)
				}
			}
			if err := hosts[0].report("counter", "warm"); err != nil {
				b.Fatal(err)
			}
			deadline := time.Now().Add(time.Minute)
			mu.Lock()
			for full == 0 {
				if time.Now().After(deadline) {
					b.Fatal("hosts never all joined")
				}
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
				mu.Lock()
			}
			v := full
			mu.Unlock()
			time.Sleep(100 * time.Millisecond) // let late rounds of the joins finish
			mu.Lock()
			for w := range unlocks {
				v = max(v, w)
			}
			mu.Unlock()
			waitAll(v)
			b.ResetTimer()
			for i := range b.N {
				types := []string{"counter"}
				if i%2 == 0 {
					types = append(types, "other")
				}
				if err := hosts[0].report(types...); err != nil {
					b.Fatal(err)
				}
				v++
				waitAll(v)
			}
			b.StopTimer()
			scancel()
			stop()
			wg.Wait()
			_ = cc.Close()
		})
	}
}
