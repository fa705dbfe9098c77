package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/sentry/ca"
)

func TestSentryID(t *testing.T) {
	tests := []struct {
		td, ns, want string
		wantErr      bool
	}{
		{"", "", "spiffe://localhost/ns/default/dapr-sentry", false},
		{"cluster.local", "dapr-system", "spiffe://cluster.local/ns/dapr-system/dapr-sentry", false},
		{"Bad TD", "", "", true},
	}
	for _, tt := range tests {
		id, err := SentryID(tt.td, tt.ns)
		if (err != nil) != tt.wantErr || err == nil && id.String() != tt.want {
			t.Errorf("SentryID(%q, %q) = %v, %v; want %s", tt.td, tt.ns, id, err, tt.want)
		}
	}
}

type anchorsCase struct {
	name    string
	in      []byte
	want    int
	wantErr bool
}

// anchorsCases are ParseTrustAnchors' table, also the seeds of its fuzz
// target.
func anchorsCases(tb testing.TB) []anchorsCase {
	a, err := ca.GenerateBundle(ca.GenerateOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	b, err := ca.GenerateBundle(ca.GenerateOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	two := append(append([]byte("# comment\n"), a.TrustAnchorsPEM...), b.TrustAnchorsPEM...)
	return []anchorsCase{
		{"one", a.TrustAnchorsPEM, 1, false},
		{"two with text around", two, 2, false},
		{"issuer and root", append(append([]byte{}, a.IssuerChainPEM...), a.TrustAnchorsPEM...), 2, false},
		{"key only", a.IssuerKeyPEM, 0, true},
		{"empty", nil, 0, true},
	}
}

func TestParseTrustAnchors(t *testing.T) {
	for _, tt := range anchorsCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTrustAnchors(tt.in)
			if (err != nil) != tt.wantErr || len(got) != tt.want {
				t.Fatalf("got %d certs, err %v; want %d, err %v", len(got), err, tt.want, tt.wantErr)
			}
		})
	}
}

// FuzzParseTrustAnchors checks the trust-anchors parser on any input, and
// ParseResponse built on it: ParseTrustAnchors fails exactly when it returns
// no certificate; ParseResponse of a response whose workload certificate and
// trust chain are both that input fails exactly when the parser does, and
// otherwise puts every certificate of the input in exactly one of the chain
// (which is not empty) and the trust anchors.
func FuzzParseTrustAnchors(f *testing.F) {
	for _, c := range anchorsCases(f) {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseTrustAnchors(data)
		if (err == nil) != (len(certs) > 0) {
			t.Fatalf("%d certificates with error %v", len(certs), err)
		}
		issued, rerr := ParseResponse(&sentryv1.SignCertificateResponse{
			WorkloadCertificate: data, TrustChainCertificates: [][]byte{data}})
		if (err == nil) != (rerr == nil) {
			t.Fatalf("ParseTrustAnchors error %v but ParseResponse error %v", err, rerr)
		}
		if err != nil {
			return
		}
		if len(issued.Chain) == 0 || !issued.ValidUntil.Equal(issued.Chain[0].NotAfter) {
			t.Fatalf("chain of %d, valid until %v", len(issued.Chain), issued.ValidUntil)
		}
		in := func(c *x509.Certificate, list []*x509.Certificate) bool {
			return slices.ContainsFunc(list, c.Equal)
		}
		for i, c := range certs {
			if in(c, issued.Chain) == in(c, issued.TrustAnchors) {
				t.Fatalf("certificate %d: in the chain %v, in the anchors %v; want exactly one", i+1, in(c, issued.Chain), in(c, issued.TrustAnchors))
			}
		}
		for _, c := range slices.Concat(issued.Chain, issued.TrustAnchors) {
			if !in(c, certs) {
				t.Fatalf("ParseResponse returned a certificate that is not in the input")
			}
		}
	})
}

