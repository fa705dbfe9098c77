// Package inspect asks running sidecars what they are doing, for `tandem
// list`, `tandem status` and the dashboard: their metadata (components,
// readiness, subscriptions), health, the certificate they present (SPIFFE
// ID and expiry) and a summary of their Prometheus metrics.
package inspect

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tandemrun/tandem/cmd/tandem/internal/registry"
)

// Metadata is the part of GET /v1.0/metadata Tandem shows.
type Metadata struct {
	ID             string            `json:"id"`
	RuntimeVersion string            `json:"runtimeVersion"`
	Components     []Component       `json:"components"`
	Extended       map[string]string `json:"extended"`
	Subscriptions  []Subscription    `json:"subscriptions"`
}

// Component is a registered component with its readiness.
type Component struct {
	Name         string   `json:"name"`
	Type         string   `json:"type"`
	Version      string   `json:"version"`
	Capabilities []string `json:"capabilities,omitempty"`
	// Status is extended["component.<name>"]: "ready", "retrying (...)"...
	Status string `json:"status"`
}

// Subscription is a pub/sub subscription of the app.
type Subscription struct {
	PubsubName      string `json:"pubsubname"`
	Topic           string `json:"topic"`
	DeadLetterTopic string `json:"deadLetterTopic,omitempty"`
	Type            string `json:"type,omitempty"`
	Rules           []struct {
		Match string `json:"match,omitempty"`
		Path  string `json:"path,omitempty"`
	} `json:"rules,omitempty"`
}

// Cert is the workload certificate a sidecar presents.
type Cert struct {
	SPIFFEID string    `json:"spiffeId"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"notAfter"`
	Issuer   string    `json:"issuer"`
}

// App is what is known about one running app.
type App struct {
	Record   *registry.App `json:"record"`
	Uptime   string        `json:"uptime"`
	Healthy  bool          `json:"healthy"`  // /v1.0/healthz answered 204
	Outbound bool          `json:"outbound"` // /v1.0/healthz/outbound answered 204
	Metadata *Metadata     `json:"metadata,omitempty"`
	Cert     *Cert         `json:"cert,omitempty"`
	Metrics  *Metrics      `json:"metrics,omitempty"`
	Errors   []string      `json:"errors,omitempty"`
}

var client = &http.Client{Timeout: 2 * time.Second}

// Inspect queries every app concurrently.
func Inspect(ctx context.Context, recs []*registry.App) []*App {
	out := make([]*App, len(recs))
	var wg sync.WaitGroup
	for i, r := range recs {
		wg.Add(1)
		go func() { defer wg.Done(); out[i] = One(ctx, r) }()
	}
	wg.Wait()
	return out
}

// One queries one app's sidecar; what fails is listed in Errors.
func One(ctx context.Context, r *registry.App) *App {
	a := &App{Record: r, Uptime: time.Since(r.Started).Round(time.Second).String()}
	base := "http://127.0.0.1:" + strconv.Itoa(r.HTTPPort)
	a.Healthy = status(ctx, base+"/v1.0/healthz") == http.StatusNoContent
	a.Outbound = status(ctx, base+"/v1.0/healthz/outbound") == http.StatusNoContent
	if md, err := metadata(ctx, base+"/v1.0/metadata"); err != nil {
		a.Errors = append(a.Errors, "metadata: "+err.Error())
	} else {
		a.Metadata = md
	}
	if c, err := PeerCert(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(r.InternalPort))); err != nil {
		a.Errors = append(a.Errors, "certificate: "+err.Error())
	} else {
		a.Cert = c
	}
	if r.MetricsPort > 0 {
		if m, err := FetchMetrics(ctx, "http://127.0.0.1:"+strconv.Itoa(r.MetricsPort)+"/metrics"); err != nil {
			a.Errors = append(a.Errors, "metrics: "+err.Error())
		} else {
			a.Metrics = m
		}
	}
	return a
}

func status(ctx context.Context, url string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func metadata(ctx context.Context, url string) (*Metadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	var md Metadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&md); err != nil {
		return nil, err
	}
	for i := range md.Components {
		md.Components[i].Status = md.Extended["component."+md.Components[i].Name]
		if md.Components[i].Status == "" {
			md.Components[i].Status = "unknown"
		}
	}
	return &md, nil
}

// PeerCert reads the certificate the sidecar's internal mTLS port presents.
// It completes no mutual handshake (it has no client certificate) and
// trusts nothing: it only reads what the server sends first.
func PeerCert(ctx context.Context, addr string) (*Cert, error) {
	var leaf *x509.Certificate
	cfg := &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // the certificate is only displayed, never trusted
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"h2"},
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) > 0 {
				leaf, _ = x509.ParseCertificate(raw[0])
			}
			return nil
		},
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 2 * time.Second}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if conn != nil {
		conn.Close()
	}
	if leaf == nil {
		if err == nil {
			err = errors.New("no certificate presented")
		}
		return nil, err
	}
	c := &Cert{Serial: leaf.SerialNumber.Text(16), NotAfter: leaf.NotAfter.UTC(), Issuer: leaf.Issuer.String()}
	if len(leaf.URIs) > 0 {
		c.SPIFFEID = leaf.URIs[0].String()
	}
	return c, nil
}
