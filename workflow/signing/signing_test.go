package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// testCA is a root and an intermediate issuing SVIDs, as sentry's.
type testCA struct {
	root, mid *x509.Certificate
	midKey    crypto.Signer
	serial    int64
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root := issue(t, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)},
		nil, rootKey, &rootKey.PublicKey)
	midKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mid := issue(t, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "intermediate"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)},
		root, rootKey, &midKey.PublicKey)
	return &testCA{root: root, mid: mid, midKey: midKey, serial: 10}
}

func issue(t testing.TB, tmpl, parent *x509.Certificate, key crypto.Signer, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// svid issues an SVID for path in trust domain public.
func (ca *testCA) svid(t testing.TB, path string) *x509svid.SVID {
	t.Helper()
	id := spiffeid.RequireFromPath(spiffeid.RequireTrustDomainFromString("public"), path)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca.serial++
	leaf := issue(t, &x509.Certificate{SerialNumber: big.NewInt(ca.serial), URIs: []*url.URL{id.URL()},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature},
		ca.mid, ca.midKey, &key.PublicKey)
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{leaf, ca.mid}, PrivateKey: key}
}

// fakeIdentity is a fixed SVID and the CA's root as trust anchor.
type fakeIdentity struct {
	svid *x509svid.SVID
	root *x509.Certificate
}

func (f *fakeIdentity) GetX509SVID() (*x509svid.SVID, error) { return f.svid, nil }
func (f *fakeIdentity) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return x509bundle.FromX509Authorities(td, []*x509.Certificate{f.root}), nil
}

