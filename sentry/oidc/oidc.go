// Package oidc is sentry's OpenID Connect discovery server, as Dapr 1.16+
// sentry serves it (--oidc-enabled): GET /.well-known/openid-configuration
// and GET /jwks.json (under --oidc-path-prefix), so that a resource
// provider (a cloud's workload identity federation, an API gateway) can
// verify the JWT SVIDs sentry issues. It is only the discovery part of
// OIDC: there is no authorization endpoint.
//
// The issuer and jwks_uri of the discovery document are the configured
// ones (--jwt-issuer, --oidc-jwks-uri) or, when unset, derived from the
// request as Dapr derives them: scheme https when serving TLS, else http,
// and the request's Host. X-Forwarded-Host is honoured only once it has
// matched a concrete entry of --oidc-allowed-hosts, never under the "*"
// wildcard or without a list (an attacker could otherwise put any issuer
// into the document).
//
//	srv, err := oidc.New(oidc.Options{JWKS: jwks, Algorithm: "RS256", Address: "localhost:9080"})
//	err = srv.Run(ctx)
//
// The package imports nothing of Tandem's.
package oidc

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Endpoints, relative to the path prefix.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/jwks.json"
)

// Defaults.
const (
	DefaultAddress = "localhost:9080"
	tlsFilesPoll   = time.Second
	shutdownGrace  = 5 * time.Second
)

// Options configure a Server.
type Options struct {
	// JWKS is the key set served at /jwks.json (public keys only). Required.
	JWKS []byte
	// Algorithm is the signing algorithm of the tokens, announced in
	// id_token_signing_alg_values_supported. Required.
	Algorithm string
	// Issuer is the issuer of the document (--jwt-issuer); derived from
	// each request if empty.
	Issuer string
	// JWKSURI is the document's jwks_uri (--oidc-jwks-uri); derived from
	// the issuer (or the request) and the JWKS path if empty.
	JWKSURI string
	// PathPrefix is put before both endpoints (--oidc-path-prefix).
	PathPrefix string
	// AllowedHosts, if not empty, are the hosts (with or without port) a
	// request may be for (--oidc-allowed-hosts); "*" allows any.
	AllowedHosts []string
	// TLSCertFile and TLSKeyFile: serve HTTPS with them (both or neither).
	// Run waits for the files to appear; a changed pair is picked up at the
	// next handshake.
	TLSCertFile string
	TLSKeyFile  string

	// Listener to serve on; if nil, Address is listened on (DefaultAddress
	// if empty).
	Listener net.Listener
	Address  string
	Log      *slog.Logger
}

// Server serves the discovery document and the key set.
type Server struct {
	opts     Options
	keys     atomic.Pointer[keys]
	doc      discovery
	jwksPath string
	docPath  string
	lis      net.Listener
	log      *slog.Logger
	ready    atomic.Bool
	running  atomic.Bool
	certs    *certFiles
}

