package rabbitmq

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tandemrun/tandem/components"
)

// config is the component's metadata, with Dapr's names and defaults.
type config struct {
	Host             string        // host: amqp://user:pass@host:5672
	QueueName        string        // queueName
	Exclusive        bool          // exclusive
	Durable          bool          // durable
	DeleteWhenUnused bool          // deleteWhenUnused
	PrefetchCount    int           // prefetchCount; 0: no limit
	MaxPriority      int           // maxPriority; -1: not a priority queue
	ReconnectWait    time.Duration // reconnectWaitInSeconds (default 5s)
	QueueTTL         time.Duration // ttl / ttlInSeconds: the queue's message TTL; 0: none
	CACert           string        // caCert (PEM)
	ClientCert       string        // clientCert (PEM)
	ClientKey        string        // clientKey (PEM)
	ExternalSASL     bool          // externalSasl
}

func parseConfig(md components.Metadata) (config, error) {
	c := config{Host: md.String("host", ""), QueueName: md.String("queueName", ""), MaxPriority: -1}
	if c.Host == "" {
		return c, fmt.Errorf("component %q: metadata %q is required, e.g. amqp://guest:guest@localhost:5672", md.Name, "host")
	}
	if c.QueueName == "" {
		return c, fmt.Errorf("component %q: metadata %q is required", md.Name, "queueName")
	}
	var err error
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"exclusive", &c.Exclusive}, {"durable", &c.Durable}, {"deleteWhenUnused", &c.DeleteWhenUnused}, {"externalSasl", &c.ExternalSASL}} {
		if *b.dst, err = md.Bool(b.name, false); err != nil {
			return c, err
		}
	}
	if c.PrefetchCount, err = md.Int("prefetchCount", 0); err != nil {
		return c, err
	}
	if c.PrefetchCount < 0 {
		return c, fmt.Errorf("component %q: metadata %q must not be negative", md.Name, "prefetchCount")
	}
	if v := strings.TrimSpace(md.String("maxPriority", "")); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return c, fmt.Errorf("component %q: metadata %q: %q is not a number from 0 to 255", md.Name, "maxPriority", v)
		}
		c.MaxPriority = int(min(n, math.MaxUint8))
	}
	if c.ReconnectWait, err = md.Duration("reconnectWaitInSeconds", 5*time.Second); err != nil {
		return c, err
	}
	if c.ReconnectWait <= 0 {
		return c, fmt.Errorf("component %q: metadata %q must be positive", md.Name, "reconnectWaitInSeconds")
	}
	name := "ttl"
	if _, ok := md.Get(name); !ok {
		name = "ttlInSeconds"
	}
	if c.QueueTTL, err = md.Duration(name, 0); err != nil {
		return c, err
	}
	if c.QueueTTL < 0 {
		return c, fmt.Errorf("component %q: metadata %q must not be negative", md.Name, name)
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"caCert", &c.CACert}, {"clientCert", &c.ClientCert}, {"clientKey", &c.ClientKey}} {
		v := md.String(p.name, "")
		if v == "" {
			continue
		}
		if b, _ := pem.Decode([]byte(v)); b == nil {
			return c, fmt.Errorf("component %q: metadata %q is not PEM", md.Name, p.name)
		}
		*p.dst = v
	}
	return c, nil
}

// tlsConfig is the TLS configuration for a connection with client
// certificates; nil when not all of caCert, clientCert and clientKey are
// set (Dapr's rule).
func (c config) tlsConfig() (*tls.Config, error) {
	if c.CACert == "" || c.ClientCert == "" || c.ClientKey == "" {
		return nil, nil
	}
	cert, err := tls.X509KeyPair([]byte(c.ClientCert), []byte(c.ClientKey))
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(c.CACert)) {
		return nil, fmt.Errorf("caCert holds no certificate")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
