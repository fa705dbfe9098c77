package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/sentry/ca"
	"github.com/tandemrun/tandem/sentry/client"
	"github.com/tandemrun/tandem/sentry/server"
	"github.com/tandemrun/tandem/sentry/validator"
)

type harness struct {
	srv *server.Server
	ca  *ca.CA
	reg *prometheus.Registry
}

// start runs a sentry on 127.0.0.1:0 with the given validators until the
// test ends.
func start(t *testing.T, vals map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator, def sentryv1.SignCertificateRequest_TokenValidator) *harness {
	t.Helper()
	return startWith(t, vals, def, nil)
}

// startWith is start with a last change to the server's options.
func startWith(t *testing.T, vals map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator, def sentryv1.SignCertificateRequest_TokenValidator, edit func(*server.Options)) *harness {
	t.Helper()
	b, err := ca.GenerateBundle(ca.GenerateOptions{TrustDomain: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.New(b, ca.Options{WorkloadCertTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	opts := server.Options{
		CA: c, Validators: vals, DefaultValidator: def, Listener: lis, Metrics: server.NewMetrics(reg),
	}
	if edit != nil {
		edit(&opts)
	}
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &harness{srv: srv, ca: c, reg: reg}
}

func insecureOnly() map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator {
	return map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator{sentryv1.SignCertificateRequest_INSECURE: validator.Insecure{}}
}

func (h *harness) client(t *testing.T, token string) *client.Client {
	t.Helper()
	cl, err := client.New(client.Config{
		Address: h.srv.Addr().String(), TrustAnchors: h.ca.TrustAnchors(), SentryID: h.srv.ID(),
		Token: token, MaxAttempts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func csrFor(t *testing.T, id spiffeid.ID) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := identity.NewCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestIssueEndToEnd(t *testing.T) {
	h := start(t, insecureOnly(), sentryv1.SignCertificateRequest_INSECURE)
	if got := h.srv.ID().String(); got != "spiffe://localhost/ns/default/dapr-sentry" {
		t.Fatalf("sentry id = %s", got)
	}
	id := spiffeid.RequireFromString("spiffe://public/ns/default/orders")
	issued, err := h.client(t, "").Issue(context.Background(), id, csrFor(t, id))
	if err != nil {
		t.Fatal(err)
	}
	if len(issued.Chain) != 2 {
		t.Fatalf("chain has %d certs, want leaf + issuer", len(issued.Chain))
	}
	if got, _ := x509svid.IDFromCert(issued.Chain[0]); got != id {
		t.Fatalf("leaf id = %s, want %s", got, id)
	}
	if len(issued.TrustAnchors) != 1 || !issued.TrustAnchors[0].Equal(h.ca.ActiveRoot()) {
		t.Fatalf("trust anchors = %d certs, want the root", len(issued.TrustAnchors))
	}
	roots := x509.NewCertPool()
	roots.AddCert(issued.TrustAnchors[0])
	inter := x509.NewCertPool()
	inter.AddCert(issued.Chain[1])
	if _, err := issued.Chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("issued certificate does not verify: %v", err)
	}
	if d := time.Until(issued.ValidUntil); d < 50*time.Second || d > time.Minute {
		t.Fatalf("valid until in %v, want about 1m", d)
	}
}

// daprdRequest sends what daprd 1.14+ sends: an empty-subject CSR without
// SANs, PEM-encoded, and no trust domain.
func TestDaprStyleRequest(t *testing.T) {
	h := start(t, insecureOnly(), sentryv1.SignCertificateRequest_INSECURE)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{}}, key)
	if err != nil {
		t.Fatal(err)
	}
	conn := rawConn(t, h)
	resp, err := sentryv1.NewCAClient(conn).SignCertificate(context.Background(), &sentryv1.SignCertificateRequest{
		Id: "checkout", Namespace: "default",
		CertificateSigningRequest: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
	})
	if err != nil {
		t.Fatal(err)
	}
	issued, err := client.ParseResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := x509svid.IDFromCert(issued.Chain[0]); got.String() != "spiffe://public/ns/default/checkout" {
		t.Fatalf("leaf id = %s", got)
	}
	if len(resp.GetTrustChainCertificates()) != 1 || !strings.Contains(string(resp.GetTrustChainCertificates()[0]), "BEGIN CERTIFICATE") {
		t.Fatal("trust_chain_certificates is not one PEM entry of anchors")
	}
	if resp.GetJwt() != nil || len(resp.GetPerAudienceJwts()) != 0 {
		t.Fatal("jwt issued without a jwt issuer")
	}
}

func rawConn(t *testing.T, h *harness) *grpc.ClientConn {
	t.Helper()
	bundle := x509bundle.FromX509Authorities(h.srv.ID().TrustDomain(), h.ca.TrustAnchors())
	tlsConf := tlsconfig.TLSClientConfig(bundle, tlsconfig.AuthorizeID(h.srv.ID()))
	conn, err := grpc.NewClient(h.srv.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestRefusals(t *testing.T) {
	jt, err := validator.NewJoinToken([]validator.Token{{Secret: "good-token"}, {Secret: "orders-token", AppIDs: []string{"orders"}}})
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator{
		sentryv1.SignCertificateRequest_JWKS: jt,
	}, sentryv1.SignCertificateRequest_JWKS)

	orders := spiffeid.RequireFromString("spiffe://public/ns/default/orders")
	other := spiffeid.RequireFromString("spiffe://public/ns/default/payments")
	tests := []struct {
		name     string
		token    string
		id       spiffeid.ID
		csrID    spiffeid.ID
		wantCode codes.Code
	}{
		{"right token", "good-token", orders, orders, codes.OK},
		{"bound token own app", "orders-token", orders, orders, codes.OK},
		{"CSR for another identity", "good-token", orders, other, codes.PermissionDenied},
		{"wrong token", "bad-token", orders, orders, codes.PermissionDenied},
		{"no token", "", orders, orders, codes.PermissionDenied},
		{"bound token other app", "orders-token", other, other, codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.client(t, tt.token).Issue(context.Background(), tt.id, csrFor(t, tt.csrID))
			if got := status.Code(errors.Unwrap(err)); err != nil && got != tt.wantCode || err == nil && tt.wantCode != codes.OK {
				t.Fatalf("err = %v (code %v), want code %v", err, got, tt.wantCode)
			}
		})
	}

	t.Run("validator not enabled", func(t *testing.T) {
		_, err := sentryv1.NewCAClient(rawConn(t, h)).SignCertificate(context.Background(), &sentryv1.SignCertificateRequest{
			Id: "orders", Namespace: "default", TokenValidator: sentryv1.SignCertificateRequest_INSECURE,
			CertificateSigningRequest: []byte("x"),
		})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("err = %v, want InvalidArgument", err)
		}
	})
	t.Run("garbage CSR", func(t *testing.T) {
		_, err := sentryv1.NewCAClient(rawConn(t, h)).SignCertificate(context.Background(), &sentryv1.SignCertificateRequest{
			Id: "orders", Namespace: "default", Token: "good-token",
			CertificateSigningRequest: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte("junk")}),
		})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("err = %v, want InvalidArgument", err)
		}
	})

	body := get(t, "/metrics", server.MetricsHandler(h.reg))
	for _, want := range []string{
		"dapr_sentry_cert_sign_request_received_total 8",
		"dapr_sentry_cert_sign_success_total 2",
		`dapr_sentry_cert_sign_failure_total{reason="req_id_validation"} 3`,
		`dapr_sentry_cert_sign_failure_total{reason="csr_identity"} 1`,
		`dapr_sentry_cert_sign_failure_total{reason="cert_parse"} 1`,
		"dapr_sentry_issuercert_expiry_timestamp",
		"dapr_sentry_rootcert_expiry_timestamp",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

func TestClientVerifiesSentry(t *testing.T) {
	h := start(t, insecureOnly(), sentryv1.SignCertificateRequest_INSECURE)
	otherBundle, err := ca.GenerateBundle(ca.GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wrongID := spiffeid.RequireFromString("spiffe://other.org/ns/default/dapr-sentry")
	tests := []struct {
		name    string
		anchors []*x509.Certificate
		id      spiffeid.ID
	}{
		{"wrong sentry id", h.ca.TrustAnchors(), wrongID},
		{"wrong trust anchors", otherBundle.TrustAnchors, h.srv.ID()},
	}
	id := spiffeid.RequireFromString("spiffe://public/ns/default/a")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, err := client.New(client.Config{Address: h.srv.Addr().String(), TrustAnchors: tt.anchors, SentryID: tt.id, MaxAttempts: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if _, err := cl.Issue(context.Background(), id, csrFor(t, id)); err == nil {
				t.Fatal("Issue succeeded against an unverified sentry")
			}
		})
	}
}

func TestHealthz(t *testing.T) {
	h := start(t, insecureOnly(), sentryv1.SignCertificateRequest_INSECURE)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.ServeHTTP(ctx, lis, h.srv.Healthz()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !h.srv.Ready() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get("http://" + lis.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz = %d, want 200", resp.StatusCode)
	}
}

func TestNewErrors(t *testing.T) {
	b, err := ca.GenerateBundle(ca.GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.New(b, ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		opts server.Options
	}{
		{"no CA", server.Options{Validators: insecureOnly()}},
		{"no validators", server.Options{CA: c}},
		{"default validator missing", server.Options{CA: c, Validators: insecureOnly(), DefaultValidator: sentryv1.SignCertificateRequest_JWKS}},
		{"bad trust domain", server.Options{CA: c, Validators: insecureOnly(), TrustDomain: "Not Valid"}},
		{"port busy", server.Options{CA: c, Validators: insecureOnly(), Address: busy.Addr().String()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := server.New(tt.opts); err == nil {
				t.Fatal("New succeeded")
			}
		})
	}
}

func get(t *testing.T, path string, h http.Handler) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Close()
	resp, err := http.Get("http://" + lis.Addr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// TestInjectorDNSName: the control plane's injector and operator (sentry's namespace and trust domain) get
// their webhook Services' names in their certificates, which the API server checks, and the scheduler its
// pods' names, which its etcd peers check, and the KEDA scaler its Service's name, which KEDA checks; no other
// identity gets a host name.
func TestInjectorDNSName(t *testing.T) {
	h := start(t, insecureOnly(), sentryv1.SignCertificateRequest_INSECURE)
	for _, c := range []struct {
		id   string
		want []string
	}{
		{"spiffe://localhost/ns/default/dapr-injector", []string{"dapr-sidecar-injector.default.svc"}},
		{"spiffe://localhost/ns/apps/dapr-injector", nil},
		{"spiffe://public/ns/default/dapr-injector", nil},
		{"spiffe://localhost/ns/default/dapr-operator", []string{"dapr-webhook.default.svc"}},
		{"spiffe://localhost/ns/default/dapr-scheduler", []string{
			"dapr-scheduler-server-0.dapr-scheduler-server.default.svc.localhost",
			"dapr-scheduler-server-1.dapr-scheduler-server.default.svc.localhost",
			"dapr-scheduler-server-2.dapr-scheduler-server.default.svc.localhost",
		}},
		{"spiffe://localhost/ns/apps/dapr-scheduler", nil},
		{"spiffe://localhost/ns/default/dapr-scaler", []string{"dapr-scaler.default.svc", "dapr-scaler.default.svc.cluster.local"}},
		{"spiffe://localhost/ns/apps/dapr-scaler", nil},
		{"spiffe://localhost/ns/default/orders", nil},
	} {
		id := spiffeid.RequireFromString(c.id)
		issued, err := h.client(t, "").Issue(context.Background(), id, csrFor(t, id))
		if err != nil {
			t.Fatal(err)
		}
		if got := issued.Chain[0].DNSNames; strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: DNS names %v, want %v", c.id, got, c.want)
		}
	}
}