// New checks the options and opens the listener (so that a busy port fails
// here). Call Run to serve.
func New(o Options) (*Server, error) {
	if len(o.JWKS) == 0 {
		return nil, errors.New("oidc server: no jwks")
	}
	if o.Algorithm == "" {
		return nil, errors.New("oidc server: no signing algorithm")
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return nil, errors.New("oidc server: a TLS certificate file needs a key file and the other way round (--oidc-server-tls-cert-file, --oidc-server-tls-key-file)")
	}
	for _, u := range []struct{ flag, v string }{{"--jwt-issuer", o.Issuer}, {"--oidc-jwks-uri", o.JWKSURI}} {
		if u.v == "" {
			continue
		}
		if _, err := url.Parse(u.v); err != nil {
			return nil, fmt.Errorf("oidc server: %s: %w", u.flag, err)
		}
	}
	prefix := strings.TrimSuffix(o.PathPrefix, "/")
	if prefix != "" && !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	s := &Server{
		opts:     o,
		jwksPath: prefix + JWKSPath,
		docPath:  prefix + DiscoveryPath,
		log:      o.Log,
		doc: discovery{
			Issuer:        o.Issuer,
			JWKSURI:       o.JWKSURI,
			ResponseTypes: []string{"id_token"},
			SubjectTypes:  []string{"public"},
			Scopes:        []string{"openid"},
			Claims:        []string{"sub", "iss", "aud", "exp", "iat", "nbf", "use"},
		},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.keys.Store(&keys{jwks: o.JWKS, alg: o.Algorithm})
	if o.TLSCertFile != "" {
		s.certs = &certFiles{cert: o.TLSCertFile, key: o.TLSKeyFile}
	}
	s.lis = o.Listener
	if s.lis == nil {
		addr := o.Address
		if addr == "" {
			addr = DefaultAddress
		}
		var err error
		if s.lis, err = net.Listen("tcp", addr); err != nil {
			return nil, fmt.Errorf("oidc server: listen on %s: %w (choose another --oidc-server-listen-port)", addr, err)
		}
	}
	return s, nil
}

// keys is what a key rotation changes: the key set and the algorithm.
type keys struct {
	jwks []byte
	alg  string
}

// SetKeys replaces the served key set and signing algorithm (a rotated
// JWT signing key); empty values are ignored.
func (s *Server) SetKeys(jwks []byte, algorithm string) {
	if len(jwks) == 0 || algorithm == "" {
		return
	}
	s.keys.Store(&keys{jwks: jwks, alg: algorithm})
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// TLS reports whether the server serves HTTPS.
func (s *Server) TLS() bool { return s.certs != nil }

// Ready reports whether the server is serving.
func (s *Server) Ready() bool { return s.ready.Load() }

// Handler returns the endpoints, with the allowed-hosts check.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(s.jwksPath, s.allowedHosts(http.HandlerFunc(s.serveJWKS)))
	mux.Handle(s.docPath, s.allowedHosts(http.HandlerFunc(s.serveDiscovery)))
	return mux
}

// Run serves until ctx ends, then shuts down gracefully. With TLS it first
// waits for the certificate and key files (a cert-manager Secret may be
// mounted after sentry starts), as Dapr's sentry does.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("oidc server: Run called twice")
	}
	defer s.lis.Close()
	lis := s.lis
	scheme := "http"
	if s.certs != nil {
		if err := s.certs.wait(ctx, s.log); err != nil {
			return nil //nolint:nilerr // ctx ended while waiting: a normal stop
		}
		if _, err := s.certs.get(nil); err != nil {
			return fmt.Errorf("oidc server: %w", err)
		}
		lis = tls.NewListener(lis, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.certs.get})
		scheme = "https"
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errCh := make(chan error, 1)
	go func() { errCh <- srv.Serve(lis) }()
	s.ready.Store(true)
	defer s.ready.Store(false)
	attrs := []any{"address", s.lis.Addr().String(), "scheme", scheme, "discovery_path", s.docPath, "jwks_path", s.jwksPath}
	if len(s.opts.AllowedHosts) > 0 {
		attrs = append(attrs, "allowed_hosts", strings.Join(s.opts.AllowedHosts, ","))
	}
	s.log.Info("oidc server listening", attrs...)
	select {
	case err := <-errCh:
		return fmt.Errorf("oidc server: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		_ = srv.Shutdown(sctx)
		if err := <-errCh; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("oidc server: %w", err)
		}
		return nil
	}
}

