package ca

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/tandemrun/tandem/internal/filewatch"
)

// DefaultReloadInterval is how often Reloader looks at the files.
const DefaultReloadInterval = time.Second

// Reloader watches a bundle's three files and builds a new CA whenever
// their content changes, so that sentry picks up a rotated root or issuer
// without a restart. Files are compared by content, so a rewrite with the
// same bytes is ignored and a change within the same second is not missed;
// new content is loaded once it has settled (internal/filewatch: two polls
// in a row have seen it, so a reload takes one to two intervals).
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
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &filewatch.Watcher{
		// A file briefly missing (being replaced) is not a change.
		Read:     r.digest,
		Interval: cmp.Or(r.Interval, DefaultReloadInterval),
		Apply: func([]byte) error {
			c, err := r.load()
			if err != nil {
				log.Warn("issuer credentials changed on disk but do not form a valid CA yet; still signing with the current credentials",
					"trust_anchors_file", r.Paths.RootCert, "issuer_cert_file", r.Paths.IssuerCert, "error", err)
				return err
			}
			log.Info("issuer credentials changed on disk; reloaded",
				"trust_anchors", len(c.TrustAnchors()), "issuer_not_after", c.Issuer().NotAfter.UTC().Format(time.RFC3339))
			r.OnReload(c)
			return nil
		},
	}
	w.Current, _ = r.digest()
	return w.Run(ctx)
}

func (r *Reloader) load() (*CA, error) {
	b, err := LoadBundle(r.Paths)
	if err != nil {
		return nil, err
	}
	return New(b, r.Options)
}

// digest hashes the three files' contents.
func (r *Reloader) digest() ([]byte, error) {
	h := sha256.New()
	for _, f := range r.Paths.all() {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return h.Sum(nil), nil
}
