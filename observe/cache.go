package observe

import (
	"sync"
	"sync/atomic"
)

// defaultMaxSeries caps the distinct label sets one metric may grow to
// through values that come from requests (paths, gRPC methods, app IDs).
// Past it, new label sets share one overflow series.
const defaultMaxSeries = 1000

// overflowLabel is the label value of the series that absorbs label sets
// past the cap.
const overflowLabel = "_other"

// boundCache maps a label key to metric children bound to those labels.
// Reads are lock-free (an atomic pointer to an immutable map); a miss
// copies the map under a mutex, which happens once per distinct key.
type boundCache[K comparable, V any] struct {
	m        atomic.Pointer[map[K]V]
	mu       sync.Mutex
	max      int
	build    func(K) V
	overflow func() V
	over     atomic.Pointer[V]
}

func newBoundCache[K comparable, V any](maxSeries int, build func(K) V, overflow func() V) *boundCache[K, V] {
	if maxSeries <= 0 {
		maxSeries = defaultMaxSeries
	}
	c := &boundCache[K, V]{max: maxSeries, build: build, overflow: overflow}
	empty := map[K]V{}
	c.m.Store(&empty)
	return c
}

func (c *boundCache[K, V]) get(k K) V {
	if v, ok := (*c.m.Load())[k]; ok {
		return v
	}
	return c.slow(k)
}

func (c *boundCache[K, V]) slow(k K) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := *c.m.Load()
	if v, ok := cur[k]; ok {
		return v
	}
	if len(cur) >= c.max {
		if p := c.over.Load(); p != nil {
			return *p
		}
		v := c.overflow()
		c.over.Store(&v)
		return v
	}
	v := c.build(k)
	next := make(map[K]V, len(cur)+1)
	for kk, vv := range cur {
		next[kk] = vv
	}
	next[k] = v
	c.m.Store(&next)
	return v
}