// allowedHosts refuses requests for hosts not in the list with 403. The
// host checked is X-Forwarded-Host if given, else Host; an entry without a
// port matches the host with any port.
func (s *Server) allowedHosts(next http.Handler) http.Handler {
	hosts := s.opts.AllowedHosts
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(hosts) == 0 || slices.Contains(hosts, "*") {
			next.ServeHTTP(w, r)
			return
		}
		host := r.Host
		if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
			host = fh
		}
		if slices.Contains(hosts, host) {
			next.ServeHTTP(w, r)
			return
		}
		if h, _, err := net.SplitHostPort(host); err == nil && slices.Contains(hosts, h) {
			next.ServeHTTP(w, r)
			return
		}
		s.log.Warn("oidc request for a host not in --oidc-allowed-hosts refused", "host", host, "remote", r.RemoteAddr)
		http.Error(w, "Forbidden: unauthorized domain", http.StatusForbidden)
	})
}

func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(s.keys.Load().jwks)
}

// discovery is the part of OpenID Connect Discovery 1.0's provider metadata
// a verifier of sentry's tokens needs.
type discovery struct {
	Issuer                  string   `json:"issuer"`
	JWKSURI                 string   `json:"jwks_uri"`
	ResponseTypes           []string `json:"response_types_supported"`
	SubjectTypes            []string `json:"subject_types_supported"`
	IDTokenSigningAlgValues []string `json:"id_token_signing_alg_values_supported"`
	Scopes                  []string `json:"scopes_supported,omitempty"`
	Claims                  []string `json:"claims_supported,omitempty"`
}

func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	doc := s.doc // the slices are shared but never written
	doc.IDTokenSigningAlgValues = []string{s.keys.Load().alg}
	if doc.Issuer == "" || doc.JWKSURI == "" {
		base, err := s.requestBase(r)
		if err != nil {
			http.Error(w, "Invalid host", http.StatusBadRequest)
			return
		}
		if doc.Issuer == "" {
			doc.Issuer = base.String()
		}
		if doc.JWKSURI == "" {
			// Relative to the issuer when it is a URL, else to the request.
			ref := base
			if iss, err := url.Parse(doc.Issuer); err == nil {
				ref = iss
			}
			doc.JWKSURI = ref.ResolveReference(&url.URL{Path: s.jwksPath}).String()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_ = json.NewEncoder(w).Encode(doc)
}

// requestBase is scheme://host of the request as a client reached it.
func (s *Server) requestBase(r *http.Request) (*url.URL, error) {
	host := r.Host
	hosts := s.opts.AllowedHosts
	if len(hosts) > 0 && !slices.Contains(hosts, "*") {
		// The allowed-hosts check has matched it against the list.
		if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
			host = fh
		}
	}
	scheme := "http"
	if s.certs != nil {
		scheme = "https"
	}
	u, err := url.Parse(scheme + "://" + host)
	if err != nil {
		return nil, err
	}
	// Only a plain host[:port], which the URL spells as the client did.
	if u.Host != host || u.String() != scheme+"://"+host || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("host %q is not a host", host)
	}
	return u, nil
}

// certFiles is the serving certificate, re-read when its files change.
type certFiles struct {
	cert, key string

	mu    sync.Mutex
	stamp string
	cur   *tls.Certificate
}

func (c *certFiles) wait(ctx context.Context, log *slog.Logger) error {
	warned := false
	for {
		_, errC := os.Stat(c.cert)
		_, errK := os.Stat(c.key)
		if errC == nil && errK == nil {
			return nil
		}
		if !warned {
			log.Warn("waiting for the oidc server's TLS certificate and key files", "cert_file", c.cert, "key_file", c.key)
			warned = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(tlsFilesPoll):
		}
	}
}

func (c *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	stamp := ""
	for _, f := range []string{c.cert, c.key} {
		st, err := os.Stat(f)
		if err != nil {
			stamp += "missing;"
			continue
		}
		stamp += fmt.Sprintf("%d:%d;", st.ModTime().UnixNano(), st.Size())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil && stamp == c.stamp {
		return c.cur, nil
	}
	cert, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		if c.cur != nil {
			return c.cur, nil // half-written files: keep serving the previous pair
		}
		return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", c.cert, c.key, err)
	}
	c.cur, c.stamp = &cert, stamp
	return c.cur, nil
}
