package placement

import (
	"slices"
	"sort"
	"strconv"

	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"
	"google.golang.org/protobuf/proto"
)

// store holds the hosts of one namespace that host actors, keyed by the
// id of their stream. A host that reports no actor types is not stored: it
// only needs the table to call actors.
type store struct {
	replicationFactor int64
	hosts             map[uint64]*placementv1.Host
}

func newStore(replicationFactor int64) *store {
	return &store{replicationFactor: replicationFactor, hosts: map[uint64]*placementv1.Host{}}
}

// set records a host's report and says whether the table changed: a new
// host with actor types, or a stored host whose types, app ID or namespace
// changed. A stored host that now reports no types is removed.
func (s *store) set(id uint64, h *placementv1.Host) bool {
	h = proto.Clone(h).(*placementv1.Host)
	sort.Strings(h.Entities)
	old, ok := s.hosts[id]
	switch {
	case !ok && len(h.GetEntities()) == 0:
		return false
	case ok && slices.Equal(old.GetEntities(), h.GetEntities()) && old.GetId() == h.GetId() && old.GetNamespace() == h.GetNamespace():
		return false
	}
	if len(h.GetEntities()) == 0 {
		delete(s.hosts, id)
	} else {
		s.hosts[id] = h
	}
	return true
}

func (s *store) has(id uint64) bool {
	_, ok := s.hosts[id]
	return ok
}

func (s *store) delete(id uint64) { delete(s.hosts, id) }

// orphans returns the stored hosts whose stream is no longer active.
func (s *store) orphans(active func(uint64) bool) []uint64 {
	var out []uint64
	for id := range s.hosts {
		if !active(id) {
			out = append(out, id)
		}
	}
	return out
}

// tables is the hashing table sent in an update order: for every actor
// type, the hosts serving it by name.
func (s *store) tables(version uint64) *placementv1.PlacementTables {
	t := &placementv1.PlacementTables{
		ReplicationFactor: s.replicationFactor,
		Entries:           map[string]*placementv1.PlacementTable{},
		//lint:ignore SA1019 daprd before 1.15 reads the version only here; Dapr 1.18's placement still sends it
		Version: strconv.FormatUint(version, 10),
	}
	for _, h := range s.hosts {
		for _, typ := range h.GetEntities() {
			e := t.Entries[typ]
			if e == nil {
				e = &placementv1.PlacementTable{LoadMap: map[string]*placementv1.Host{}}
				t.Entries[typ] = e
			}
			e.LoadMap[h.GetName()] = h
		}
	}
	return t
}

// state is the namespace's table as /placement/state shows it: the hosts
// sorted by name.
func (s *store) state(version uint64) *placementv1.StatePlacementTable {
	hosts := make([]*placementv1.Host, 0, len(s.hosts))
	for _, h := range s.hosts {
		hosts = append(hosts, proto.Clone(h).(*placementv1.Host))
	}
	sort.SliceStable(hosts, func(i, j int) bool { return hosts[i].GetName() < hosts[j].GetName() })
	return &placementv1.StatePlacementTable{Version: version, Hosts: hosts}
}
