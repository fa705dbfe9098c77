package ca

import "testing"

func FuzzParseBundle(f *testing.F) {
	b, err := GenerateBundle(GenerateOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b.TrustAnchorsPEM, b.IssuerChainPEM, b.IssuerKeyPEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []byte{}, []byte("x"))
	f.Fuzz(func(t *testing.T, roots, issuer, key []byte) {
		got, err := ParseBundle(roots, issuer, key)
		if err != nil {
			return
		}
		if len(got.TrustAnchors) == 0 || len(got.IssuerChain) == 0 || got.IssuerKey == nil {
			t.Fatal("ParseBundle accepted an incomplete bundle")
		}
		if _, err := got.ActiveRoot(); err != nil {
			t.Fatalf("accepted bundle has no active root: %v", err)
		}
	})
}
