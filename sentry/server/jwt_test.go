package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"slices"
	"testing"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tandemrun/tandem/sentry/jwtsvid"
	"github.com/tandemrun/tandem/sentry/server"
)

// TestJWTSVIDs issues a certificate with JWTs as Dapr's sentry does and
// verifies every token against the key set sentry publishes.
func TestJWTSVIDs(t *testing.T) {
	b, err := jwtsvid.Generate()
	if err != nil {
		t.Fatal(err)
	}
	iss, err := jwtsvid.NewIssuer(jwtsvid.IssuerOptions{Bundle: b, Issuer: "https://oidc.example", TTL: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := startWith(t, insecureOnly(), sentryv1.SignCertificateRequest_INSECURE, func(o *server.Options) { o.JWT = iss })
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := sentryv1.NewCAClient(rawConn(t, h)).SignCertificate(context.Background(), &sentryv1.SignCertificateRequest{
		Id: "payment", Namespace: "production", TrustDomain: "localhost",
		CertificateSigningRequest: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
		TokenValidator:            sentryv1.SignCertificateRequest_INSECURE,
		JwtAudiences:              []string{"bank-api", "audit"},
	})
	if err != nil {
		t.Fatal(err)
	}
	served, err := b.PublicJWKS()
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(served, &set); err != nil {
		t.Fatal(err)
	}
	check := func(token string, wantAud []string) {
		t.Helper()
		tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatal(err)
		}
		var c jwt.Claims
		if err := tok.Claims(set, &c); err != nil {
			t.Fatalf("token does not verify against the published key set: %v", err)
		}
		if err := c.Validate(jwt.Expected{Issuer: "https://oidc.example", Subject: "spiffe://localhost/ns/production/payment"}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal([]string(c.Audience), wantAud) {
			t.Fatalf("aud = %v, want %v", c.Audience, wantAud)
		}
		if left := time.Until(c.Expiry.Time()); left < 119*time.Minute || left > 2*time.Hour {
			t.Fatalf("expires in %v, want 2h", left)
		}
	}
	if resp.GetJwt() == nil {
		t.Fatal("no jwt")
	}
	check(resp.GetJwt().GetValue(), []string{"localhost", "bank-api", "audit"})
	per := resp.GetPerAudienceJwts()
	if len(per) != 3 {
		t.Fatalf("per_audience_jwts has %d entries, want 3", len(per))
	}
	for _, aud := range []string{"localhost", "bank-api", "audit"} {
		if per[aud] == nil {
			t.Fatalf("no per-audience jwt for %s", aud)
		}
		check(per[aud].GetValue(), []string{aud})
	}

	// A rotated key signs from then on.
	iss2, err := jwtsvid.NewIssuer(jwtsvid.IssuerOptions{Bundle: b, KeyID: "rotated"})
	if err != nil {
		t.Fatal(err)
	}
	h.srv.SetJWT(iss2)
	resp, err = sentryv1.NewCAClient(rawConn(t, h)).SignCertificate(context.Background(), &sentryv1.SignCertificateRequest{
		Id: "payment", Namespace: "production", TrustDomain: "localhost",
		CertificateSigningRequest: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
		TokenValidator:            sentryv1.SignCertificateRequest_INSECURE,
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseSigned(resp.GetJwt().GetValue(), []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Headers[0].KeyID != "rotated" || len(resp.GetPerAudienceJwts()) != 1 {
		t.Fatalf("after SetJWT: kid %q, %d per-audience tokens", tok.Headers[0].KeyID, len(resp.GetPerAudienceJwts()))
	}
}
