// Package filewatch polls files by content and hands new content over once
// it has settled: the one rule for every part that reloads a file while it
// runs (the sidecar's Configuration, the resource folders, sentry's CA
// credentials, the trust anchors file).
//
// Polling compares content, not modification times, so edits in place,
// atomic renames and Kubernetes ConfigMap symlink swaps are all seen, and a
// rewrite with the same bytes is not a change. New content is applied once
// two polls in a row have seen it, so a file caught in the middle of a
// write (even an empty one) is never loaded: a change takes effect one to
// two intervals after it is written.
//
// It imports nothing of ours, so the leaves (identity) may use it too.
package filewatch

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"
)

// DefaultInterval is the time between polls when Watcher.Interval is zero.
const DefaultInterval = time.Second

// Watcher polls content with Read and calls Apply with each new content
// once it has settled.
type Watcher struct {
	// Read returns the watched content, or anything that changes when it
	// does (a digest). An error means it cannot be read now (a file being
	// replaced): that poll is skipped, it is not a change.
	Read func() ([]byte, error)
	// Apply takes settled new content into use. An error means the content
	// is not valid and the caller keeps what it has: that content is not
	// offered again until it changes, and content going back to what was
	// last applied is no change.
	Apply func(content []byte) error
	// Interval between polls; DefaultInterval if zero.
	Interval time.Duration
	// Current is the content in use when Run starts (what the caller
	// loaded), which is no change. With nil, the first content Run reads is
	// new.
	Current []byte
}

// Run polls until ctx ends; it returns nil then, or an error at once when
// Read or Apply is missing.
func (w *Watcher) Run(ctx context.Context) error {
	if w.Read == nil || w.Apply == nil {
		return errors.New("filewatch: Read and Apply are required")
	}
	interval := w.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	// last is the content in use; bad the last content Apply refused, kept
	// apart from last so that going back to the content in use is no
	// change; pending is new content seen by one poll, applied when the
	// next one sees it too. The zero sum stands for none.
	var last, bad, pending [sha256.Size]byte
	if w.Current != nil {
		last = sha256.Sum256(w.Current)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		b, err := w.Read()
		if err != nil {
			continue
		}
		d := sha256.Sum256(b)
		switch {
		case d == last || d == bad:
			pending = [sha256.Size]byte{}
		case d != pending:
			pending = d // changed: let the writes settle for one interval
		default:
			pending = [sha256.Size]byte{}
			if err := w.Apply(b); err != nil {
				bad = d
				continue
			}
			last, bad = d, [sha256.Size]byte{}
		}
	}
}
