package ca

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// DefaultReloadInterval is how often Reloader looks at the files.
const DefaultReloadInterval = time.Second

// Reloader watches a bundle's three files and builds a new CA whenever
// their content changes, so that sentry picks up a rotated root or issuer
// without a restart. Files are compared by content, so a rewrite with the
// same bytes is ignored and a change within the same second is not missed;
// new content is loaded once two polls in a row have seen it (a reload
// takes one to two intervals).
//
// The files are written one at a time, so a poll may see a new issuer.crt
// with the old issuer.key: such a bundle does not verify, the current CA
// is kept, and the next poll (after the last file is written) succeeds.
type Reloader struct {
	Paths   Paths
	Options Options
	// Interval between polls; DefaultReloadInterval if zero.
	Interval time.Duration
	// OnReload receives every new CA. Required.
	OnReload func(*CA)
	Log      *slog.Logger
}

// Run polls until ctx ends. The CA in use when Run starts must have been
// built from the files as they are now (their content is the baseline).
func (r *Reloader) Run(ctx context.Context) error {
	if r.OnReload == nil {
		return errors.New("ca reloader: OnReload is required")
	}
	interval := r.Interval
	if interval <= 0 {
		interval = DefaultReloadInterval
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	last, _ := r.digest()
	// bad is the last content that did not form a CA: warned about once.
	// It is kept apart from last, so that a poll that catches a file half
	// rewritten (with the same bytes as before) does not make the finished
	// file look like a change. pending is new content seen once: it is
	// acted on only when the next poll finds it unchanged, so files caught
	// in the middle of a write (even an empty one) are never loaded.
	var bad, pending [sha256.Size]byte
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		d, err := r.digest()
		if err != nil {
			// A file briefly missing (being replaced) is not a change.
			continue
		}
		if d == last || d == bad {
			pending = [sha256.Size]byte{}
			continue
		}
		if d != pending {
			pending = d // changed: let the writes settle for one interval
			continue
		}
		c, err := r.load()
		if err != nil {
			log.Warn("issuer credentials changed on disk but do not form a valid CA yet; still signing with the current credentials",
				"trust_anchors_file", r.Paths.RootCert, "issuer_cert_file", r.Paths.IssuerCert, "error", err)
			bad = d
			continue
		}
		last, bad = d, [sha256.Size]byte{}
		log.Info("issuer credentials changed on disk; reloaded",
			"trust_anchors", len(c.TrustAnchors()), "issuer_not_after", c.Issuer().NotAfter.UTC().Format(time.RFC3339))
		r.OnReload(c)
	}
}

func (r *Reloader) load() (*CA, error) {
	b, err := LoadBundle(r.Paths)
	if err != nil {
		return nil, err
	}
	return New(b, r.Options)
}

// digest hashes the three files' contents.
func (r *Reloader) digest() ([sha256.Size]byte, error) {
	h := sha256.New()
	for _, f := range r.Paths.all() {
		b, err := os.ReadFile(f)
		if err != nil {
			return [sha256.Size]byte{}, fmt.Errorf("read %s: %w", f, err)
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d, nil
}
