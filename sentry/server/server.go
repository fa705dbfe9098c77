// Package server is sentry's gRPC service, dapr.proto.sentry.v1.CA, a
// drop-in for Dapr's sentry: SignCertificate validates the request with a
// validator, signs the CSR's public key with the CA and returns the PEM
// chain and trust anchors, and with a JWT issuer JWT SVIDs for the same
// identity.
//
// The service is served over TLS with sentry's own certificate
// (spiffe://<trust-domain>/ns/<namespace>/dapr-sentry), signed by the same
// CA and renewed at half its lifetime; clients verify it against the trust
// anchors and need no client certificate, as in Dapr.
//
// A Server can run inside the sentry binary or embedded in another process:
//
//	srv, err := server.New(server.Options{CA: c, Address: "127.0.0.1:50001", ...})
//	go srv.Run(ctx)
//
// Health (Healthz) and metrics handlers are served by ServeHTTP on listeners
// the caller chooses.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/tandemrun/tandem/sentry/ca"
	"github.com/tandemrun/tandem/sentry/jwtsvid"
	"github.com/tandemrun/tandem/sentry/validator"
)

// Defaults.
const (
	DefaultAddress             = ":50001"
	DefaultExpiryWarning       = 30 * 24 * time.Hour
	DefaultExpiryCheckInterval = time.Hour
	shutdownGrace              = 5 * time.Second
)

// Options configure a Server.
type Options struct {
	// CA signs workload certificates and sentry's own certificate. Required.
	CA *ca.CA
	// Validators by the token_validator a request names. A request naming
	// UNKNOWN (what daprd sends without a token) uses DefaultValidator.
	Validators map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator
	// DefaultValidator is used for requests naming no validator.
	DefaultValidator sentryv1.SignCertificateRequest_TokenValidator

	// TrustDomain and Namespace form sentry's own SPIFFE ID (Dapr's
	// --trust-domain, default "localhost", and NAMESPACE, default "default").
	TrustDomain string
	Namespace   string

	// Listener to serve gRPC on; if nil, Address is listened on.
	Listener net.Listener
	// Address is the TCP address when Listener is nil (DefaultAddress if empty).
	Address string

	// JWT, if set, also issues a JWT SVID with every certificate (Dapr's
	// --jwt-enabled): the response's jwt, for the trust domain and the
	// request's jwt_audiences, and per_audience_jwts, one for each.
	JWT *jwtsvid.Issuer

	// Metrics to record; if nil they are kept but exported nowhere.
	Metrics *Metrics
	// Log; discarded if nil.
	Log *slog.Logger

	// ExpiryWarning: warn when the root or issuer expires within it
	// (DefaultExpiryWarning if zero), checked every ExpiryCheckInterval
	// (DefaultExpiryCheckInterval if zero).
	ExpiryWarning       time.Duration
	ExpiryCheckInterval time.Duration
}

// Server is sentry's CA service.
type Server struct {
	sentryv1.UnimplementedCAServer

	authority  atomic.Pointer[ca.CA]
	vals       map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator
	defaultVal sentryv1.SignCertificateRequest_TokenValidator
	id         spiffeid.ID
	namespace  string
	jwt        atomic.Pointer[jwtsvid.Issuer]
	lis        net.Listener
	grpc       *grpc.Server
	metrics    *Metrics
	log        *slog.Logger
	warnWithin time.Duration
	checkEvery time.Duration

	ready   atomic.Bool
	running atomic.Bool

	certMu    sync.Mutex
	cert      *tls.Certificate
	renewAt   time.Time
	certIssue func() (*tls.Certificate, error)
}

// New validates opts, issues sentry's first serving certificate and opens
// the listener (so a busy port fails here). Call Run to serve.
func New(opts Options) (*Server, error) {
	if opts.CA == nil {
		return nil, errors.New("sentry server: no CA")
	}
	if len(opts.Validators) == 0 {
		return nil, errors.New("sentry server: no validators configured")
	}
	if opts.DefaultValidator != sentryv1.SignCertificateRequest_UNKNOWN {
		if _, ok := opts.Validators[opts.DefaultValidator]; !ok {
			return nil, fmt.Errorf("sentry server: default validator %s is not among the configured validators", opts.DefaultValidator)
		}
	}
	if opts.TrustDomain == "" {
		opts.TrustDomain = "localhost"
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	id, err := ca.SentryID(opts.TrustDomain, opts.Namespace)
	if err != nil {
		return nil, fmt.Errorf("sentry server: %w", err)
	}
	s := &Server{
		vals:       opts.Validators,
		defaultVal: opts.DefaultValidator,
		id:         id,
		namespace:  opts.Namespace,
		metrics:    opts.Metrics,
		log:        opts.Log,
		warnWithin: opts.ExpiryWarning,
		checkEvery: opts.ExpiryCheckInterval,
	}
	s.authority.Store(opts.CA)
	s.jwt.Store(opts.JWT)
	if s.metrics == nil {
		s.metrics = NewMetrics(nil)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.warnWithin <= 0 {
		s.warnWithin = DefaultExpiryWarning
	}
	if s.checkEvery <= 0 {
		s.checkEvery = DefaultExpiryCheckInterval
	}
	s.certIssue = func() (*tls.Certificate, error) {
		c := s.CA()
		return c.IssueTLS(s.id, c.WorkloadCertTTL())
	}
	if _, err := s.servingCert(); err != nil {
		return nil, fmt.Errorf("sentry server: issue serving certificate: %w", err)
	}

	s.lis = opts.Listener
	if s.lis == nil {
		addr := opts.Address
		if addr == "" {
			addr = DefaultAddress
		}
		s.lis, err = net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("sentry server: listen on %s: %w (is another sentry running? choose another --port)", addr, err)
		}
	}
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.servingCert()
		},
	}
	s.grpc = grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsConf)))
	sentryv1.RegisterCAServer(s.grpc, s)
	return s, nil
}

