package resilient

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/resiliency"
)

// Policies holds the resiliency.Set in effect for one app and rebuilds it
// when the Resiliency documents change (hot reload). Readers call Set on
// every operation; the swap is atomic. Live circuit breakers and retry
// budgets carry over a reload when their settings did not change.
type Policies struct {
	appID string
	opts  []resiliency.BuildOption
	log   *slog.Logger

	cur atomic.Pointer[resiliency.Set]

	mu   sync.Mutex
	last string // fingerprint of the documents last applied
}

// NewPolicies starts with no documents: only Dapr's built-in retries.
// opts are passed to every resiliency.Build (hooks, retry budget...).
func NewPolicies(appID string, log *slog.Logger, opts ...resiliency.BuildOption) *Policies {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Policies{appID: appID, opts: opts, log: log}
	s, err := resiliency.Build(appID, nil, opts...)
	if err != nil {
		panic(fmt.Sprintf("resilient: building the empty resiliency set: %v", err)) // programming error
	}
	p.cur.Store(s)
	return p
}

// Set returns the Set in effect; never nil.
func (p *Policies) Set() *resiliency.Set { return p.cur.Load() }

// Apply parses and merges docs (the Resiliency documents of the resource
// folders, in load order) and swaps them in. Unchanged documents are a
// no-op. On any error the Set in effect stays, and the error names the
// file and field to fix; changed reports whether a new Set took effect.
func (p *Policies) Apply(docs []components.Document) (changed bool, err error) {
	var fp strings.Builder
	for _, d := range docs {
		fp.WriteString(d.Source)
		fp.WriteByte(0)
		fp.Write(d.Raw)
		fp.WriteByte(0)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if fp.String() == p.last {
		return false, nil
	}
	var parsed []*resiliency.Resiliency
	var errs []error
	for _, d := range docs {
		rs, warnings, err := resiliency.Parse(d.Source, d.Raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, w := range warnings {
			p.log.Warn("resiliency", "warning", w.String())
		}
		parsed = append(parsed, rs...)
	}
	if len(errs) > 0 {
		return false, fmt.Errorf("resiliency not reloaded, the previous policies stay in effect: %w", errors.Join(errs...))
	}
	opts := append(append([]resiliency.BuildOption(nil), p.opts...), resiliency.WithPrevious(p.cur.Load()))
	s, err := resiliency.Build(p.appID, parsed, opts...)
	if err != nil {
		// Name the documents at fault in daprd's words, which tools and
		// daprd's own tests look for.
		for _, r := range parsed {
			diag := append(append([]resiliency.BuildOption(nil), p.opts...), resiliency.WithHooks(resiliency.Hooks{}))
			if _, derr := resiliency.Build(p.appID, []*resiliency.Resiliency{r}, diag...); derr != nil {
				p.log.Error("Could not read resiliency policy "+r.Metadata.Name, "file", r.File, "error", derr)
			}
		}
		return false, fmt.Errorf("resiliency not reloaded, the previous policies stay in effect: %w", err)
	}
	p.cur.Store(s)
	p.last = fp.String()
	return true, nil
}
