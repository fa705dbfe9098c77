// Package jwtsvid is sentry's JWT authority: the signing key and the JSON
// Web Key Set (JWKS) that verifiers use, kept beside the X.509 issuer
// credentials as Dapr keeps them (jwt.key and jwks.json in the issuer
// credentials folder, or the same keys of the dapr-trust-bundle Secret), and
// an Issuer that signs JWT SVIDs with them: sub is the workload's SPIFFE ID,
// aud the audiences asked for, with jti, iat, nbf (back-dated by the allowed
// clock skew), exp, "use": "sig", iss when configured, and the key's kid in
// the header, as Dapr 1.16+ sentry issues them.
//
// Typical use:
//
//	b, generated, err := jwtsvid.LoadOrGenerate(jwtsvid.PathsIn(dir, "", ""))
//	iss, err := jwtsvid.NewIssuer(jwtsvid.IssuerOptions{Bundle: b})
//	token, err := iss.Issue(id, []string{"localhost", "my-api"})
//
// A Reloader picks up a rotated key from the files without a restart.
//
// The package imports only internal/filewatch of Tandem's; sentry/server
// builds on it.
package jwtsvid
