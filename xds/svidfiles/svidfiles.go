// Package svidfiles keeps a sidecar-less app's identity in files (`tandem
// identity`): an SVID from sentry in cert.pem and key.pem, the trust
// anchors in ca.pem and a gRFC A87 SPIFFE bundle map, renewed at half
// their lifetime, in the layout grpc-go's file_watcher certificate provider
// (and Envoy's file-based SDS) rereads, so rotation needs no restart of the
// app.
//
// Every file is replaced by writing a temporary file in the same folder and
// renaming it over the old one: a reader sees the old file or the new one,
// never a partial write. cert.pem and key.pem are two renames; a reader
// between them gets a certificate that does not match its key, which
// file_watcher rejects (and retries at its next refresh) while it keeps the
// previous pair, so the order is not observable as a failure.
//
//	src := identity.NewSource()
//	k := &svidfiles.Keeper{Dir: dir, ID: id, Issuer: sentry, Source: src}
//	err := k.Run(ctx) // first SVID, files, then renewals until ctx ends
//
// It imports identity and xds (for the file layout), nothing of the sidecar.
package svidfiles

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/xds"
)

// File names inside the folder.
const (
	CertFile            = "cert.pem"
	KeyFile             = "key.pem"
	CAFile              = "ca.pem"
	SPIFFEBundleMapFile = "spiffe-bundle-map.json"
	BootstrapFile       = "bootstrap.json"
)

// Paths returns the files of dir (absolute if dir is).
func Paths(dir string) xds.Files {
	return xds.Files{
		Cert:            filepath.Join(dir, CertFile),
		Key:             filepath.Join(dir, KeyFile),
		CA:              filepath.Join(dir, CAFile),
		SPIFFEBundleMap: filepath.Join(dir, SPIFFEBundleMapFile),
	}
}

// Write replaces the files of dir with svid and anchors. The bundle map
// trusts anchors for svid's trust domain (and for extra ones, such as the
// xDS server's if it differs). The key is written before the certificate
// and ca.pem last, each atomically.
func Write(dir string, svid *x509svid.SVID, anchors []*x509.Certificate, extra ...spiffeid.TrustDomain) error {
	if svid == nil || len(svid.Certificates) == 0 {
		return errors.New("svidfiles: no SVID to write")
	}
	if len(anchors) == 0 {
		return errors.New("svidfiles: no trust anchors to write")
	}
	certPEM, keyPEM, err := svid.Marshal()
	if err != nil {
		return fmt.Errorf("svidfiles: encode the SVID: %w", err)
	}
	var caPEM []byte
	for _, c := range anchors {
		caPEM = append(caPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	tds := []spiffeid.TrustDomain{svid.ID.TrustDomain()}
	for _, td := range extra {
		if td != svid.ID.TrustDomain() && !td.IsZero() {
			tds = append(tds, td)
		}
	}
	bmap, err := xds.SPIFFEBundleMap(anchors, tds...)
	if err != nil {
		return err
	}
	p := Paths(dir)
	return writeAll([]file{{p.Key, keyPEM}, {p.Cert, certPEM}, {p.CA, caPEM}, {p.SPIFFEBundleMap, bmap}})
}

type file struct {
	path string
	data []byte
}

// writeAll writes (and syncs) every file under a temporary name first,
// then renames them in order, back to back: the window in which cert.pem
// and key.pem do not match is two renames long.
func writeAll(files []file) error {
	tmps := make([]string, 0, len(files))
	defer func() {
		for _, t := range tmps {
			if t != "" {
				_ = os.Remove(t)
			}
		}
	}()
	for _, f := range files {
		t, err := writeTemp(f.path, f.data)
		if err != nil {
			return err
		}
		tmps = append(tmps, t)
	}
	for i, f := range files {
		if err := os.Rename(tmps[i], f.path); err != nil {
			return fmt.Errorf("svidfiles: write %s: %w", f.path, err)
		}
		tmps[i] = ""
	}
	return nil
}

// WriteAtomic writes data to a temporary file next to path (mode 0600) and
// renames it to path.
func WriteAtomic(path string, data []byte) error {
	return writeAll([]file{{path, data}})
}

func writeTemp(path string, data []byte) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return "", fmt.Errorf("svidfiles: %w", err)
	}
	name := tmp.Name()
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("svidfiles: write %s: %w", path, err)
	}
	return name, nil
}

// Keeper obtains the SVID of ID from Issuer and keeps it, and the trust
// anchors, in the files of Dir until its context ends.
type Keeper struct {
	Dir    string
	ID     spiffeid.ID
	Issuer identity.Issuer
	// Source receives every SVID (NewSource if nil); its initial trust
	// anchors are written until the issuer returns some.
	Source *identity.Source
	// ExtraTrustDomains are added to the bundle map (the xDS server's, if
	// not ID's).
	ExtraTrustDomains []spiffeid.TrustDomain
	// RetryInterval after a failed renewal or write
	// (identity.DefaultRetryInterval if zero).
	RetryInterval time.Duration
	// OnWrite, if set, is called after the files were written.
	OnWrite func(*x509svid.SVID)
	Log     *slog.Logger
}

// Start gets the first SVID and writes the files; it returns the time the
// next renewal is due. Run calls it; callers that want to print something
// once the files exist call Start, then Follow.
func (k *Keeper) Start(ctx context.Context) (time.Time, error) {
	k.defaults()
	if err := os.MkdirAll(k.Dir, 0o700); err != nil {
		return time.Time{}, fmt.Errorf("svidfiles: %w", err)
	}
	next, err := k.rotator().Renew(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if err := k.write(); err != nil {
		return time.Time{}, err
	}
	return next, nil
}

// Run is Start, then Follow.
func (k *Keeper) Run(ctx context.Context) error {
	next, err := k.Start(ctx)
	if err != nil {
		return err
	}
	return k.Follow(ctx, next)
}

// Follow renews the SVID from next on, at half of each certificate's
// lifetime, and rewrites the files after every renewal, until ctx ends.
// A failed renewal keeps the current files and is retried.
func (k *Keeper) Follow(ctx context.Context, next time.Time) error {
	k.defaults()
	rot := k.rotator()
	for {
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		n, err := rot.Renew(ctx)
		if err == nil {
			err = k.write()
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			k.Log.Warn("certificate renewal failed; the current files stay and the renewal is retried",
				"spiffe_id", k.ID.String(), "retry_in", k.RetryInterval.String(), "error", err)
			next = time.Now().Add(k.RetryInterval)
			continue
		}
		next = n
	}
}

func (k *Keeper) defaults() {
	if k.Source == nil {
		k.Source = identity.NewSource()
	}
	if k.Log == nil {
		k.Log = slog.New(slog.DiscardHandler)
	}
	if k.RetryInterval <= 0 {
		k.RetryInterval = identity.DefaultRetryInterval
	}
}

func (k *Keeper) rotator() *identity.Rotator {
	return &identity.Rotator{ID: k.ID, Issuer: k.Issuer, Source: k.Source, Log: k.Log}
}

func (k *Keeper) write() error {
	svid, err := k.Source.GetX509SVID()
	if err != nil {
		return err
	}
	if err := Write(k.Dir, svid, k.Source.TrustAnchors(), k.ExtraTrustDomains...); err != nil {
		return err
	}
	leaf := svid.Certificates[0]
	k.Log.Info("workload certificate written", "spiffe_id", svid.ID.String(), "dir", k.Dir,
		"serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	if k.OnWrite != nil {
		k.OnWrite(svid)
	}
	return nil
}