// Addr returns the address the gRPC service listens on.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// ID returns sentry's SPIFFE ID, which clients must expect.
func (s *Server) ID() spiffeid.ID { return s.id }

// CA returns the CA currently signing.
func (s *Server) CA() *ca.CA { return s.authority.Load() }

// SetCA replaces the CA while serving, for example after the issuer
// credentials were rotated on disk: requests signed from now on use c, and
// sentry's own serving certificate is re-issued by c at the next handshake
// so that clients which dropped the old root still trust it. Requests in
// flight finish with the CA they started with.
func (s *Server) SetCA(c *ca.CA) {
	if c == nil {
		return
	}
	old := s.authority.Swap(c)
	s.certMu.Lock()
	s.cert = nil
	s.certMu.Unlock()
	if old == nil || !old.Issuer().Equal(c.Issuer()) {
		s.metrics.IssuerChanged()
	}
	s.log.Info("sentry CA credentials replaced", "trust_anchors", len(c.TrustAnchors()),
		"issuer_serial", c.Issuer().SerialNumber.String(), "issuer_not_after", c.Issuer().NotAfter.UTC().Format(time.RFC3339),
		"active_root", c.ActiveRoot().Subject.String())
	s.checkExpiry()
}

// SetJWT replaces the JWT issuer while serving (a rotated signing key);
// it cannot turn JWT SVIDs on or off (nil is ignored).
func (s *Server) SetJWT(iss *jwtsvid.Issuer) {
	if iss == nil || s.jwt.Load() == nil {
		return
	}
	s.jwt.Store(iss)
	s.log.Info("sentry jwt signing key replaced", "kid", iss.KeyID(), "algorithm", iss.Algorithm())
}

// Ready reports whether the service is serving.
func (s *Server) Ready() bool { return s.ready.Load() }

// Run serves until ctx ends, then stops gracefully. It may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("sentry server: Run called twice")
	}
	errCh := make(chan error, 1)
	go func() { errCh <- s.grpc.Serve(s.lis) }()
	s.ready.Store(true)
	s.log.Info("sentry CA service listening", "address", s.lis.Addr().String(), "spiffe_id", s.id.String())
	s.checkExpiry()

	ticker := time.NewTicker(s.checkEvery)
	defer ticker.Stop()
	for {
		select {
		case err := <-errCh:
			s.ready.Store(false)
			if err != nil {
				return fmt.Errorf("sentry server: serve: %w", err)
			}
			return nil
		case <-ticker.C:
			s.checkExpiry()
		case <-ctx.Done():
			s.ready.Store(false)
			s.log.Info("sentry CA service shutting down")
			done := make(chan struct{})
			go func() { s.grpc.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-time.After(shutdownGrace):
				s.grpc.Stop()
			}
			<-errCh
			return nil
		}
	}
}

// servingCert returns sentry's TLS certificate, issuing a new one when the
// current one is half spent.
func (s *Server) servingCert() (*tls.Certificate, error) {
	s.certMu.Lock()
	defer s.certMu.Unlock()
	now := time.Now()
	if s.cert != nil && now.Before(s.renewAt) {
		return s.cert, nil
	}
	cert, err := s.certIssue()
	if err != nil {
		s.metrics.serverFailed.WithLabelValues("sign").Inc()
		if s.cert != nil && now.Before(s.cert.Leaf.NotAfter) {
			s.log.Error("renewing sentry's serving certificate failed; keeping the current one", "error", err)
			return s.cert, nil
		}
		return nil, err
	}
	s.cert = cert
	s.renewAt = now.Add(cert.Leaf.NotAfter.Sub(now) / 2)
	return cert, nil
}

// checkExpiry updates the expiry gauges and warns loudly when the active
// root or the issuer expires soon.
func (s *Server) checkExpiry() {
	c := s.CA()
	root, iss := c.ActiveRoot(), c.Issuer()
	s.metrics.setExpiry(c.Bundle().IssuerNotAfter(), root.NotAfter)
	now := time.Now()
	for _, e := range []struct {
		what     string
		notAfter time.Time
	}{{"root (trust anchor)", root.NotAfter}, {"issuer", iss.NotAfter}} {
		left := e.notAfter.Sub(now)
		switch {
		case left <= 0:
			s.log.Error("!!! sentry's "+e.what+" certificate has EXPIRED: workloads cannot get valid certificates; install new issuer credentials now",
				"expired_at", e.notAfter.UTC().Format(time.RFC3339))
		case left < s.warnWithin:
			s.log.Warn("!!! sentry's "+e.what+" certificate expires soon: rotate the CA credentials before then",
				"expires_at", e.notAfter.UTC().Format(time.RFC3339), "days_left", int(left.Hours()/24))
		}
	}
}
