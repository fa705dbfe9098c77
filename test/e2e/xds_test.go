package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/test/e2e/framework"
	"github.com/tandemrun/tandem/xds"
)

var (
	xdsClientOnce sync.Once
	xdsClientBin  string
	xdsClientErr  error
)

// buildXDSClient builds test/apps/xdsclient (only the xDS tests need it,
// and it pulls in grpc-go's whole xDS stack).
func buildXDSClient(t *testing.T) string {
	t.Helper()
	xdsClientOnce.Do(func() {
		xdsClientBin = filepath.Join(bins.Dir, "xdsclient")
		cmd := exec.Command("go", append(append([]string{"build"}, framework.ReleaseFlags...), "-o", xdsClientBin, "./test/apps/xdsclient")...)
		cmd.Dir = framework.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			xdsClientErr = fmt.Errorf("build xdsclient: %v\n%s", err, out)
		}
	})
	if xdsClientErr != nil {
		t.Fatal(xdsClientErr)
	}
	return xdsClientBin
}

// proxylessFiles writes a sentry SVID for app in grpc-go's file_watcher
// layout, the SPIFFE bundle map and the bootstrap for the xDS server at
// xdsAddr; it returns the bootstrap's path.
func proxylessFiles(t *testing.T, s *framework.Sentry, app, xdsAddr string) string {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString("public")
	id, err := identity.AppID("public", "default", app)
	if err != nil {
		t.Fatal(err)
	}
	src := issue(t, s, id)
	svid, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := svid.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := xds.Files{
		Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), CA: filepath.Join(dir, "ca.pem"),
		SPIFFEBundleMap: filepath.Join(dir, "spiffe-bundle-map.json"),
	}
	bmap, err := xds.SPIFFEBundleMap(src.TrustAnchors(), td)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := xds.Bootstrap(xds.BootstrapOptions{Server: xdsAddr, NodeID: app, Files: f})
	if err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string][]byte{
		f.Cert: certPEM, f.Key: keyPEM, f.CA: []byte(s.TrustAnchors(t)), f.SPIFFEBundleMap: bmap,
		filepath.Join(dir, "bootstrap.json"): boot,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "bootstrap.json")
}

type xdsCall struct {
	Code, Data, Peer, Error string
	ElapsedMS               string `json:"elapsed_ms"`
}

func callProxyless(t *testing.T, port int, app, method string) xdsCall {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/call?app=%s&method=%s", port, app, method))
	if err != nil {
		t.Fatalf("xds client: %v", err)
	}
	defer resp.Body.Close()
	var c xdsCall
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatalf("xds client answer: %v", err)
	}
	return c
}

// TestXDSProxylessClient: a gRPC client with no sidecar, configured only by
// GRPC_XDS_BOOTSTRAP and a sentry certificate, dials xds:///echo and calls
// the app's own gRPC service through the callee's sidecar over mTLS. The
// app sees the caller's app ID from the certificate; a sidecar that joins
// or leaves is seen through the SQLite registry; access control applies.
func TestXDSProxylessClient(t *testing.T) {
	client := buildXDSClient(t)
	s := framework.StartSentry(t, bins, framework.SentryOptions{})
	registry := filepath.Join(t.TempDir(), "r.db")
	const denySpec = `  accessControl:
    defaultAction: allow
    trustDomain: public
    policies:
    - appId: proxyless
      defaultAction: deny
      trustDomain: public
      namespace: default
`
	echo := func(name string) *framework.Sidecar {
		app := framework.StartApp(t, name+" app", bins.GRPCEcho)
		return framework.StartSidecar(t, bins, framework.SidecarOptions{
			AppID: "echo", AppPort: app.Port, AppProtocol: "grpc", Sentry: s, Registry: registry,
		})
	}
	first := echo("echo 1")
	guardedApp := framework.StartApp(t, "guarded app", bins.GRPCEcho)
	framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "guarded", AppPort: guardedApp.Port, AppProtocol: "grpc", Sentry: s,
		Args: []string{"--config", framework.WriteConfig(t, registry, denySpec)},
	})

	xdsAddr := fmt.Sprintf("127.0.0.1:%d", framework.FreePort(t))
	_, xdsPort, _ := strings.Cut(xdsAddr, ":")
	framework.Start(t, "tandem xds", bins.Tandem, []string{"xds",
		"--registry", registry, "--update-interval", "2s", "--port", xdsPort,
		"--sentry-address", s.Addr, "--control-plane-trust-domain", s.TrustDomain,
	}, "DAPR_TRUST_ANCHORS="+s.TrustAnchors(t))
	if err := framework.WaitTCP(xdsAddr, 15*time.Second); err != nil {
		t.Fatal(err)
	}

	boot := proxylessFiles(t, s, "proxyless", xdsAddr)
	cport := framework.FreePort(t)
	framework.Start(t, "xds client", client, []string{"--port", strconv.Itoa(cport)},
		"GRPC_XDS_BOOTSTRAP="+boot, "GRPC_EXPERIMENTAL_XDS_MTLS_SPIFFE=true")
	if err := framework.WaitTCP(fmt.Sprintf("127.0.0.1:%d", cport), 15*time.Second); err != nil {
		t.Fatal(err)
	}

	var c xdsCall
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if c = callProxyless(t, cport, "echo", "whoami"); c.Code == "OK" {
			break
		}
	}
	if c.Code != "OK" {
		t.Fatalf("proxyless call to echo: %+v", c)
	}
	if c.Data != "proxyless" {
		t.Errorf("the app saw caller %q, want %q (from the client's certificate)", c.Data, "proxyless")
	}
	firstAddr := fmt.Sprintf("127.0.0.1:%d", first.InternalPort)
	if c.Peer != firstAddr {
		t.Errorf("the call went to %s, want the sidecar's internal port %s", c.Peer, firstAddr)
	}

	// A second instance joins: the client spreads calls to it.
	second := echo("echo 2")
	secondAddr := fmt.Sprintf("127.0.0.1:%d", second.InternalPort)
	joined := time.Now()
	seen := false
	for time.Since(joined) < 10*time.Second {
		c := callProxyless(t, cport, "echo", "whoami")
		if c.Code != "OK" {
			t.Fatalf("call while a sidecar joins: %+v", c)
		}
		if c.Peer == secondAddr {
			seen = true
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !seen {
		t.Fatalf("the client never called the second sidecar %s", secondAddr)
	}
	t.Logf("a joining sidecar got its first proxyless call %v after it was ready", time.Since(joined).Round(time.Millisecond))

	// It leaves (graceful: it deregisters); no call fails, and the client
	// stops calling it.
	second.Stop()
	left := time.Now()
	failed := 0
	for i := 0; i < 50; i++ {
		c := callProxyless(t, cport, "echo", "whoami")
		if c.Code != "OK" {
			failed++
			t.Logf("call after a sidecar left: %+v", c)
		} else if c.Peer != firstAddr {
			t.Errorf("call after the second sidecar stopped went to %s", c.Peer)
		}
	}
	if failed > 0 {
		t.Errorf("%d of 50 calls failed after a sidecar left", failed)
	}
	t.Logf("50 calls in %v after the second sidecar stopped", time.Since(left).Round(time.Millisecond))

	// Access control by SPIFFE ID: the guarded app denies this caller.
	var d xdsCall
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if d = callProxyless(t, cport, "guarded", "whoami"); d.Code == "PermissionDenied" {
			break
		}
	}
	if d.Code != "PermissionDenied" {
		t.Errorf("call to the guarded app: %+v, want PermissionDenied", d)
	}
}
