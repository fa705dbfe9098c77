package loadreport

import (
	"sync"
	"time"
)

// rateWindow is how far back Rate looks.
const rateWindow = 60

// Rate counts events per second over the last minute, in one-second
// buckets, with no goroutine: buckets older than the window are ignored
// and reused.
type Rate struct {
	mu      sync.Mutex
	start   int64 // unix second of the first event or query
	counts  [rateWindow]uint64
	seconds [rateWindow]int64 // the unix second each bucket counts
}

// Add counts one event at now.
func (r *Rate) Add(now time.Time) {
	sec := now.Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.begin(sec)
	i := sec % rateWindow
	if r.seconds[i] != sec {
		r.seconds[i], r.counts[i] = sec, 0
	}
	r.counts[i]++
}

// PerSecond is the rate over the last minute, or over the time since the
// first event or query when that is shorter (at least a second).
func (r *Rate) PerSecond(now time.Time) float64 {
	sec := now.Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.begin(sec)
	var n uint64
	for i := range r.counts {
		if s := r.seconds[i]; s > sec-rateWindow && s <= sec {
			n += r.counts[i]
		}
	}
	span := min(sec-r.start+1, rateWindow)
	return float64(n) / float64(span)
}

func (r *Rate) begin(sec int64) {
	if r.start == 0 {
		r.start = sec
	}
}
