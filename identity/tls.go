package identity

import (
	"crypto/tls"
	"errors"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ServerTLS returns a mutual-TLS server config that presents src's current
// SVID and accepts clients whose SVID chains to src's trust anchors and
// passes authorize.
func ServerTLS(src *Source, authorize tlsconfig.Authorizer) *tls.Config {
	c := tlsconfig.MTLSServerConfig(src, src, authorize)
	c.MinVersion = tls.VersionTLS12
	return c
}

// ClientTLS returns a mutual-TLS client config that presents src's current
// SVID and accepts servers whose SVID chains to src's trust anchors and
// passes authorize.
func ClientTLS(src *Source, authorize tlsconfig.Authorizer) *tls.Config {
	c := tlsconfig.MTLSClientConfig(src, src, authorize)
	c.MinVersion = tls.VersionTLS12
	return c
}

// SameTrustDomain authorizes peers whose SPIFFE ID is in the trust domain of
// src's own SVID (the default for sidecar-to-sidecar connections).
func SameTrustDomain(td spiffeid.TrustDomain) tlsconfig.Authorizer {
	return tlsconfig.AuthorizeMemberOf(td)
}

// PeerID returns the SPIFFE ID in the leaf certificate the peer presented.
func PeerID(state tls.ConnectionState) (spiffeid.ID, error) {
	if len(state.PeerCertificates) == 0 {
		return spiffeid.ID{}, errors.New("identity: peer presented no certificate")
	}
	return x509svid.IDFromCert(state.PeerCertificates[0])
}
