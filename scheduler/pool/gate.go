package pool

import (
	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
)

// gate is a concurrency limit the sidecars ask for in their WatchJobs
// initial request (concurrency_limits): at most this replica's share of
// limit deliveries of an actor type's reminders (with a name, of those
// whose concurrency key is that name) under way at once, in a namespace.
// A gate lives as long as a connected stream names it.
type gate struct {
	limit uint32 // cluster-wide, as the latest stream to name it gave it
	busy  uint32
	refs  int // the connected streams that name it
}

// share is a replica's part of a cluster-wide limit: the limit divided
// evenly among the replicas, the remainder going to the lowest indices, so
// that the parts add up to the limit. It is never below 1: with fewer slots
// than replicas every replica still makes progress, at the cost of more
// than limit under way in all (Dapr's rule).
func share(limit, replicas, index uint32) uint32 {
	if replicas <= 1 {
		return limit
	}
	base := limit / replicas
	if base == 0 {
		return 1
	}
	if index < limit%replicas {
		return base + 1
	}
	return base
}

// gateKey names the gate of an actor type, or of one concurrency key of
// it, in a namespace.
func gateKey(namespace, actorType string, name *string) string {
	k := namespace + "||" + actorType
	if name != nil {
		k += ":" + *name
	}
	return k
}

// limitsOf are the gates a stream's initial request asks for, by key; a
// limit that is not positive or names no actor type asks for none.
func limitsOf(initial *schedulerv1.WatchJobsRequestInitial) map[string]uint32 {
	out := map[string]uint32{}
	for _, l := range initial.GetConcurrencyLimits() {
		a := l.GetActor()
		if a == nil || l.GetMaxConcurrent() <= 0 {
			continue
		}
		out[gateKey(initial.GetNamespace(), a.GetType(), l.Name)] = uint32(l.GetMaxConcurrent())
	}
	return out
}

// addLimitsLocked makes or updates the gates a new stream names.
func (p *Pool) addLimitsLocked(limits map[string]uint32) {
	for k, limit := range limits {
		g := p.gates[k]
		if g == nil {
			g = &gate{}
			p.gates[k] = g
		}
		g.limit = limit
		g.refs++
	}
}

// removeLimitsLocked drops a leaving stream's references; a gate no stream
// names any more is gone, and the ticks it held go on without it.
func (p *Pool) removeLimitsLocked(limits map[string]uint32) {
	for k := range limits {
		if g := p.gates[k]; g != nil {
			if g.refs--; g.refs <= 0 {
				delete(p.gates, k)
			}
		}
	}
}

// gatesLocked are the gates a tick passes: its actor type's, then its
// concurrency key's. Ticks of the Jobs API pass none.
func (p *Pool) gatesLocked(meta *schedulerv1.JobMetadata) []*gate {
	a := meta.GetTarget().GetActor()
	if a == nil || len(p.gates) == 0 {
		return nil
	}
	var gs []*gate
	if g := p.gates[gateKey(meta.GetNamespace(), a.GetType(), nil)]; g != nil {
		gs = append(gs, g)
	}
	if meta.ConcurrencyKey != nil {
		if g := p.gates[gateKey(meta.GetNamespace(), a.GetType(), meta.ConcurrencyKey)]; g != nil {
			gs = append(gs, g)
		}
	}
	return gs
}

// acquireLocked takes a slot of every gate, or of none when one is full.
func (p *Pool) acquireLocked(gs []*gate) bool {
	for _, g := range gs {
		if g.busy >= share(g.limit, p.replicas, p.index) {
			return false
		}
	}
	for _, g := range gs {
		g.busy++
	}
	return true
}

// release gives the slots back and wakes the ticks waiting for one.
func (p *Pool) release(gs []*gate) {
	if len(gs) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range gs {
		if g.busy > 0 {
			g.busy--
		}
	}
	p.changedLocked()
}

// SetReplicas tells the pool how many scheduler replicas there are and
// this one's index among them, which fix its share of each limit.
func (p *Pool) SetReplicas(count, index int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.replicas, p.index = uint32(max(count, 1)), uint32(max(index, 0))
	p.changedLocked()
}
