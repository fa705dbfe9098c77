// Package hashing is the consistent-hash ring placement tables describe:
// each host of an actor type owns a number of virtual nodes (the table's
// replication factor) on a ring of 64-bit hashes, and an actor ID belongs to
// the host of the first virtual node at or after the ID's hash.
//
// The hash and the virtual node names are Dapr's, so a Tandem sidecar and a
// daprd given the same table agree on every owner: a key's hash is the first
// eight bytes of its BLAKE2b-512 digest read little-endian, and the virtual
// nodes of host "addr" are the hashes of "addr0", "addr1", … "addr{n-1}".
//
// Only the placement client (actors/placement) and the placement service
// build rings; everything else asks them for owners.
package hashing

import (
	"encoding/binary"
	"slices"
	"sort"
	"strconv"

	"golang.org/x/crypto/blake2b"
)

// Host is one member of a ring: the address other sidecars call it at
// (host:port of its internal gRPC server) and its app.
type Host struct {
	Name  string
	AppID string
	Port  int64
}

// Ring maps keys to hosts. It is immutable once built and safe for
// concurrent use.
type Ring struct {
	points []uint64          // virtual nodes, ascending
	owner  map[uint64]string // virtual node -> host name
	hosts  map[string]Host
}

// Hash is the position of key on the ring.
func Hash(key string) uint64 {
	sum := blake2b.Sum512([]byte(key))
	return binary.LittleEndian.Uint64(sum[:8])
}

// VirtualNodes returns the ring positions of the host named name.
func VirtualNodes(name string, replication int64) []uint64 {
	out := make([]uint64, 0, max(replication, 0))
	for i := range replication {
		out = append(out, Hash(name+strconv.FormatInt(i, 10)))
	}
	return out
}

// New builds the ring of hosts, each with replication virtual nodes. Two
// hosts whose virtual nodes collide (never seen with 64-bit hashes) keep
// the position for the smaller name, so that every builder agrees.
func New(hosts []Host, replication int64) *Ring {
	r := &Ring{owner: make(map[uint64]string, len(hosts)*int(max(replication, 0))), hosts: make(map[string]Host, len(hosts))}
	for _, h := range hosts {
		r.hosts[h.Name] = h
		for _, p := range VirtualNodes(h.Name, replication) {
			if prev, taken := r.owner[p]; taken && prev < h.Name {
				continue
			} else if !taken {
				r.points = append(r.points, p)
			}
			r.owner[p] = h.Name
		}
	}
	slices.Sort(r.points)
	return r
}

// Owner returns the host that owns key; false when the ring is empty.
func (r *Ring) Owner(key string) (Host, bool) {
	if r == nil || len(r.points) == 0 {
		return Host{}, false
	}
	h := Hash(key)
	i := sort.Search(len(r.points), func(i int) bool { return r.points[i] >= h })
	if i == len(r.points) {
		i = 0
	}
	return r.hosts[r.owner[r.points[i]]], true
}

// Hosts lists the ring's hosts by name.
func (r *Ring) Hosts() []Host {
	if r == nil {
		return nil
	}
	out := make([]Host, 0, len(r.hosts))
	for _, h := range r.hosts {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b Host) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// Equal reports whether two rings route every key alike: same hosts (by
// name, app and port) and same virtual nodes.
func (r *Ring) Equal(o *Ring) bool {
	if r == nil || o == nil {
		return (r == nil || len(r.hosts) == 0) && (o == nil || len(o.hosts) == 0)
	}
	if len(r.points) != len(o.points) || len(r.hosts) != len(o.hosts) {
		return false
	}
	for name, h := range r.hosts {
		if oh, ok := o.hosts[name]; !ok || oh != h {
			return false
		}
	}
	return slices.Equal(r.points, o.points)
}
