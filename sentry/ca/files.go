package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tandemrun/tandem/identity"
)

// Dapr's default file names inside the --issuer-credentials folder.
const (
	DefaultRootCertFilename   = "ca.crt"
	DefaultIssuerCertFilename = "issuer.crt"
	DefaultIssuerKeyFilename  = "issuer.key"
)

// Paths are the three files of a bundle.
type Paths struct {
	RootCert   string // trust anchors (one or more PEM certificates)
	IssuerCert string // issuer certificate (+ intermediates)
	IssuerKey  string // issuer private key
}

// DefaultPaths returns dir/ca.crt, dir/issuer.crt and dir/issuer.key.
func DefaultPaths(dir string) Paths {
	return PathsIn(dir, DefaultRootCertFilename, DefaultIssuerCertFilename, DefaultIssuerKeyFilename)
}

// PathsIn joins each file name to dir unless the name is absolute, as
// Dapr's sentry does with --issuer-ca-filename and friends.
func PathsIn(dir, rootCert, issuerCert, issuerKey string) Paths {
	join := func(name string) string {
		if filepath.IsAbs(name) {
			return name
		}
		return filepath.Join(dir, name)
	}
	return Paths{RootCert: join(rootCert), IssuerCert: join(issuerCert), IssuerKey: join(issuerKey)}
}

func (p Paths) all() []string { return []string{p.RootCert, p.IssuerCert, p.IssuerKey} }

// LoadBundle reads and verifies a bundle. If none of the files exists the
// error wraps fs.ErrNotExist.
func LoadBundle(p Paths) (*Bundle, error) {
	var missing, present []string
	for _, f := range p.all() {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, f)
		} else {
			present = append(present, f)
		}
	}
	if len(present) == 0 {
		return nil, fmt.Errorf("no issuer credentials at %s: %w", strings.Join(missing, ", "), fs.ErrNotExist)
	}
	if len(missing) > 0 {
		// Dapr regenerates everything here; we refuse, so that a lost key
		// never silently replaces a root that workloads already trust.
		return nil, fmt.Errorf("incomplete issuer credentials: %s present but %s missing; restore the missing files or remove all three to generate a new CA",
			strings.Join(present, ", "), strings.Join(missing, ", "))
	}
	rootPEM, err := os.ReadFile(p.RootCert)
	if err != nil {
		return nil, fmt.Errorf("read trust anchors: %w", err)
	}
	issPEM, err := os.ReadFile(p.IssuerCert)
	if err != nil {
		return nil, fmt.Errorf("read issuer certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(p.IssuerKey)
	if err != nil {
		return nil, fmt.Errorf("read issuer key: %w", err)
	}
	return ParseBundle(rootPEM, issPEM, keyPEM)
}

// ParseBundle parses and verifies a bundle from its PEM parts.
func ParseBundle(rootPEM, issuerPEM, keyPEM []byte) (*Bundle, error) {
	anchors, err := identity.ParseCertificates(rootPEM)
	if err != nil {
		return nil, fmt.Errorf("trust anchors: %w", err)
	}
	chain, err := identity.ParseCertificates(issuerPEM)
	if err != nil {
		return nil, fmt.Errorf("issuer certificate: %w", err)
	}
	// Dapr's issuer.crt may end with the root; keep the chain to the issuer
	// and its intermediates only.
	for len(chain) > 1 && isSelfSigned(chain[len(chain)-1]) {
		chain = chain[:len(chain)-1]
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("issuer key: %w", err)
	}
	b := &Bundle{
		TrustAnchors: anchors, IssuerChain: chain, IssuerKey: key,
		TrustAnchorsPEM: rootPEM, IssuerChainPEM: issuerPEM, IssuerKeyPEM: keyPEM,
	}
	if err := b.Verify(time.Now()); err != nil {
		return nil, fmt.Errorf("invalid issuer credentials: %w", err)
	}
	return b, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.CheckSignatureFrom(c) == nil
}

// Write stores the bundle's PEM files: certificates mode 0644 (sidecars
// read ca.crt as their trust anchors), the key 0600; a missing folder is
// made with mode 0700.
func (b *Bundle) Write(p Paths) error {
	return WriteCredentials(CredentialFile{p.RootCert, b.TrustAnchorsPEM, 0o644},
		CredentialFile{p.IssuerCert, b.IssuerChainPEM, 0o644}, CredentialFile{p.IssuerKey, b.IssuerKeyPEM, 0o600})
}

// CredentialFile is one file of sentry's credentials and its mode.
type CredentialFile struct {
	Path string
	Data []byte
	Mode os.FileMode
}

// WriteCredentials writes files, making their folders (0700) and setting
// each file's mode even where it existed with another.
func WriteCredentials(files ...CredentialFile) error {
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
			return fmt.Errorf("create credentials folder: %w", err)
		}
		if err := os.WriteFile(f.Path, f.Data, f.Mode); err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
		if err := os.Chmod(f.Path, f.Mode); err != nil {
			return fmt.Errorf("chmod %s: %w", f.Path, err)
		}
	}
	return nil
}

// LoadOrGenerate loads the bundle at p; if none of its files exists it
// generates one and writes it there. generated reports which happened.
func LoadOrGenerate(p Paths, opts GenerateOptions) (b *Bundle, generated bool, err error) {
	b, err = LoadBundle(p)
	if err == nil {
		return b, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	b, err = GenerateBundle(opts)
	if err != nil {
		return nil, false, err
	}
	if err := b.Write(p); err != nil {
		return nil, false, err
	}
	return b, true, nil
}