// TestParseResponseOldSentry: sentry before 1.11 appended the root to the
// workload chain and sent [issuer, root] as the trust chain.
func TestParseResponseOldSentry(t *testing.T) {
	b, err := ca.GenerateBundle(ca.GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.New(b, ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.IssueTLS(spiffeid.RequireFromString("spiffe://public/ns/default/a"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	chain := []*x509.Certificate{cert.Leaf, c.Issuer(), c.ActiveRoot()}
	issued, err := ParseResponse(&sentryv1.SignCertificateResponse{
		WorkloadCertificate:    ca.EncodeCertificates(chain),
		TrustChainCertificates: [][]byte{ca.EncodeCertificates(chain[1:2]), ca.EncodeCertificates(chain[2:])},
		ValidUntil:             timestamppb.New(cert.Leaf.NotAfter),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(issued.Chain) != 2 || len(issued.TrustAnchors) != 1 || !issued.TrustAnchors[0].Equal(c.ActiveRoot()) {
		t.Fatalf("chain %d, anchors %d; want 2 and the root", len(issued.Chain), len(issued.TrustAnchors))
	}
	if !issued.ValidUntil.Equal(cert.Leaf.NotAfter) {
		t.Fatalf("ValidUntil = %v", issued.ValidUntil)
	}
}

// serveFake serves fake as the sentry of control-plane namespace cpNS
// ("" for the default), with a CA of its own, until the test ends, and
// returns a client configuration that reaches it.
func serveFake(t *testing.T, fake *flakyCA, cpNS string) Config {
	t.Helper()
	b, err := ca.GenerateBundle(ca.GenerateOptions{Namespace: cpNS})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.New(b, ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sentryID, _ := SentryID("", cpNS)
	serving, err := c.IssueTLS(sentryID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fake.ca = c
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{*serving}})))
	sentryv1.RegisterCAServer(gs, fake)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return Config{Address: lis.Addr().String(), TrustAnchors: c.TrustAnchors(), SentryID: sentryID}
}

// flakyCA fails the first `failures` calls with code, then signs.
type flakyCA struct {
	sentryv1.UnimplementedCAServer
	ca       *ca.CA
	failures int32
	code     codes.Code
	calls    atomic.Int32
	last     atomic.Pointer[sentryv1.SignCertificateRequest]
	// jwts: answer the JWT audiences asked for, one token per audience
	// (perAudience) or one for all (a sentry before per-audience tokens).
	jwts, perAudience bool
}

func (f *flakyCA) SignCertificate(_ context.Context, req *sentryv1.SignCertificateRequest) (*sentryv1.SignCertificateResponse, error) {
	f.last.Store(req)
	if f.calls.Add(1) <= f.failures {
		return nil, status.Error(f.code, "try again")
	}
	chain, err := f.ca.IssueTLS(spiffeid.RequireFromString("spiffe://"+req.GetTrustDomain()+"/ns/"+req.GetNamespace()+"/"+req.GetId()), time.Hour)
	if err != nil {
		return nil, err
	}
	resp := &sentryv1.SignCertificateResponse{
		WorkloadCertificate:    ca.EncodeCertificates([]*x509.Certificate{chain.Leaf, f.ca.Issuer()}),
		TrustChainCertificates: [][]byte{f.ca.TrustAnchorsPEM()},
		ValidUntil:             timestamppb.New(chain.Leaf.NotAfter),
	}
	if f.jwts && len(req.GetJwtAudiences()) > 0 {
		resp.Jwt = wrapperspb.String("tok-all")
		if f.perAudience {
			resp.PerAudienceJwts = map[string]*wrapperspb.StringValue{}
			for _, aud := range req.GetJwtAudiences() {
				resp.PerAudienceJwts[aud] = wrapperspb.String("tok-" + aud)
			}
		}
	}
	return resp, nil
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		failures  int32
		code      codes.Code
		wantCalls int32
		wantOK    bool
	}{
		{"unavailable then ok", 2, codes.Unavailable, 3, true},
		{"unavailable every try", 10, codes.Unavailable, 4, false},
		{"permission denied is final", 10, codes.PermissionDenied, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &flakyCA{failures: tt.failures, code: tt.code}
			cfg := serveFake(t, fake, "")
			cfg.MaxAttempts, cfg.RetryBackoff = 4, time.Millisecond
			cl, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			id := spiffeid.RequireFromString("spiffe://public/ns/default/app")
			csr, err := identity.NewCSR(key, id)
			if err != nil {
				t.Fatal(err)
			}
			issued, err := cl.Issue(context.Background(), id, csr)
			if (err == nil) != tt.wantOK {
				t.Fatalf("err = %v, want ok %v", err, tt.wantOK)
			}
			if got := fake.calls.Load(); got != tt.wantCalls {
				t.Fatalf("calls = %d, want %d", got, tt.wantCalls)
			}
			if tt.wantOK && len(issued.TrustAnchors) != 1 {
				t.Fatalf("anchors = %d", len(issued.TrustAnchors))
			}
		})
	}
}

// The audiences configured are asked for with the certificate, and the
// per-audience tokens sentry returns come back by audience; an older
// sentry's single token stands for every audience asked for.
func TestJWTAudiences(t *testing.T) {
	for _, perAudience := range []bool{true, false} {
		t.Run(fmt.Sprint("per audience ", perAudience), func(t *testing.T) {
			fake := &flakyCA{jwts: true, perAudience: perAudience}
			cfg := serveFake(t, fake, "")
			cfg.JWTAudiences = []string{"mcp://a", "mcp://b"}
			cl, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			id := spiffeid.RequireFromString("spiffe://public/ns/default/app")
			csr, _ := identity.NewCSR(key, id)
			issued, err := cl.Issue(context.Background(), id, csr)
			if err != nil {
				t.Fatal(err)
			}
			if got := fake.last.Load().GetJwtAudiences(); !slices.Equal(got, []string{"mcp://a", "mcp://b"}) {
				t.Fatalf("audiences asked for: %v", got)
			}
			want := map[string]string{"mcp://a": "tok-mcp://a", "mcp://b": "tok-mcp://b"}
			if !perAudience {
				want = map[string]string{"mcp://a": "tok-all", "mcp://b": "tok-all"}
			}
			if !maps.Equal(issued.JWTs, want) {
				t.Fatalf("JWTs %v, want %v", issued.JWTs, want)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	b, _ := ca.GenerateBundle(ca.GenerateOptions{})
	id, _ := SentryID("", "")
	for name, cfg := range map[string]Config{
		"no address": {TrustAnchors: b.TrustAnchors, SentryID: id},
		"no anchors": {Address: "127.0.0.1:1", SentryID: id},
		"no id":      {Address: "127.0.0.1:1", TrustAnchors: b.TrustAnchors},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// TestParseResponseReturnsAllRoots: during a root rotation sentry sends old
// and new roots; every one must become a trust anchor.
func TestParseResponseReturnsAllRoots(t *testing.T) {
	oldB, _ := ca.GenerateBundle(ca.GenerateOptions{})
	newB, _ := ca.GenerateBundle(ca.GenerateOptions{})
	c, err := ca.New(newB, ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.IssueTLS(spiffeid.RequireFromString("spiffe://public/ns/default/a"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bundlePEM := append(append([]byte{}, oldB.TrustAnchorsPEM...), newB.TrustAnchorsPEM...)
	for name, entries := range map[string][][]byte{
		"one entry, two roots": {bundlePEM},
		"one entry per root":   {oldB.TrustAnchorsPEM, newB.TrustAnchorsPEM},
	} {
		issued, err := ParseResponse(&sentryv1.SignCertificateResponse{
			WorkloadCertificate:    ca.EncodeCertificates([]*x509.Certificate{cert.Leaf, c.Issuer()}),
			TrustChainCertificates: entries,
			ValidUntil:             timestamppb.New(cert.Leaf.NotAfter),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(issued.TrustAnchors) != 2 || !issued.TrustAnchors[0].Equal(oldB.TrustAnchors[0]) || !issued.TrustAnchors[1].Equal(newB.TrustAnchors[0]) {
			t.Fatalf("%s: anchors = %d, want old and new root", name, len(issued.TrustAnchors))
		}
	}
}

// TestCurrentTrustAnchors: with CurrentTrustAnchors the client verifies
// sentry against whatever the anchors are at the handshake, so a sentry
// whose certificate chains to a new root is accepted once the root is added.
func TestCurrentTrustAnchors(t *testing.T) {
	oldB, _ := ca.GenerateBundle(ca.GenerateOptions{})
	newB, _ := ca.GenerateBundle(ca.GenerateOptions{})
	c, err := ca.New(newB, ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sentryID, _ := SentryID("", "")
	serving, err := c.IssueTLS(sentryID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{*serving}})))
	sentryv1.RegisterCAServer(gs, &flakyCA{ca: c})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()

	var anchors atomic.Pointer[[]*x509.Certificate]
	anchors.Store(&oldB.TrustAnchors)
	id := spiffeid.RequireFromString("spiffe://public/ns/default/app")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := identity.NewCSR(key, id)
	issue := func() error {
		cl, err := New(Config{Address: lis.Addr().String(), SentryID: sentryID, MaxAttempts: 1,
			CurrentTrustAnchors: func() []*x509.Certificate { return *anchors.Load() }})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		_, err = cl.Issue(context.Background(), id, csr)
		return err
	}
	if err := issue(); err == nil {
		t.Fatal("sentry with a certificate from an unknown root was accepted")
	}
	both := append(append([]*x509.Certificate{}, oldB.TrustAnchors...), newB.TrustAnchors...)
	anchors.Store(&both)
	if err := issue(); err != nil {
		t.Fatalf("after adding the new root: %v", err)
	}
}

// TestServiceToken: a control-plane service sends its projected token with the KUBERNETES validator, and no token
// and no validator when the token file does not exist (as Dapr's control plane does outside Kubernetes).
// controlPlaneSentry serves a signing sentry for control-plane namespace
// cp and returns it with its address, a trust anchors file and a token
// file holding "the-token\n".
func controlPlaneSentry(t *testing.T) (fake *flakyCA, addr, anchors, tokenFile string) {
	t.Helper()
	fake = &flakyCA{}
	addr = serveFake(t, fake, "cp").Address
	dir := t.TempDir()
	anchors = filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(anchors, fake.ca.TrustAnchorsPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile = filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("the-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fake, addr, anchors, tokenFile
}

// runTasks runs the identity tasks until the test's end.
func runTasks(t *testing.T, tasks []task.Task) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, tk := range tasks {
		wg.Go(func() { _ = tk.Run(ctx) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// TestControlPlaneStandalone: placement and the scheduler outside
// Kubernetes send no token, or DAPR_SENTRY_TOKEN_FILE's with the JWKS
// validator, and get the SVID they asked for.
func TestControlPlaneStandalone(t *testing.T) {
	fake, addr, anchors, tokenFile := controlPlaneSentry(t)
	id := spiffeid.RequireFromString("spiffe://localhost/ns/cp/dapr-placement")
	for _, tt := range []struct {
		name, file, token string
		validator         sentryv1.SignCertificateRequest_TokenValidator
	}{
		{"no token", "", "", sentryv1.SignCertificateRequest_UNKNOWN},
		{"token file", tokenFile, "the-token\n", sentryv1.SignCertificateRequest_JWKS},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src, tasks, err := ControlPlane{ID: id, TrustDomain: "localhost", SentryAddress: addr, AnchorsFile: anchors,
				TokenFile: tt.file, Log: slog.New(slog.DiscardHandler)}.Start(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			runTasks(t, tasks)
			req := fake.last.Load()
			if req.GetToken() != tt.token || req.GetTokenValidator() != tt.validator {
				t.Errorf("sent token %q validator %s, want %q %s", req.GetToken(), req.GetTokenValidator(), tt.token, tt.validator)
			}
			svid, err := src.GetX509SVID()
			if err != nil || svid.ID != id {
				t.Fatalf("SVID %v, %v; want %s", svid, err, id)
			}
		})
	}
	if _, _, err := (ControlPlane{ID: id, TrustDomain: "localhost", SentryAddress: addr, AnchorsFile: anchors + ".missing",
		Log: slog.New(slog.DiscardHandler)}).Start(context.Background()); err == nil {
		t.Fatal("Start with a missing trust anchors file succeeded")
	}
}

func TestServiceToken(t *testing.T) {
	fake, addr, anchors, tokenFile := controlPlaneSentry(t)
	dir := t.TempDir()
	for _, tt := range []struct {
		name      string
		file      string
		token     string
		validator sentryv1.SignCertificateRequest_TokenValidator
	}{
		{"token file", tokenFile, "the-token", sentryv1.SignCertificateRequest_KUBERNETES},
		{"no token file", filepath.Join(dir, "missing"), "", sentryv1.SignCertificateRequest_UNKNOWN},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			id := spiffeid.RequireFromString("spiffe://localhost/ns/cp/dapr-operator")
			_, tasks, err := Service{ID: id, SentryAddress: addr, AnchorsFile: anchors, TokenFile: tt.file,
				Log: slog.New(slog.DiscardHandler)}.Start(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for _, task := range tasks {
				wg.Go(func() { _ = task.Run(ctx) })
			}
			defer wg.Wait()
			defer cancel()
			req := fake.last.Load()
			if req.GetToken() != tt.token || req.GetTokenValidator() != tt.validator {
				t.Errorf("sent token %q validator %s, want %q %s", req.GetToken(), req.GetTokenValidator(), tt.token, tt.validator)
			}
		})
	}
}
