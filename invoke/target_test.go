package invoke

import (
	"slices"
	"testing"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
)

// TestMetaSlab: the slab sets single-value lists as setMeta does (an
// equal value is left alone, a shared list never written into), takes
// one allocation for a call's four keys, and falls back to setMeta past
// them.
func TestMetaSlab(t *testing.T) {
	shared := &internalsv1.ListStringValue{Values: []string{"old", "other"}}
	same := &internalsv1.ListStringValue{Values: []string{"b"}}
	md := map[string]*internalsv1.ListStringValue{"a": shared, "b": same}
	s := new(metaSlab)
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		s.set(md, k, k)
	}
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		if got := md[k].GetValues(); !slices.Equal(got, []string{k}) {
			t.Errorf("%s = %v, want [%s]", k, got, k)
		}
	}
	if md["b"] != same {
		t.Error("an equal value was replaced")
	}
	if !slices.Equal(shared.Values, []string{"old", "other"}) {
		t.Errorf("the shared list was written into: %v", shared.Values)
	}
	allocs := testing.AllocsPerRun(100, func() {
		md := make(map[string]*internalsv1.ListStringValue, 8)
		s := new(metaSlab)
		s.set(md, DestinationAppIDKey, "callee")
		s.set(md, CallerAppIDKey, "caller")
		s.set(md, CalleeAppIDKey, "callee")
		s.set(md, CallerNamespaceKey, "default")
	})
	if allocs > 2 { // the map and the slab
		t.Errorf("%v allocations for four keys, want 2", allocs)
	}
}
