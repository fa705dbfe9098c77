package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/syncbuf"
	"github.com/tandemrun/tandem/test/e2e/framework"
	"github.com/tandemrun/tandem/xds"
	"github.com/tandemrun/tandem/xds/svidfiles"
)

// proxylessMesh is a sentry, one echo app with its sidecar, an xDS server,
// `tandem identity` for the app ID "proxyless" and the proxyless client
// using its files.
type proxylessMesh struct {
	sentry   *framework.Sentry
	registry string
	echo     *framework.Sidecar
	idDir    string
	identity *framework.Process
	client   int // the client's control port
}

type meshOptions struct {
	// WorkloadTTL of sentry's certificates ("" = its default).
	WorkloadTTL string
	// ResourcesDir, passed to `tandem xds` (Resiliency).
	ResourcesDir string
	// Server, if set, is an xDS server in this process (plaintext) instead
	// of `tandem xds`: it gets the echo sidecar as its only app.
	Server func(t *testing.T, echo *framework.Sidecar) string
}

func startProxylessMesh(t *testing.T, o meshOptions) *proxylessMesh {
	t.Helper()
	client := buildXDSClient(t)
	m := &proxylessMesh{registry: filepath.Join(t.TempDir(), "r.db")}
	m.sentry = framework.StartSentry(t, bins, framework.SentryOptions{WorkloadTTL: o.WorkloadTTL})
	m.echo = m.startEcho(t, "echo 1")

	var xdsAddr string
	plaintext := o.Server != nil
	if plaintext {
		xdsAddr = o.Server(t, m.echo)
	} else {
		xdsAddr = fmt.Sprintf("127.0.0.1:%d", framework.FreePort(t))
		_, xdsPort, _ := strings.Cut(xdsAddr, ":")
		args := []string{"xds", "--registry", m.registry, "--update-interval", "2s", "--port", xdsPort,
			"--sentry-address", m.sentry.Addr, "--control-plane-trust-domain", m.sentry.TrustDomain}
		if o.ResourcesDir != "" {
			args = append(args, "--resources-path", o.ResourcesDir)
		}
		framework.Start(t, "tandem xds", bins.Tandem, args, "DAPR_TRUST_ANCHORS="+m.sentry.TrustAnchors(t))
	}
	if err := framework.WaitTCP(xdsAddr, 15*time.Second); err != nil {
		t.Fatal(err)
	}

	m.idDir = filepath.Join(t.TempDir(), "id")
	args := []string{"identity", "--app-id", "proxyless", "--out", m.idDir, "--xds-address", xdsAddr,
		"--sentry-address", m.sentry.Addr, "--control-plane-trust-domain", m.sentry.TrustDomain}
	if plaintext {
		args = append(args, "--xds-plaintext")
	}
	m.identity = framework.Start(t, "tandem identity", bins.Tandem, args, "DAPR_TRUST_ANCHORS="+m.sentry.TrustAnchors(t))
	boot := filepath.Join(m.idDir, svidfiles.BootstrapFile)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(boot); err == nil && strings.Contains(m.identity.Stdout(), `"xds_servers"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tandem identity wrote no bootstrap (or did not print it) in 15s:\n%s", m.identity.Output())
		}
	}
	var printed map[string]any
	if err := json.Unmarshal([]byte(m.identity.Stdout()), &printed); err != nil || printed["certificate_providers"] == nil {
		t.Errorf("tandem identity printed %q, want the bootstrap JSON (%v)", m.identity.Stdout(), err)
	}

	m.client = framework.FreePort(t)
	framework.Start(t, "xds client", client, []string{"--port", strconv.Itoa(m.client)},
		"GRPC_XDS_BOOTSTRAP="+boot, "GRPC_EXPERIMENTAL_XDS_MTLS_SPIFFE=true")
	if err := framework.WaitTCP(fmt.Sprintf("127.0.0.1:%d", m.client), 15*time.Second); err != nil {
		t.Fatal(err)
	}
	var c xdsCall
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if c, _ = proxylessCall(m.client, "echo", "whoami", ""); c.Code == "OK" {
			break
		}
	}
	if c.Code != "OK" || c.Data != "proxyless" {
		t.Fatalf("first proxyless call to echo: %+v (want OK from caller proxyless)", c)
	}
	return m
}

func (m *proxylessMesh) startEcho(t *testing.T, name string) *framework.Sidecar {
	t.Helper()
	app := framework.StartApp(t, name+" app", bins.GRPCEcho)
	return framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "echo", AppPort: app.Port, AppProtocol: "grpc", Sentry: m.sentry, Registry: m.registry,
	})
}

// certSerial reads the serial and expiry of the identity's cert.pem.
func (m *proxylessMesh) certSerial() (string, time.Time, error) {
	b, err := os.ReadFile(svidfiles.Paths(m.idDir).Cert)
	if err != nil {
		return "", time.Time{}, err
	}
	certs, err := identity.ParseCertificates(b)
	if err != nil {
		return "", time.Time{}, err
	}
	return certs[0].SerialNumber.String(), certs[0].NotAfter, nil
}

// proxylessCall is callProxyless that returns its error (for goroutines).
func proxylessCall(port int, app, method, data string) (xdsCall, error) {
	q := url.Values{"app": {app}, "method": {method}}
	if data != "" {
		q.Set("data", data)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/call?%s", port, q.Encode()))
	if err != nil {
		return xdsCall{}, err
	}
	defer resp.Body.Close()
	var c xdsCall
	err = json.NewDecoder(resp.Body).Decode(&c)
	return c, err
}

// TestXDSIdentityRotationUnderLoad: the proxyless client's certificate
// comes from `tandem identity` with 6 s certificates; calls under load go
// on through several rotations with none failing, and a sidecar that joins
// after the first certificate expired is reached too, which needs a TLS
// handshake with a rotated certificate.
func TestXDSIdentityRotationUnderLoad(t *testing.T) {
	m := startProxylessMesh(t, meshOptions{WorkloadTTL: "6s"})
	firstSerial, firstNotAfter, err := m.certSerial()
	if err != nil {
		t.Fatal(err)
	}

	var calls, failed atomic.Int64
	var mu sync.Mutex
	peers := map[string]int{}
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := proxylessCall(m.client, "echo", "whoami", "")
				calls.Add(1)
				mu.Lock()
				if err != nil || c.Code != "OK" || c.Data != "proxyless" {
					failed.Add(1)
					if len(failures) < 5 {
						failures = append(failures, fmt.Sprintf("%+v %v", c, err))
					}
				} else {
					peers[c.Peer]++
				}
				mu.Unlock()
			}
		}()
	}
	serials := map[string]bool{firstSerial: true}
	watchUntil := func(end time.Time) {
		for ; time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			if s, _, err := m.certSerial(); err == nil {
				serials[s] = true
			}
		}
	}
	// Past the first certificate's expiry, then a second sidecar joins.
	watchUntil(firstNotAfter.Add(time.Second))
	second := m.startEcho(t, "echo 2")
	secondAddr := fmt.Sprintf("127.0.0.1:%d", second.InternalPort)
	joined := time.Now()
	reached := false
	for time.Since(joined) < 15*time.Second && !reached {
		watchUntil(time.Now().Add(500 * time.Millisecond))
		mu.Lock()
		reached = peers[secondAddr] > 0
		mu.Unlock()
	}
	watchUntil(time.Now().Add(2 * time.Second))
	close(stop)
	wg.Wait()

	t.Logf("%d calls, %d failed, %d certificates written (first expired %s), peers %v",
		calls.Load(), failed.Load(), len(serials), firstNotAfter.Format(time.TimeOnly), peers)
	if failed.Load() > 0 {
		t.Errorf("%d of %d calls failed across rotations; first: %v", failed.Load(), calls.Load(), failures)
	}
	if len(serials) < 4 {
		t.Errorf("%d certificates in %s of 6 s certificates renewed at half life, want >= 4 (rotation did not happen)",
			len(serials), time.Since(firstNotAfter.Add(-6*time.Second)).Round(time.Second))
	}
	if !reached {
		t.Errorf("the sidecar that joined after the first certificate expired (%s) got no call: the client did not handshake with a rotated certificate", secondAddr)
	}
	if calls.Load() < 100 {
		t.Errorf("only %d calls: not a load", calls.Load())
	}
}

// TestXDSSidecarRefusesPlaintextAndForeignCA: the callee sidecar's internal
// port, which takes proxyless clients' direct calls, refuses a plaintext
// connection and a certificate from another CA and trust domain; the same
// call with a certificate of the mesh's sentry goes through.
func TestXDSSidecarRefusesPlaintextAndForeignCA(t *testing.T) {
	s := framework.StartSentry(t, bins, framework.SentryOptions{})
	other := framework.StartSentry(t, bins, framework.SentryOptions{})
	app := framework.StartApp(t, "echo app", bins.GRPCEcho)
	echo := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "echo", AppPort: app.Port, AppProtocol: "grpc", Sentry: s})
	addr := fmt.Sprintf("127.0.0.1:%d", echo.InternalPort)

	call := func(creds credentials.TransportCredentials) (string, error) {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return "", err
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := runtimev1.NewAppCallbackClient(cc).OnInvoke(ctx, &commonv1.InvokeRequest{
			Method: "whoami", Data: &anypb.Any{Value: []byte("ping")}, ContentType: "text/plain",
		})
		return string(resp.GetData().GetValue()), err
	}
	anchors := issue(t, s, spiffeid.RequireFromString("spiffe://public/ns/default/anchors")).TrustAnchors()
	// Each client trusts the mesh's CA for the server: a refusal is the
	// sidecar's doing, not the client's.
	withCert := func(src *identity.Source) credentials.TransportCredentials {
		src.SetTrustAnchors(anchors)
		return credentials.NewTLS(identity.ClientTLS(src, tlsconfig.AuthorizeMemberOf(spiffeid.RequireTrustDomainFromString("public"))))
	}

	good := withCert(issue(t, s, spiffeid.RequireFromString("spiffe://public/ns/default/proxyless")))
	if who, err := call(good); err != nil || who != "proxyless" {
		t.Fatalf("a call with the mesh's certificate: %q, %v; want the app to answer proxyless", who, err)
	}
	foreignSrc := issue(t, other, spiffeid.RequireFromString("spiffe://other/ns/default/proxyless"))
	foreignAnchors := foreignSrc.TrustAnchors()
	if len(foreignAnchors) == 0 || foreignAnchors[0].Equal(anchors[0]) {
		t.Fatal("the second sentry has the same CA")
	}
	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext":                   insecure.NewCredentials(),
		"another CA and trust domain": withCert(foreignSrc),
	} {
		who, err := call(creds)
		if err == nil {
			t.Errorf("%s: the sidecar answered %q, want the connection refused", name, who)
			continue
		}
		if code := status.Code(err); code != codes.Unavailable {
			t.Errorf("%s: %v, want Unavailable (the TLS handshake refused)", name, err)
		}
		t.Logf("%s refused: %v", name, err)
	}
}

// staticSource is a Source with a fixed app list.
type staticSource struct{ apps []xds.App }

func (s staticSource) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (s staticSource) Apps() []xds.App               { return append([]xds.App(nil), s.apps...) }
func (s staticSource) Changed() <-chan struct{}      { return nil }

// TestXDSNackKeepsLastGoodVersion: a cluster the client cannot accept (an
// lb_policy gRPC does not implement) is pushed; the client NACKs it, the
// server logs and reports the NACK with the client's reason, and the client
// keeps calling on the last good version.
func TestXDSNackKeepsLastGoodVersion(t *testing.T) {
	var srv *xds.Server
	var logs syncbuf.Buffer
	build := xds.BuildOptions{TrustDomain: spiffeid.RequireTrustDomainFromString("public")}
	var apps []xds.App
	m := startProxylessMesh(t, meshOptions{Server: func(t *testing.T, echo *framework.Sidecar) string {
		apps = []xds.App{{ID: "echo", Namespace: "default", Endpoints: []xds.Endpoint{{Host: "127.0.0.1", Port: uint32(echo.InternalPort)}}}}
		var err error
		srv, err = xds.New(xds.Options{Source: staticSource{apps: apps}, Build: build,
			Log: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, lis, nil, build.TrustDomain) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("xds server: %v", err)
			}
		})
		return lis.Addr().String()
	}})

	good, err := xds.Build("good-2", apps, build)
	if err != nil {
		t.Fatal(err)
	}
	bad := map[resource.Type][]types.Resource{}
	for _, typ := range []resource.Type{resource.ListenerType, resource.ClusterType, resource.EndpointType} {
		for _, r := range good.GetResources(typ) {
			if c, ok := r.(*clusterv3.Cluster); ok {
				c = proto.Clone(c).(*clusterv3.Cluster)
				c.LbPolicy = clusterv3.Cluster_MAGLEV
				r = c
			}
			bad[typ] = append(bad[typ], r)
		}
	}
	snap, err := cachev3.NewSnapshot("bad-3", bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SetSnapshot(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	var reason string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && reason == ""; time.Sleep(50 * time.Millisecond) {
		reason = srv.NACKs()["proxyless/"+resource.ClusterType]
	}
	if !strings.Contains(reason, "lbPolicy") {
		t.Fatalf("server's NACKs %v: want the client's rejection of the cluster naming lbPolicy", srv.NACKs())
	}
	if out := logs.String(); !strings.Contains(out, "xds client rejected resources") || !strings.Contains(out, "rejected_version=bad-3") {
		t.Errorf("the NACK is not in the server's log:\n%s", out)
	}
	for i := range 50 {
		if c, err := proxylessCall(m.client, "echo", "whoami", ""); err != nil || c.Code != "OK" {
			t.Fatalf("call %d after the NACK: %+v %v (the client should keep the last good cluster)", i, c, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestXDSResiliencyTimeoutAppliedByClient: a Resiliency timeout of 1 s for
// the app, read by `tandem xds`, reaches the client as the route's
// max_stream_duration: a call to a method that takes 3 s fails with
// DeadlineExceeded after about 1 s, and a quick one succeeds.
func TestXDSResiliencyTimeoutAppliedByClient(t *testing.T) {
	res := t.TempDir()
	if err := os.WriteFile(filepath.Join(res, "resiliency.yaml"), []byte(`apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: xds
spec:
  policies:
    timeouts:
      fast: 1s
  targets:
    apps:
      echo:
        timeout: fast
`), 0o600); err != nil {
		t.Fatal(err)
	}
	m := startProxylessMesh(t, meshOptions{ResourcesDir: res})
	if c, err := proxylessCall(m.client, "echo", "sleep", "100ms"); err != nil || c.Code != "OK" || c.Data != "slept" {
		t.Fatalf("a quick sleep: %+v %v", c, err)
	}
	c, err := proxylessCall(m.client, "echo", "sleep", "3s")
	if err != nil {
		t.Fatal(err)
	}
	elapsed, _ := strconv.Atoi(c.ElapsedMS)
	t.Logf("a 3 s call under a 1 s Resiliency timeout: %s after %d ms (%s)", c.Code, elapsed, c.Error)
	if c.Code != "DeadlineExceeded" {
		t.Errorf("a 3 s call: %s (%s), want DeadlineExceeded from the route timeout", c.Code, c.Error)
	}
	if elapsed < 900 || elapsed > 2000 {
		t.Errorf("the call ended after %d ms, want about 1000 (the Resiliency timeout)", elapsed)
	}
}

// TestXDSTandemRunServesXDS: with `tandem run` alone (self-hosted), the
// local sentry's process serves xDS too: `tandem status` shows it, `tandem
// identity` with no sentry flags gets a certificate from the local sentry
// and names that server in its bootstrap, and the proxyless client calls
// the app through xds:///<app-id> with no other process.
func TestXDSTandemRunServesXDS(t *testing.T) {
	client := buildXDSClient(t)
	c := newTandemCLI(t)
	run := c.start("tandem run grpcsvc", "run", "--app-id", "grpcsvc", "--app-port", fmt.Sprint(framework.FreePort(t)),
		"--app-protocol", "grpc", "--", bins.GRPCEcho)
	c.waitApps([]*framework.Process{run}, "grpcsvc")

	var st struct {
		Sentry struct {
			XDS string `json:"xds"`
		} `json:"sentry"`
	}
	if out := c.mustExec("status", "-o", "json"); json.Unmarshal([]byte(out), &st) != nil || st.Sentry.XDS == "" {
		t.Fatalf("tandem status shows no xDS server:\n%s", out)
	}
	if out := c.mustExec("status"); !strings.Contains(out, "xDS:     running on "+st.Sentry.XDS) {
		t.Errorf("tandem status does not show the xDS server %s:\n%s", st.Sentry.XDS, out)
	}

	dir := filepath.Join(t.TempDir(), "id")
	id := c.start("tandem identity", "identity", "--app-id", "proxyless", "--out", dir)
	boot := filepath.Join(dir, svidfiles.BootstrapFile)
	var b []byte
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		if b, err = os.ReadFile(boot); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tandem identity wrote no bootstrap in 20s:\n%s", id.Output())
		}
	}
	if !strings.Contains(string(b), `"server_uri": "`+st.Sentry.XDS+`"`) {
		t.Errorf("the bootstrap does not name the local xDS server %s:\n%s", st.Sentry.XDS, b)
	}

	port := framework.FreePort(t)
	framework.Start(t, "xds client", client, []string{"--port", strconv.Itoa(port)},
		"GRPC_XDS_BOOTSTRAP="+boot, "GRPC_EXPERIMENTAL_XDS_MTLS_SPIFFE=true")
	if err := framework.WaitTCP(fmt.Sprintf("127.0.0.1:%d", port), 15*time.Second); err != nil {
		t.Fatal(err)
	}
	var call xdsCall
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if call, _ = proxylessCall(port, "grpcsvc", "whoami", ""); call.Code == "OK" {
			break
		}
	}
	if call.Code != "OK" || call.Data != "proxyless" {
		t.Fatalf("proxyless call to grpcsvc through the local xDS server: %+v\nidentity:\n%s", call, id.Output())
	}
}
