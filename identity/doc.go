// Package identity maps app IDs to SPIFFE IDs and keeps a workload's X.509
// SVID and trust bundle current.
//
// A Source holds the SVID and bundle and is read on every TLS handshake, so a
// Rotator can swap them while connections stay open. ServerTLS and ClientTLS
// build mutual-TLS configs from a Source with go-spiffe's tlsconfig.
//
// The package imports nothing else of Tandem's: sentry/client implements
// Issuer, and invoke and proxy consume Source and the TLS configs.
package identity
