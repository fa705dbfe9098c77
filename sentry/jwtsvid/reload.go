package jwtsvid

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

// Reloader watches the signing key and key set files and hands every new,
// valid pair to OnReload, so that a JWT key rotation takes effect without a
// restart (Dapr's sentry restarts its CA when the files change). Rotate in
// two steps, as with any JWKS: first add the new public key to jwks.json
// (verifiers fetch it), then replace jwt.key. A pair that does not match
// (the key written before its key set) is not applied; the next change
// that makes it match is.
type Reloader struct {
	Paths Paths
	// KeyID is --jwt-key-id, checked against each new key set.
	KeyID string
	// Interval between polls; filewatch.DefaultInterval if zero.
	Interval time.Duration
	// OnReload takes a new bundle into use; an error keeps the current one.
	OnReload func(*Bundle) error
	Log      *slog.Logger
}

// Run polls until ctx ends. The bundle in use when Run starts must have
// been loaded from the files as they are now.
func (r *Reloader) Run(ctx context.Context) error {
	if r.OnReload == nil {
		return errors.New("jwt reloader: OnReload is required")
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &filewatch.Watcher{
		Read:     r.digest,
		Interval: cmp.Or(r.Interval, filewatch.DefaultInterval),
		Apply: func([]byte) error {
			b, err := Load(r.Paths, r.KeyID)
			if err == nil {
				err = r.OnReload(b)
			}
			if err != nil {
				log.Warn("jwt signing key or jwks changed on disk but cannot be used; still signing with the current key",
					"key_file", r.Paths.Key, "jwks_file", r.Paths.JWKS, "error", err)
				return err
			}
			log.Info("jwt signing key or jwks changed on disk; reloaded", "key_file", r.Paths.Key, "jwks_file", r.Paths.JWKS, "keys", len(b.JWKS.Keys))
			return nil
		},
	}
	w.Current, _ = r.digest()
	return w.Run(ctx)
}

func (r *Reloader) digest() ([]byte, error) {
	h := sha256.New()
	for _, f := range []string{r.Paths.Key, r.Paths.JWKS} {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return h.Sum(nil), nil
}
