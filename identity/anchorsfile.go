package identity

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tandemrun/tandem/internal/filewatch"
)

// DefaultAnchorsPollInterval is how often WatchTrustAnchorsFile reads the file.
const DefaultAnchorsPollInterval = time.Second

// AnchorsExpiryWarning is how far ahead an expiring trust anchor is
// reported.
const AnchorsExpiryWarning = 30 * 24 * time.Hour

// ReadTrustAnchorsFile reads every PEM CERTIFICATE block of path.
func ReadTrustAnchorsFile(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read trust anchors file: %w", err)
	}
	certs, err := ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("trust anchors file %s: %w", path, err)
	}
	return certs, nil
}

// WatchTrustAnchorsFile keeps src's trust anchors equal to the certificates
// in path until ctx ends: the file is read every interval
// (DefaultAnchorsPollInterval if zero) and installed whenever its content
// changes and has settled (internal/filewatch: two polls in a row saw it),
// so a root added or removed during a rotation takes effect without a
// restart and a file caught half written is not loaded. A file that holds
// no valid certificate is reported and the current anchors are kept. The
// file is read once at the start too, and installed if it parses.
//
// onChange, if set, is called with the anchors after every change.
func WatchTrustAnchorsFile(ctx context.Context, path string, src *Source, interval time.Duration, log *slog.Logger, onChange func([]*x509.Certificate)) error {
	if path == "" || src == nil {
		return errors.New("watch trust anchors file: a path and a source are required")
	}
	if interval <= 0 {
		interval = DefaultAnchorsPollInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	apply := func(b []byte) error {
		certs, err := ParseCertificates(b)
		if err != nil {
			log.Warn("trust anchors file changed but holds no valid certificates; keeping the current anchors", "file", path, "error", err)
			return err
		}
		if sameCerts(certs, src.TrustAnchors()) {
			return nil
		}
		src.SetTrustAnchors(certs)
		log.Info("trust anchors reloaded from file", "file", path, "anchors", len(certs), "subjects", subjects(certs))
		warnExpiring(log, certs, time.Now())
		if onChange != nil {
			onChange(certs)
		}
		return nil
	}
	// The file as it is now is installed at once: nothing was loaded from
	// it yet. Later changes are applied once they have settled.
	read := func() ([]byte, error) { return os.ReadFile(path) }
	current, err := read()
	if err != nil {
		log.Warn("cannot read the trust anchors file; keeping the current anchors", "file", path, "error", err)
	} else {
		_ = apply(current)
	}
	w := &filewatch.Watcher{Read: read, Apply: apply, Interval: interval, Current: current}
	return w.Run(ctx)
}

func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Raw, b[i].Raw) {
			return false
		}
	}
	return true
}

func subjects(certs []*x509.Certificate) []string {
	out := make([]string, len(certs))
	for i, c := range certs {
		out[i] = c.Subject.String()
	}
	return out
}

// EarliestExpiry returns the soonest NotAfter among certs (zero if none),
// for a seconds-to-expiry metric.
func EarliestExpiry(certs []*x509.Certificate) time.Time {
	var t time.Time
	for _, c := range certs {
		if t.IsZero() || c.NotAfter.Before(t) {
			t = c.NotAfter
		}
	}
	return t
}

// warnExpiring logs every anchor that expires within AnchorsExpiryWarning.
func warnExpiring(log *slog.Logger, certs []*x509.Certificate, now time.Time) {
	for _, c := range certs {
		switch left := c.NotAfter.Sub(now); {
		case left <= 0:
			log.Error("!!! a trust anchor has EXPIRED: peers whose certificates chain to it are refused; rotate the root (docs/trust-anchor-rotation.md)",
				"subject", c.Subject.String(), "expired_at", c.NotAfter.UTC().Format(time.RFC3339))
		case left < AnchorsExpiryWarning:
			log.Warn("!!! a trust anchor expires soon: rotate the root before then (docs/trust-anchor-rotation.md)",
				"subject", c.Subject.String(), "expires_at", c.NotAfter.UTC().Format(time.RFC3339), "days_left", int(left.Hours()/24))
		}
	}
}

// AnchorsFromFileOnly wraps an Issuer so that the trust anchors it returns
// are dropped: when a trust anchors file is watched, the file alone decides
// the anchors (as in Dapr), and a renewal racing a file change cannot
// bring back a root the file no longer lists.
func AnchorsFromFileOnly(iss Issuer) Issuer { return fileOnly{iss} }

type fileOnly struct{ Issuer }

func (f fileOnly) Issue(ctx context.Context, id spiffeid.ID, csrDER []byte) (*Issued, error) {
	issued, err := f.Issuer.Issue(ctx, id, csrDER)
	if issued != nil {
		issued.TrustAnchors = nil
	}
	return issued, err
}
