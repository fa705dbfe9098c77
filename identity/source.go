package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ErrNoSVID is returned by a Source that has not received its first SVID.
var ErrNoSVID = errors.New("identity: no SVID yet (is sentry reachable?)")

// Source holds the current X.509 SVID and trust anchors of a workload. It
// satisfies x509svid.Source and x509bundle.Source and is safe for concurrent
// use; TLS configs read it on every handshake, so Set takes effect for new
// connections without touching open ones.
//
// Dapr's trust anchors are not tied to a trust domain: the same roots verify
// every trust domain they signed for, so the bundle returned for any trust
// domain holds all current anchors. Authorizers decide which trust domains are
// accepted.
type Source struct {
	mu      sync.RWMutex
	svid    *x509svid.SVID
	anchors []*x509.Certificate
	jwts    map[string]string // JWT SVIDs by audience, renewed with the SVID
	changed chan struct{}     // closed and replaced on every change
}

var (
	_ x509svid.Source   = (*Source)(nil)
	_ x509bundle.Source = (*Source)(nil)
)

// NewSource returns an empty Source; handshakes fail until SetSVID is called.
func NewSource() *Source {
	return &Source{changed: make(chan struct{})}
}

// SetSVID replaces the SVID.
func (s *Source) SetSVID(svid *x509svid.SVID) {
	s.mu.Lock()
	s.svid = svid
	s.notifyLocked()
	s.mu.Unlock()
}

// SetTrustAnchors replaces the trust anchors. Several roots may be valid at
// once, which is how a root is rotated without an outage.
func (s *Source) SetTrustAnchors(anchors []*x509.Certificate) {
	s.mu.Lock()
	s.anchors = append([]*x509.Certificate(nil), anchors...)
	s.notifyLocked()
	s.mu.Unlock()
}

// SetJWTs replaces the JWT SVIDs, by audience.
func (s *Source) SetJWTs(jwts map[string]string) {
	s.mu.Lock()
	s.jwts = maps.Clone(jwts)
	s.mu.Unlock()
}

// JWT returns the current JWT SVID for audience. Only the audiences asked
// for when the SVID was issued have one (daprd's
// --sentry-request-jwt-audiences), and the error says so.
func (s *Source) JWT(audience string) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.svid == nil {
		return "", ErrNoSVID
	}
	if t, ok := s.jwts[audience]; ok && t != "" {
		return t, nil
	}
	known := slices.Sorted(maps.Keys(s.jwts))
	return "", fmt.Errorf("identity: no JWT SVID for audience %q (have %q): add it to --sentry-request-jwt-audiences (dapr.io/sentry-request-jwt-audiences)", audience, known)
}

func (s *Source) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Changed returns a channel closed at the next SetSVID or SetTrustAnchors.
func (s *Source) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// GetX509SVID implements x509svid.Source.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.svid == nil {
		return nil, ErrNoSVID
	}
	return s.svid, nil
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.anchors) == 0 {
		return nil, errors.New("identity: no trust anchors yet")
	}
	return x509bundle.FromX509Authorities(td, s.anchors), nil
}

// TrustAnchors returns a copy of the current trust anchors.
func (s *Source) TrustAnchors() []*x509.Certificate {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]*x509.Certificate(nil), s.anchors...)
}