func rawEvents(t testing.TB, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range n {
		b, err := MarshalEvent(&protos.HistoryEvent{EventId: int32(i), Timestamp: timestamppb.Now(),
			EventType: &protos.HistoryEvent_TimerCreated{TimerCreated: &protos.TimerCreatedEvent{FireAt: timestamppb.Now()}}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// history signs events in batches of the given sizes, as saves do.
func history(t *testing.T, s *Signer, events [][]byte, batches ...int) (sigs [][]byte, certs []*protos.SigningCertificate) {
	t.Helper()
	start := 0
	for _, n := range batches {
		var prev []byte
		if len(sigs) > 0 {
			prev = sigs[len(sigs)-1]
		}
		b, err := s.Sign(events[start:start+n], uint64(start), prev, certs)
		if err != nil {
			t.Fatal(err)
		}
		if b.NewCert != nil {
			certs = append(certs, b.NewCert)
		}
		sigs = append(sigs, b.Raw)
		start += n
	}
	return sigs, certs
}

func TestSignedHistoryVerifies(t *testing.T) {
	ca := newCA(t)
	id := &fakeIdentity{svid: ca.svid(t, "/ns/default/app"), root: ca.root}
	s := New(id)
	events := rawEvents(t, 6)
	sigs, certs := history(t, s, events, 2, 1, 3)
	if len(sigs) != 3 || len(certs) != 1 {
		t.Fatalf("got %d signatures and %d certificates, want 3 and 1 (one chain reused)", len(sigs), len(certs))
	}
	if err := s.VerifyChain(sigs, certs, events); err != nil {
		t.Fatalf("VerifyChain: %v", err)
	}
	if err := CheckIdentity(certs[0].GetCertificate(), "app", "default"); err != nil {
		t.Fatalf("CheckIdentity: %v", err)
	}
	// A rotated SVID adds its chain; both verify.
	id.svid = ca.svid(t, "/ns/default/app")
	more := append(events, rawEvents(t, 1)...)
	b, err := s.Sign(more[6:], 6, sigs[2], certs)
	if err != nil {
		t.Fatal(err)
	}
	if b.NewCert == nil || b.Signature.GetCertificateIndex() != 1 {
		t.Fatalf("rotated SVID: new cert %v at index %d, want a new one at 1", b.NewCert != nil, b.Signature.GetCertificateIndex())
	}
	if err := s.VerifyChain(append(sigs, b.Raw), append(certs, b.NewCert), more); err != nil {
		t.Fatalf("VerifyChain after rotation: %v", err)
	}
}

func TestTamperingIsDetected(t *testing.T) {
	ca := newCA(t)
	s := New(&fakeIdentity{svid: ca.svid(t, "/ns/default/app"), root: ca.root})
	events := rawEvents(t, 5)
	sigs, certs := history(t, s, events, 2, 3)

	other := newCA(t)
	foreign := New(&fakeIdentity{svid: other.svid(t, "/ns/default/app"), root: other.root})
	fsigs, fcerts := history(t, foreign, events, 5)

	clone := func(in [][]byte) [][]byte {
		out := make([][]byte, len(in))
		for i, b := range in {
			out[i] = append([]byte(nil), b...)
		}
		return out
	}
	tests := []struct {
		name   string
		mutate func(sigs, events [][]byte) ([][]byte, []*protos.SigningCertificate, [][]byte)
		want   string
	}{
		{"event changed", func(sg, ev [][]byte) ([][]byte, []*protos.SigningCertificate, [][]byte) {
			ev[3][len(ev[3])-1] ^= 1
			return sg, certs, ev
		}, "events digest mismatch"},
		{"event appended", func(sg, ev [][]byte) ([][]byte, []*protos.SigningCertificate, [][]byte) {
			return sg, certs, append(ev, ev[0])
		}, "coverage mismatch"},
		{"event removed", func(sg, ev [][]byte) ([][]byte, []*protos.SigningCertificate, [][]byte) {
			return sg, certs, ev[:4]
		}, "exceeds events length"},
		{"signature stripped", func(sg, ev [][]byte) ([][]byte, []*protos.SigningCertificate, [][]byte) {
			return sg[:1], certs, ev
		}, "coverage mismatch"},
		{"all signatures stripped", func(sg, ev [][]byte) ([][]byte, []*protos.SigningCertificate, [][]byte) {
			return nil, certs, ev
		}, "no signatures"},
		{"signature bytes changed", func(sg, ev [][]byte) ([][]byte, []*protos.SigningCertificate, [][]byte) {
			sg[1][len(sg[1])-2] ^= 1
			return sg, certs, ev
		}, "signature"},
		{"signatures reordered", func(sg, ev [][]byte) ([][]byte, []*protos.SigningCertificate, [][]byte) {
			return [][]byte{sg[1], sg[0]}, certs, ev
		}, "root signature"},
		{"signed by an untrusted CA", func(_, ev [][]byte) ([][]byte, []*protos.SigningCertificate, [][]byte) {
			return fsigs, fcerts, ev
		}, "chain-of-trust"},
		{"certificate swapped", func(sg, ev [][]byte) ([][]byte, []*protos.SigningCertificate, [][]byte) {
			return sg, fcerts, ev
		}, "signature verification failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sg, cs, ev := tt.mutate(clone(sigs), clone(events))
			err := s.VerifyChain(sg, cs, ev)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("VerifyChain = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if err := s.VerifyChain(sigs, certs, events); err != nil {
		t.Fatalf("the untouched history fails: %v", err)
	}
}

func TestCheckIdentity(t *testing.T) {
	ca := newCA(t)
	chain := func(path string) []byte {
		var b []byte
		for _, c := range ca.svid(t, path).Certificates {
			b = append(b, c.Raw...)
		}
		return b
	}
	for _, tt := range []struct {
		path, want string
	}{
		{"/ns/default/app", ""},
		{"/ns/default/other", "app \"other\""},
		{"/ns/prod/app", "namespace \"prod\""},
		{"/ns/default/app/x", "path format"},
	} {
		err := CheckIdentity(chain(tt.path), "app", "default")
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CheckIdentity(%s) = %v, want %q", tt.path, err, tt.want)
		}
	}
}

func TestSignNeedsALinkAfterTheFirstBatch(t *testing.T) {
	ca := newCA(t)
	s := New(&fakeIdentity{svid: ca.svid(t, "/ns/default/app"), root: ca.root})
	if _, err := s.Sign(rawEvents(t, 1), 3, nil, nil); err == nil {
		t.Fatal("Sign from index 3 without a previous signature succeeded")
	}
}
