package placement

import (
	"context"
	"testing"

	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"
	"google.golang.org/protobuf/proto"
)

// FuzzTableUpdate feeds arbitrary placement orders' tables to a Table: it
// never panics, and after the unlock every type it holds has an owner
// among its hosts.
func FuzzTableUpdate(f *testing.F) {
	seed, _ := proto.Marshal(tables("1", "127.0.0.1:5000", "127.0.0.1:6000"))
	f.Add(seed, "id-1")
	f.Add([]byte{}, "")
	f.Fuzz(func(t *testing.T, b []byte, id string) {
		var in placementv1.PlacementTables
		if proto.Unmarshal(b, &in) != nil || in.GetReplicationFactor() > 1000 {
			return
		}
		tbl := NewTable()
		tbl.update(&in, 1)
		tbl.unlock(1)
		for typ, e := range in.GetEntries() {
			h, err := tbl.Lookup(context.Background(), typ, id)
			if err != nil {
				if len(e.GetLoadMap()) > 0 && in.GetReplicationFactor() > 0 {
					t.Fatalf("type %q with hosts: %v", typ, err)
				}
				continue
			}
			found := false
			for name, lh := range e.GetLoadMap() {
				if h.Name == name || h.Name == lh.GetName() {
					found = true
				}
			}
			if !found {
				t.Fatalf("owner %q not in the table", h.Name)
			}
		}
	})
}
