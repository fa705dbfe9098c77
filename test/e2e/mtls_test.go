package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/invoke/transport/transporttest"
	sentryclient "github.com/tandemrun/tandem/sentry/client"
	"github.com/tandemrun/tandem/test/e2e/framework"
)

// issue gets an SVID for id from the test's sentry and returns a Source
// holding it and sentry's trust anchors.
func issue(t *testing.T, s *framework.Sentry, id spiffeid.ID) *identity.Source {
	t.Helper()
	anchors, err := sentryclient.ParseTrustAnchors([]byte(s.TrustAnchors(t)))
	if err != nil {
		t.Fatal(err)
	}
	sid, _ := sentryclient.SentryID(s.TrustDomain, "default")
	c, err := sentryclient.New(sentryclient.Config{Address: s.Addr, TrustAnchors: anchors, SentryID: sid})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src := identity.NewSource()
	rot := &identity.Rotator{ID: id, Issuer: c, Source: src}
	if _, err := rot.Renew(context.Background()); err != nil {
		t.Fatalf("issue %s: %v", id, err)
	}
	return src
}

func callLocal(ctx context.Context, addr string, creds credentials.TransportCredentials) (*internalsv1.InternalInvokeResponse, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	return internalsv1.NewServiceInvocationClient(cc).CallLocal(ctx, &internalsv1.InternalInvokeRequest{
		Ver:      internalsv1.APIVersion_V1,
		Metadata: map[string]*internalsv1.ListStringValue{"dapr-caller-app-id": {Values: []string{"forged"}}},
		Message: &commonv1.InvokeRequest{
			Method: "echo", Data: &anypb.Any{Value: []byte("ping")}, ContentType: "text/plain",
			HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_POST},
		},
	})
}

func TestInternalPortRefusesUntrustedClients(t *testing.T) {
	s := framework.StartSentry(t, bins, framework.SentryOptions{})
	app := framework.StartApp(t, "callee app", bins.Echo)
	callee := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "callee", AppPort: app.Port, Sentry: s, Registry: filepath.Join(t.TempDir(), "r.db"),
	})
	addr := fmt.Sprintf("127.0.0.1:%d", callee.InternalPort)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mtls := func(src *identity.Source) credentials.TransportCredentials {
		return credentials.NewTLS(identity.ClientTLS(src, tlsconfig.AuthorizeAny()))
	}

	// Positive control: a client with a sentry certificate in the trust
	// domain gets through, and the app sees its certificate's app ID.
	good := issue(t, s, spiffeid.RequireFromString("spiffe://public/ns/default/tester"))
	resp, err := callLocal(ctx, addr, mtls(good))
	if err != nil {
		t.Fatalf("trusted client refused: %v", err)
	}
	if got := resp.GetHeaders()["x-echo-caller"].GetValues(); len(got) != 1 || got[0] != "tester" {
		t.Fatalf("app saw caller %v, want [tester] (from the certificate, not the forged metadata)", got)
	}

	otherCA := transporttest.NewCA(t)
	foreign := identity.NewSource()
	foreign.SetSVID(otherCA.SVID(t, spiffeid.RequireFromString("spiffe://public/ns/default/tester")))
	foreign.SetTrustAnchors(good.TrustAnchors())

	cases := map[string]credentials.TransportCredentials{
		"plaintext":                        insecure.NewCredentials(),
		"TLS without a client certificate": credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}),
		"certificate from another CA":      mtls(foreign),
		"sentry certificate, other domain": mtls(issue(t, s, spiffeid.RequireFromString("spiffe://evil.example/ns/default/tester"))),
	}
	for name, creds := range cases {
		if _, err := callLocal(ctx, addr, creds); err == nil {
			t.Errorf("%s: call was accepted, want refusal", name)
		} else {
			t.Logf("%s: refused: %v", name, err)
		}
	}
}

// TestRotationUnderLoad runs invocations without pause while every
// certificate lives 4 s (renewed every ~2 s), and requires zero failures and
// visible rotations.
func TestRotationUnderLoad(t *testing.T) {
	duration := 60 * time.Second
	if v, err := strconv.Atoi(os.Getenv("TANDEM_E2E_ROTATION_SECONDS")); err == nil && v > 0 {
		duration = time.Duration(v) * time.Second
	}
	s := framework.StartSentry(t, bins, framework.SentryOptions{WorkloadTTL: "4s"})
	registry := filepath.Join(t.TempDir(), "r.db")
	var sidecars []*framework.Sidecar
	for _, id := range []string{"caller", "callee"} {
		app := framework.StartApp(t, id+" app", bins.Echo)
		sidecars = append(sidecars, framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: id, AppPort: app.Port, Sentry: s, Registry: registry}))
	}
	url := sidecars[0].HTTPURL() + "/v1.0/invoke/callee/method/echo"
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	load := framework.StartEchoLoad(ctx, url, 4)
	// Meanwhile, probe new handshakes with the callee's internal port and
	// record the serial numbers it presents.
	serials := map[string]bool{}
	probeAddr := fmt.Sprintf("127.0.0.1:%d", sidecars[1].InternalPort)
	tick := time.NewTicker(time.Second)
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			src := issue(t, s, spiffeid.RequireFromString("spiffe://public/ns/default/probe"))
			conn, err := tls.Dial("tcp", probeAddr, identity.ClientTLS(src, tlsconfig.AuthorizeAny()))
			if err != nil {
				t.Errorf("probe handshake: %v", err)
				continue
			}
			serials[conn.ConnectionState().PeerCertificates[0].SerialNumber.String()] = true
			conn.Close()
		}
	}
	tick.Stop()
	load.Stop()
	t.Logf("%d calls succeeded, %d failed in %s; callee presented %d distinct certificates to new connections", load.OK.Load(), load.Failed.Load(), duration, len(serials))
	if load.Failed.Load() != 0 {
		t.Errorf("%d calls failed during rotation (first: %v)", load.Failed.Load(), load.FirstError())
	}
	if load.OK.Load() == 0 {
		t.Fatal("no call succeeded")
	}
	wantRotations := int(duration/(2*time.Second)) / 2
	if len(serials) < wantRotations {
		t.Errorf("callee presented %d distinct certificates, want at least %d (rotations every ~2s)", len(serials), wantRotations)
	}
	rotated := regexp.MustCompile(`workload certificate rotated.*serial=(\d+)`)
	for _, sc := range sidecars {
		if n := len(rotated.FindAllString(sc.Output(), -1)); n < wantRotations {
			t.Errorf("sidecar %s logged %d rotations, want at least %d", sc.AppID, n, wantRotations)
		}
	}
}
