package xds

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Files are where a sidecar-less app keeps its identity: the layout of
// grpc-go's file_watcher certificate provider.
type Files struct {
	// Cert is the SVID chain (leaf first), Key its private key, CA the
	// trust anchors, all PEM.
	Cert, Key, CA string
	// SPIFFEBundleMap is the trust domain -> bundle JSON file (gRFC A87)
	// the client verifies the xDS server with; see SPIFFEBundleMap.
	SPIFFEBundleMap string
}

// BootstrapOptions describe a proxyless gRPC client's bootstrap.
type BootstrapOptions struct {
	// Server is the xDS server's host:port.
	Server string
	// NodeID names the client in the server's logs.
	NodeID string
	Files  Files
	// Plaintext talks to the xDS server without TLS (a loopback server
	// started with no identity).
	Plaintext bool
	// CertProvider is the certificate-provider instance name
	// (DefaultCertProvider if empty); it must match the server's.
	CertProvider string
}

// Bootstrap returns the JSON for GRPC_XDS_BOOTSTRAP. The client reaches the
// xDS server over mTLS with its SVID, verifying the server's SPIFFE
// certificate by the bundle map (grpc-go needs
// GRPC_EXPERIMENTAL_XDS_MTLS_SPIFFE=true for that), and its calls to apps
// use the file_watcher certificate provider, which rereads the files: a
// rotated certificate needs no restart.
func Bootstrap(o BootstrapOptions) ([]byte, error) {
	if o.Server == "" || o.Files.Cert == "" || o.Files.Key == "" || o.Files.CA == "" {
		return nil, errors.New("xds bootstrap: the server address and the cert, key and CA files are required")
	}
	if o.NodeID == "" {
		o.NodeID = "proxyless"
	}
	if o.CertProvider == "" {
		o.CertProvider = DefaultCertProvider
	}
	creds := []map[string]any{{"type": "insecure"}}
	if !o.Plaintext {
		if o.Files.SPIFFEBundleMap == "" {
			return nil, errors.New("xds bootstrap: a SPIFFE bundle map file is required to verify the xDS server (or set Plaintext)")
		}
		creds = []map[string]any{{"type": "tls", "config": map[string]any{
			"certificate_file":             o.Files.Cert,
			"private_key_file":             o.Files.Key,
			"spiffe_trust_bundle_map_file": o.Files.SPIFFEBundleMap,
			"refresh_interval":             "1s",
		}}}
	}
	b := map[string]any{
		"xds_servers": []map[string]any{{
			"server_uri":      o.Server,
			"channel_creds":   creds,
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{"id": o.NodeID},
		"certificate_providers": map[string]any{
			o.CertProvider: map[string]any{
				"plugin_name": "file_watcher",
				"config": map[string]any{
					"certificate_file":    o.Files.Cert,
					"private_key_file":    o.Files.Key,
					"ca_certificate_file": o.Files.CA,
					"refresh_interval":    "1s",
				},
			},
		},
	}
	return json.MarshalIndent(b, "", "  ")
}

// SPIFFEBundleMap returns the gRFC A87 bundle map JSON that trusts anchors
// for each of the trust domains.
func SPIFFEBundleMap(anchors []*x509.Certificate, tds ...spiffeid.TrustDomain) ([]byte, error) {
	m := map[string]json.RawMessage{}
	for _, td := range tds {
		doc, err := spiffebundle.FromX509Authorities(td, anchors).Marshal()
		if err != nil {
			return nil, fmt.Errorf("xds bootstrap: bundle of %s: %w", td, err)
		}
		m[td.Name()] = doc
	}
	return json.Marshal(map[string]any{"trust_domains": m})
}
