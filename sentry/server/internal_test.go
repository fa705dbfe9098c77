package server

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"

	"github.com/tandemrun/tandem/sentry/ca"
	"github.com/tandemrun/tandem/sentry/validator"
)

func newTestServer(t *testing.T, caTTL, workloadTTL time.Duration, log *slog.Logger) *Server {
	t.Helper()
	b, err := ca.GenerateBundle(ca.GenerateOptions{TTL: caTTL})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.New(b, ca.Options{WorkloadCertTTL: workloadTTL})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	s, err := New(Options{
		CA: c, Listener: lis, Log: log,
		Validators:       map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator{sentryv1.SignCertificateRequest_INSECURE: validator.Insecure{}},
		DefaultValidator: sentryv1.SignCertificateRequest_INSECURE,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestServingCertRenewedAtHalfLife(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestServer(t, time.Hour, 10*time.Second, nil)
		first, err := s.servingCert()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second)
		if again, _ := s.servingCert(); again != first {
			t.Fatal("serving certificate renewed before half its lifetime")
		}
		time.Sleep(2 * time.Second)
		renewed, err := s.servingCert()
		if err != nil {
			t.Fatal(err)
		}
		if renewed == first || !renewed.Leaf.NotAfter.After(first.Leaf.NotAfter) {
			t.Fatal("serving certificate not renewed after half its lifetime")
		}
	})
}

func TestExpiryWarnings(t *testing.T) {
	tests := []struct {
		name     string
		caTTL    time.Duration
		wantWarn bool
	}{
		{"one year", ca.DefaultCATTL, false},
		{"ten days", 10 * 24 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			s := newTestServer(t, tt.caTTL, time.Minute, slog.New(slog.NewTextHandler(&buf, nil)))
			s.checkExpiry()
			out := buf.String()
			if got := strings.Contains(out, "expires soon"); got != tt.wantWarn {
				t.Fatalf("warning logged = %v, want %v; log:\n%s", got, tt.wantWarn, out)
			}
			if tt.wantWarn && !(strings.Contains(out, "root") && strings.Contains(out, "issuer")) {
				t.Fatalf("want warnings for root and issuer; log:\n%s", out)
			}
		})
	}
}
