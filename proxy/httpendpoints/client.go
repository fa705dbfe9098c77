package httpendpoints

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/tandemrun/tandem/components"
)

// client is the HTTP client of one endpoint (or of the URL targets).
type client struct {
	http *http.Client
	// base is the endpoint's base URL; nil for the URL targets' client.
	base    *url.URL
	headers []components.Header
	tr      *http.Transport
}

// newClient builds the client of a resolved endpoint; the zero endpoint
// gives the URL targets' client. Like daprd's endpoint clients it uses the
// environment's proxy settings and follows redirects.
func newClient(res components.ResolvedHTTPEndpoint, wrap func(http.RoundTripper) http.RoundTripper) (*client, error) {
	c := &client{headers: res.Headers}
	if res.BaseURL != "" {
		if err := components.CheckBaseURL(res.BaseURL); err != nil {
			return nil, fmt.Errorf("spec.baseUrl: %w", err)
		}
		c.base, _ = url.Parse(res.BaseURL)
	}
	tlsCfg, err := clientTLS(res)
	if err != nil {
		return nil, err
	}
	c.tr = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       tlsCfg,
		// Bodies pass through untouched: no transparent gzip.
		DisableCompression: true,
	}
	var rt http.RoundTripper = c.tr
	if wrap != nil {
		rt = wrap(rt)
	}
	c.http = &http.Client{Transport: rt}
	return c, nil
}

func (c *client) close() { c.tr.CloseIdleConnections() }

// clientTLS is spec.clientTLS as a tls.Config: the root CAs (the system's
// when unset), the client certificate, the renegotiation setting. Nil when
// the endpoint sets none of them.
func clientTLS(res components.ResolvedHTTPEndpoint) (*tls.Config, error) {
	if res.RootCA == "" && res.Certificate == "" && res.PrivateKey == "" && res.Renegotiation == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if res.RootCA != "" {
		pool, err := components.ParseRootCA(res.RootCA)
		if err != nil {
			return nil, fmt.Errorf("spec.clientTLS.rootCA: %w", err)
		}
		cfg.RootCAs = pool
	}
	if res.Certificate != "" || res.PrivateKey != "" {
		cert, err := tls.X509KeyPair([]byte(res.Certificate), []byte(res.PrivateKey))
		if err != nil {
			return nil, fmt.Errorf("spec.clientTLS certificate and privateKey: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	switch res.Renegotiation {
	case "", components.RenegotiateNever:
		cfg.Renegotiation = tls.RenegotiateNever
	case components.RenegotiateOnceAsClient:
		cfg.Renegotiation = tls.RenegotiateOnceAsClient
	case components.RenegotiateFreelyAsClient:
		cfg.Renegotiation = tls.RenegotiateFreelyAsClient
	default:
		return nil, fmt.Errorf("spec.clientTLS.renegotiation: %q is not Never, OnceAsClient or FreelyAsClient", res.Renegotiation)
	}
	return cfg, nil
}
