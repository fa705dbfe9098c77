package placement

import (
	"slices"
	"strings"
	"testing"

	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"
	"google.golang.org/protobuf/proto"
)

// FuzzParsePeers: --initial-cluster parsing never panics and keeps only
// entries of one "=" whose parts it trims.
func FuzzParsePeers(f *testing.F) {
	f.Add("p0=127.0.0.1:8201,p1=127.0.0.1:8202")
	f.Add("bad,=,a=b=c, x = y ")
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range ParsePeers(strings.Split(s, ",")) {
			if p.ID != strings.TrimSpace(p.ID) || p.Address != strings.TrimSpace(p.Address) || strings.Contains(p.ID+p.Address, "=") {
				t.Fatalf("peer %+v from %q", p, s)
			}
		}
	})
}

// FuzzHostMessage feeds arbitrary host messages to the checks and the
// store: no panic; a stored host has actor types; the table lists exactly
// the stored hosts under each of their types.
func FuzzHostMessage(f *testing.F) {
	v := uint64(3)
	for _, h := range []*placementv1.Host{
		{Name: "a:1", Id: "app", Namespace: "ns", Entities: []string{"b", "a"}, Operation: placementv1.HostOperation_REPORT},
		{Name: "a:1", Id: "app", Namespace: "ns", Operation: placementv1.HostOperation_LOCK, Version: &v},
		{Id: "app", Namespace: "ns", Entities: []string{"dapr.internal.ns.app.wf"}},
	} {
		b, _ := proto.Marshal(h)
		f.Add(b, b)
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		s := newStore(10)
		for i, b := range [][]byte{first, second} {
			var h placementv1.Host
			if proto.Unmarshal(b, &h) != nil {
				return
			}
			if checkHost(&h, nil) != nil {
				continue
			}
			s.set(uint64(i%2), &h)
		}
		tb := s.tables(7)
		for id, h := range s.hosts {
			if len(h.GetEntities()) == 0 || !slices.IsSorted(h.GetEntities()) {
				t.Fatalf("stored host %d: %v", id, h)
			}
			for _, typ := range h.GetEntities() {
				if tb.GetEntries()[typ].GetLoadMap()[h.GetName()] == nil {
					t.Fatalf("type %q lacks host %q", typ, h.GetName())
				}
			}
		}
	})
}
