package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/filewatch"
	"github.com/tandemrun/tandem/internal/task"
)

// serverTLS is the TLS the scaler serves KEDA with: a certificate from
// sentry (an X.509 SVID, renewed by the identity tasks) or from PEM files,
// and, with a client CA file, client certificates required and checked
// against it (KEDA's tlsClientCert and tlsClientKey). The files are read
// again when they change (cert-manager and Kubernetes Secrets replace
// them), so no restart is needed.
type serverTLS struct {
	// svid, if set, is the certificate (from sentry); else certFile and
	// keyFile.
	svid              *identity.Source
	certFile, keyFile string
	clientCAFile      string
	reloadEvery       time.Duration
	log               *slog.Logger
	mu                sync.RWMutex
	cert              *tls.Certificate
	clientCAs         *x509.CertPool
}

// newServerTLS loads the files once (so a wrong path fails at start).
func newServerTLS(svid *identity.Source, certFile, keyFile, clientCAFile string, log *slog.Logger) (*serverTLS, error) {
	t := &serverTLS{svid: svid, certFile: certFile, keyFile: keyFile, clientCAFile: clientCAFile, log: log}
	if svid == nil && (certFile == "" || keyFile == "") {
		return nil, errors.New("TLS needs a certificate: --tls-cert-file and --tls-key-file, or --tls-enabled for one from sentry")
	}
	content, err := t.read()
	if err != nil {
		return nil, err
	}
	if err := t.apply(content); err != nil {
		return nil, err
	}
	return t, nil
}

// files are the files t reads, in a fixed order.
func (t *serverTLS) files() []string {
	var fs []string
	if t.svid == nil {
		fs = append(fs, t.certFile, t.keyFile)
	}
	if t.clientCAFile != "" {
		fs = append(fs, t.clientCAFile)
	}
	return fs
}

// sep cannot occur in PEM text: it keeps the files apart in one content.
var sep = []byte{0}

func (t *serverTLS) read() ([]byte, error) {
	var parts [][]byte
	for _, f := range t.files() {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		parts = append(parts, b)
	}
	return bytes.Join(parts, sep), nil
}

// apply parses the files' content and puts it in use.
func (t *serverTLS) apply(content []byte) error {
	parts := bytes.Split(content, sep)
	var cert *tls.Certificate
	if t.svid == nil {
		c, err := tls.X509KeyPair(parts[0], parts[1])
		if err != nil {
			return fmt.Errorf("--tls-cert-file %s and --tls-key-file %s: %w", t.certFile, t.keyFile, err)
		}
		cert, parts = &c, parts[2:]
	}
	var pool *x509.CertPool
	if t.clientCAFile != "" {
		certs, err := identity.ParseCertificates(parts[0])
		if err == nil && len(certs) == 0 {
			err = errors.New("no certificate in it")
		}
		if err != nil {
			return fmt.Errorf("--tls-client-ca-file %s: %w", t.clientCAFile, err)
		}
		pool = x509.NewCertPool()
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	t.mu.Lock()
	t.cert, t.clientCAs = cert, pool
	t.mu.Unlock()
	return nil
}

// config is the server's tls.Config: each handshake takes the current
// certificate and client CAs.
func (t *serverTLS) config() *tls.Config {
	var fromSVID func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	if t.svid != nil {
		fromSVID = tlsconfig.GetCertificate(t.svid)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		t.mu.RLock()
		cert, pool := t.cert, t.clientCAs
		t.mu.RUnlock()
		// gRPC clients insist on ALPN h2; a config returned here replaces
		// the one credentials.NewTLS completed with it.
		c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}
		if fromSVID != nil {
			c.GetCertificate = fromSVID
		} else {
			c.Certificates = []tls.Certificate{*cert}
		}
		if pool != nil {
			c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, pool
		}
		return c, nil
	}}
}

// serverOption is the gRPC server's transport credentials.
func (t *serverTLS) serverOption() grpc.ServerOption {
	return grpc.Creds(credentials.NewTLS(t.config()))
}

// task follows the files, if any.
func (t *serverTLS) task() (task.Task, bool) {
	if len(t.files()) == 0 {
		return task.Task{}, false
	}
	current, _ := t.read()
	w := &filewatch.Watcher{Read: t.read, Interval: t.reloadEvery, Current: current, Apply: func(b []byte) error {
		if err := t.apply(b); err != nil {
			t.log.Warn("TLS files changed but cannot be used; keeping the ones in use", "error", err)
			return err
		}
		t.log.Info("TLS files reloaded", "files", t.files())
		return nil
	}}
	return task.Task{Name: "TLS files", Run: func(ctx context.Context) error { return w.Run(ctx) }}, true
}
