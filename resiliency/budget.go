package resiliency

import (
	"sync"
	"time"
)

// BudgetConfig limits retries per target so that, in an outage, retries
// cannot multiply the load on a struggling target. Within any Window,
// retries may be at most Ratio of first attempts plus MinPerSecond*Window
// (a floor so that a quiet target still gets its few retries).
type BudgetConfig struct {
	Ratio        float64       // default 0.2
	MinPerSecond float64       // default 10; negative: no floor
	Window       time.Duration // default 10s, counted in 1s slots
	Unlimited    bool          // no budget at all
}

func (c BudgetConfig) withDefaults() BudgetConfig {
	if c.Ratio <= 0 {
		c.Ratio = 0.2
	}
	if c.MinPerSecond < 0 {
		c.MinPerSecond = 0
	} else if c.MinPerSecond == 0 {
		c.MinPerSecond = 10
	}
	if c.Window < time.Second {
		c.Window = 10 * time.Second
	}
	return c
}

// budget counts first attempts and retries of one target in 1-second slots
// over a sliding window.
type budget struct {
	cfg   BudgetConfig
	mu    sync.Mutex
	slots []budgetSlot
}

type budgetSlot struct {
	sec               int64 // unix second the slot holds
	requests, retries int
}

func newBudget(cfg BudgetConfig) *budget {
	cfg = cfg.withDefaults()
	n := int(cfg.Window / time.Second)
	return &budget{cfg: cfg, slots: make([]budgetSlot, n)}
}

func (b *budget) slot(now time.Time) *budgetSlot {
	sec := now.Unix()
	s := &b.slots[int(sec%int64(len(b.slots)))]
	if s.sec != sec {
		*s = budgetSlot{sec: sec}
	}
	return s
}

// request records a first attempt.
func (b *budget) request() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.slot(time.Now()).requests++
	b.mu.Unlock()
}

// withdraw takes one retry from the budget, reporting false if none is left.
func (b *budget) withdraw() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	cur := b.slot(now)
	oldest := now.Unix() - int64(len(b.slots)) + 1
	var reqs, retries int
	for _, s := range b.slots {
		if s.sec >= oldest {
			reqs += s.requests
			retries += s.retries
		}
	}
	allowed := b.cfg.Ratio*float64(reqs) + b.cfg.MinPerSecond*b.cfg.Window.Seconds()
	if float64(retries+1) > allowed {
		return false
	}
	cur.retries++
	return true
}
