package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// Bundle is the CA's key material: the trust anchors, the issuer chain that
// signs workload certificates, and the issuer's private key.
type Bundle struct {
	// TrustAnchors are the roots workloads verify peers against. There may be
	// more than one while a root is being rotated.
	TrustAnchors []*x509.Certificate
	// IssuerChain is the issuer certificate followed by any intermediates
	// between it and a trust anchor (normally just the issuer).
	IssuerChain []*x509.Certificate
	// IssuerKey is the private key of IssuerChain[0].
	IssuerKey crypto.Signer

	// The PEM forms, kept so that writing a loaded bundle is byte-exact.
	TrustAnchorsPEM []byte
	IssuerChainPEM  []byte
	IssuerKeyPEM    []byte
}

// ActiveRoot returns the trust anchor that IssuerChain chains to.
func (b *Bundle) ActiveRoot() (*x509.Certificate, error) {
	last := b.IssuerChain[len(b.IssuerChain)-1]
	for _, root := range b.TrustAnchors {
		if bytes.Equal(last.RawIssuer, root.RawSubject) && last.CheckSignatureFrom(root) == nil {
			return root, nil
		}
		if last.Equal(root) {
			return root, nil
		}
	}
	return nil, errors.New("the issuer certificate is not signed by any certificate in the trust anchors")
}

// Verify checks that the bundle is usable: at least one trust anchor, the
// issuer chain verifies to one of them, the issuer may sign certificates,
// and the key belongs to the issuer certificate.
func (b *Bundle) Verify(now time.Time) error {
	if len(b.TrustAnchors) == 0 {
		return errors.New("no trust anchors")
	}
	if len(b.IssuerChain) == 0 {
		return errors.New("no issuer certificate")
	}
	if b.IssuerKey == nil {
		return errors.New("no issuer key")
	}
	iss := b.IssuerChain[0]
	if !iss.IsCA || (iss.KeyUsage != 0 && iss.KeyUsage&x509.KeyUsageCertSign == 0) {
		return errors.New("the issuer certificate is not a CA certificate allowed to sign certificates (needs basicConstraints CA:TRUE and keyUsage keyCertSign)")
	}
	if !publicKeysEqual(iss.PublicKey, b.IssuerKey.Public()) {
		return errors.New("the issuer key does not match the issuer certificate")
	}
	roots := x509.NewCertPool()
	for _, r := range b.TrustAnchors {
		roots.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range b.IssuerChain[1:] {
		inter.AddCert(c)
	}
	if _, err := iss.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return fmt.Errorf("the issuer certificate does not verify against the trust anchors: %w", err)
	}
	return nil
}

// IssuerNotAfter is the earliest expiry in the issuer chain: no workload
// certificate may outlive it.
func (b *Bundle) IssuerNotAfter() time.Time {
	t := b.IssuerChain[0].NotAfter
	for _, c := range b.IssuerChain[1:] {
		if c.NotAfter.Before(t) {
			t = c.NotAfter
		}
	}
	return t
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ae, ok := a.(equaler)
	return ok && ae.Equal(b)
}

// EncodeCertificates returns certs as concatenated PEM CERTIFICATE blocks.
func EncodeCertificates(certs []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

// ParsePrivateKey decodes the first private key block in PEM data (PKCS#8,
// SEC 1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY").
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key block found")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", block.Type, err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		default:
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
	}
}

// encodeECKey returns key as a PEM "EC PRIVATE KEY" block (the form openssl
// ecparam writes, as in Dapr's bring-your-own-certificate docs).
func encodeECKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal issuer key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}
