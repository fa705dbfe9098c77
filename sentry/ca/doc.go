// Package ca is sentry's certificate authority: a bundle of trust anchors
// (roots), an issuer certificate and the issuer's key, and a CA that signs
// workload X.509 SVIDs with them.
//
// A Bundle is generated (self-signed ECDSA P-256 root plus issuer, valid one
// year, as Dapr's sentry does) or loaded from the three PEM files Dapr uses:
// ca.crt (trust anchors), issuer.crt (issuer chain) and issuer.key. ca.crt
// may hold several roots: all are trust anchors and the one that signed
// issuer.crt is the active one, which is how a root is rotated without an
// outage (serve old and new roots, then switch the issuer).
//
// Typical use:
//
//	b, generated, err := ca.LoadOrGenerate(ca.DefaultPaths(dir), ca.GenerateOptions{TrustDomain: "localhost"})
//	c, err := ca.New(b, ca.Options{})
//	chain, err := c.Sign(csr, id, 0) // leaf + issuer chain
//
// The package imports nothing else of Tandem's; sentry/server builds on it.
package ca
