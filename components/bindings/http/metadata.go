package http

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tandemrun/tandem/components"
)

// defaultMaxResponseBody is Dapr's limit on a response body read (100 MB).
const defaultMaxResponseBody = 100 << 20

// config is the component's metadata, with Dapr's names and defaults.
type config struct {
	URL                 string        // url
	SecurityToken       string        // securityToken
	SecurityTokenHeader string        // securityTokenHeader
	ResponseTimeout     time.Duration // responseTimeout; 0: none
	MaxResponseBody     int64         // maxResponseBodySize (bytes, or 10Mi); <= 0: no limit
	ErrorIfNot2XX       bool          // errorIfNot2XX (default true)
	RootCA              string        // mtlsRootCA: PEM or a file path
	ClientCert          string        // mtlsClientCert
	ClientKey           string        // mtlsClientKey
	Renegotiation       string        // mtlsRenegotiation
}

func parseConfig(md components.Metadata) (config, error) {
	c := config{
		URL:                 md.String("url", ""),
		SecurityToken:       md.String("securityToken", ""),
		SecurityTokenHeader: md.String("securityTokenHeader", ""),
		RootCA:              md.String("mtlsRootCA", ""),
		ClientCert:          md.String("mtlsClientCert", ""),
		ClientKey:           md.String("mtlsClientKey", ""),
		Renegotiation:       md.String("mtlsRenegotiation", ""),
		ErrorIfNot2XX:       true,
		MaxResponseBody:     defaultMaxResponseBody,
	}
	if c.URL == "" {
		return c, fmt.Errorf("component %q: metadata %q is required: the base URL requests go to", md.Name, "url")
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("component %q: metadata %q: %q is not an http:// or https:// URL", md.Name, "url", c.URL)
	}
	if v := md.String("errorIfNot2XX", ""); v != "" {
		c.ErrorIfNot2XX = truthy(v)
	}
	var err error
	if c.ResponseTimeout, err = md.Duration("responseTimeout", 0); err != nil {
		return c, err
	}
	if c.ResponseTimeout < 0 {
		return c, fmt.Errorf("component %q: metadata %q must not be negative", md.Name, "responseTimeout")
	}
	if v := strings.TrimSpace(md.String("maxResponseBodySize", "")); v != "" {
		q, err := resource.ParseQuantity(v)
		n, ok := q.AsInt64()
		if err != nil || !ok {
			return c, fmt.Errorf("component %q: metadata %q: %q is not a size like 1048576 or 100Mi", md.Name, "maxResponseBodySize", v)
		}
		c.MaxResponseBody = n
	}
	switch c.Renegotiation {
	case "", "RenegotiateNever", "RenegotiateOnceAsClient", "RenegotiateFreelyAsClient":
	default:
		return c, fmt.Errorf("component %q: metadata %q: %q is not RenegotiateNever, RenegotiateOnceAsClient or RenegotiateFreelyAsClient", md.Name, "mtlsRenegotiation", c.Renegotiation)
	}
	return c, nil
}

// truthy is Dapr's reading of a boolean flag: y, yes, true, on, 1.
func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "y", "yes", "true", "on", "1":
		return true
	}
	b, _ := strconv.ParseBool(v)
	return b
}

// tlsConfig builds the client's TLS settings, reading PEM values that are
// file paths.
func (c config) tlsConfig(name string) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.RootCA != "" {
		b, err := pemBytes(name, "mtlsRootCA", c.RootCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("component %q: metadata %q holds no PEM certificate", name, "mtlsRootCA")
		}
		t.RootCAs = pool
	}
	if c.ClientCert != "" && c.ClientKey != "" {
		cert, err := pemBytes(name, "mtlsClientCert", c.ClientCert)
		if err != nil {
			return nil, err
		}
		key, err := pemBytes(name, "mtlsClientKey", c.ClientKey)
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("component %q: client certificate: %w", name, err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	switch c.Renegotiation {
	case "RenegotiateOnceAsClient":
		t.Renegotiation = tls.RenegotiateOnceAsClient
	case "RenegotiateFreelyAsClient":
		t.Renegotiation = tls.RenegotiateFreelyAsClient
	}
	return t, nil
}

func pemBytes(name, prop, v string) ([]byte, error) {
	if b, _ := pem.Decode([]byte(v)); b != nil {
		return []byte(v), nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return nil, fmt.Errorf("component %q: metadata %q is neither PEM nor a readable file: %w", name, prop, err)
	}
	return b, nil
}
