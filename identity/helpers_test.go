package identity

import (
	"crypto/x509"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

func tlsconfigAny() tlsconfig.Authorizer {
	return func(spiffeid.ID, [][]*x509.Certificate) error { return nil }
}
