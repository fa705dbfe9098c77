package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/tandemrun/tandem/internal/loadreport"
	"github.com/tandemrun/tandem/internal/syncbuf"
	"github.com/tandemrun/tandem/scaler/externalscaler"
)

func TestParseFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, o Options)
	}{
		{name: "self-hosted", args: []string{"--sidecars", "http://127.0.0.1:3500"}, check: func(t *testing.T, o Options) {
			if o.kubernetes() || o.Port != 6000 || o.SentryAddress != "dapr-sentry.default.svc:443" {
				t.Errorf("%+v", o)
			}
		}},
		{name: "kubernetes through the API server", args: []string{"--mode", "kubernetes", "--sidecar-port", "3501", "--tls-enabled", "--trust-domain", "cluster.local"},
			env: map[string]string{"NAMESPACE": "dapr-system", "DAPR_SENTRY_TOKEN_FILE": "/t"}, check: func(t *testing.T, o Options) {
				if !o.kubernetes() || o.SidecarPort != 3501 || o.Namespace != "dapr-system" || o.SentryAddress != "dapr-sentry.dapr-system.svc:443" || o.SentryTokenFile != "/t" {
					t.Errorf("%+v", o)
				}
			}},
		{name: "kubernetes with a DNS template", args: []string{"--mode", "kubernetes", "--dns-template", "{app}-dapr.{namespace}.svc"}, check: func(t *testing.T, o Options) {
			if o.kubernetes() {
				t.Error("the DNS template is the discovery asked for")
			}
		}},
		{name: "no discovery", args: nil, wantErr: "give the sidecars to ask"},
		{name: "two discoveries", args: []string{"--sidecars", "http://x", "--dns-template", "y"}, wantErr: "not both"},
		{name: "bad mode", args: []string{"--mode", "cloud"}, wantErr: "not standalone or kubernetes"},
		{name: "cert without key", args: []string{"--sidecars", "http://x", "--tls-cert-file", "c"}, wantErr: "go together"},
		{name: "sentry and files", args: []string{"--sidecars", "http://x", "--tls-enabled", "--tls-cert-file", "c", "--tls-key-file", "k"}, wantErr: "exclude each other"},
		{name: "client CA without TLS", args: []string{"--sidecars", "http://x", "--tls-client-ca-file", "ca"}, wantErr: "needs TLS"},
		{name: "bad port", args: []string{"--sidecars", "http://x", "--sidecar-port", "70000"}, wantErr: "TCP ports"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseFlags(tt.args, io.Discard, env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

// pki is a small CA that writes PEM files.
type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &pki{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf's certificate and key PEM.
func (p *pki) issue(t *testing.T, cn string, usage x509.ExtKeyUsage, dns ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), DNSNames: dns, ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestTLSFromFiles runs the scaler as its main does, over TLS from files with client certificates required,
// against a real metadata endpoint, and talks to it as KEDA does (caCert, tlsClientCert, tlsClientKey): a client
// without a certificate is refused, the server's certificate files are replaced while it runs and the new one is
// served without a restart.
func TestTLSFromFiles(t *testing.T) {
	md := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := loadreport.Report{AppID: "orders", Namespace: "default", InvocationsInFlight: 7}
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "orders", "extended": map[string]string{loadreport.ExtendedKey: rep.Marshal()}})
	}))
	defer md.Close()

	serverCA, clientCA := newPKI(t, "server CA"), newPKI(t, "client CA")
	dir := t.TempDir()
	certFile, keyFile, clientCAFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "client-ca.crt")
	c, k := serverCA.issue(t, "first", x509.ExtKeyUsageServerAuth, "dapr-scaler.dapr-system.svc")
	write(t, certFile, c)
	write(t, keyFile, k)
	write(t, clientCAFile, clientCA.pem)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	lis.Close()
	ctx, cancel := context.WithCancel(t.Context())
	var logs syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--port", fmt.Sprint(port), "--listen-address", "127.0.0.1", "--sidecars", md.URL,
			"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-client-ca-file", clientCAFile}, &logs, &logs, func(string) string { return "" })
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("exit code %d\n%s", code, logs.String())
		}
	}()

	roots := x509.NewCertPool()
	roots.AddCert(serverCA.cert)
	ref := &externalscaler.ScaledObjectRef{Name: "orders", Namespace: "default", ScalerMetadata: map[string]string{"appId": "orders", "metric": "invocations"}}
	// call dials as KEDA does: the host of scalerAddress is the name checked, the given roots the only ones.
	call := func(clientCert []tls.Certificate, wait bool) (float64, *x509.Certificate, error) {
		var served *x509.Certificate
		cfg := &tls.Config{RootCAs: roots, Certificates: clientCert, ServerName: "dapr-scaler.dapr-system.svc",
			VerifyConnection: func(cs tls.ConnectionState) error { served = cs.PeerCertificates[0]; return nil }}
		conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", port), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			return 0, nil, err
		}
		defer conn.Close()
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		m, err := externalscaler.NewExternalScalerClient(conn).GetMetrics(cctx, &externalscaler.GetMetricsRequest{ScaledObjectRef: ref}, grpc.WaitForReady(wait))
		if err != nil {
			return 0, served, err
		}
		return m.GetMetricValues()[0].GetMetricValueFloat(), served, nil
	}
	cc, ck := clientCA.issue(t, "keda", x509.ExtKeyUsageClientAuth)
	kedaCert, err := tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var v float64
	var served *x509.Certificate
	for {
		if v, served, err = call([]tls.Certificate{kedaCert}, true); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || v != 7 {
		t.Fatalf("GetMetrics over TLS with KEDA's client certificate: %v, %v; want 7\n%s", v, err, logs.String())
	}
	if served.Subject.CommonName != "first" {
		t.Errorf("served %q", served.Subject.CommonName)
	}
	if _, _, err := call(nil, false); err == nil {
		t.Error("a client without a certificate was served; --tls-client-ca-file requires one")
	}
	other := newPKI(t, "other CA")
	oc, ok := other.issue(t, "stranger", x509.ExtKeyUsageClientAuth)
	stranger, _ := tls.X509KeyPair(oc, ok)
	if _, _, err := call([]tls.Certificate{stranger}, false); err == nil {
		t.Error("a client certificate of another CA was accepted")
	}

	// The certificate is replaced (as cert-manager or a Secret update does): served from then on, no restart.
	c2, k2 := serverCA.issue(t, "second", x509.ExtKeyUsageServerAuth, "dapr-scaler.dapr-system.svc")
	write(t, keyFile, k2)
	write(t, certFile, c2)
	deadline = time.Now().Add(15 * time.Second)
	for {
		_, served, err = call([]tls.Certificate{kedaCert}, true)
		if err == nil && served.Subject.CommonName == "second" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new certificate is not served (last: %v, %v)\n%s", served.Subject.CommonName, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "TLS files reloaded") {
		t.Errorf("no reload logged:\n%s", logs.String())
	}
}
