package framework

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Sentry is a running sentry process.
type Sentry struct {
	*Process
	Addr        string // host:port of the CA gRPC service
	HealthzPort int
	MetricsPort int
	CredsDir    string
	TrustDomain string
}

// SentryOptions tune StartSentry.
type SentryOptions struct {
	// WorkloadTTL is the lifetime of issued certificates ("" = sentry's default).
	WorkloadTTL string
	// CredsDir reuses a credentials folder (default: a new temp folder).
	CredsDir string
	Args     []string
}

// StartSentry starts sentry on random ports and waits for /healthz.
func StartSentry(t testing.TB, bins *Binaries, o SentryOptions) *Sentry {
	t.Helper()
	s := &Sentry{
		Addr:        fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		HealthzPort: FreePort(t),
		MetricsPort: FreePort(t),
		CredsDir:    o.CredsDir,
		TrustDomain: "localhost",
	}
	if s.CredsDir == "" {
		s.CredsDir = filepath.Join(t.TempDir(), "creds")
	}
	args := []string{
		"--issuer-credentials", s.CredsDir,
		"--trust-domain", s.TrustDomain,
		"--listen-address", "127.0.0.1",
		"--port", strings.TrimPrefix(s.Addr, "127.0.0.1:"),
		"--healthz-listen-address", "127.0.0.1",
		"--healthz-port", itoa(s.HealthzPort),
		"--metrics-listen-address", "127.0.0.1",
		"--metrics-port", itoa(s.MetricsPort),
	}
	if o.WorkloadTTL != "" {
		args = append(args, "--workload-cert-ttl", o.WorkloadTTL)
	}
	args = append(args, o.Args...)
	s.Process = Start(t, "sentry", bins.Sentry, args)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", s.HealthzPort), 200, 20*time.Second); err != nil {
		t.Fatalf("sentry: %v\n%s", err, s.Output())
	}
	return s
}

// TrustAnchors returns the PEM roots sentry wrote (for DAPR_TRUST_ANCHORS).
func (s *Sentry) TrustAnchors(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.CredsDir, "ca.crt"))
	if err != nil {
		t.Fatalf("read trust anchors: %v", err)
	}
	return string(b)
}

// Sidecar is a running tandemd.
type Sidecar struct {
	*Process
	AppID        string
	HTTPPort     int
	GRPCPort     int
	InternalPort int
	MetricsPort  int
}

// HTTPURL returns the sidecar's HTTP API base URL.
func (s *Sidecar) HTTPURL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.HTTPPort) }

// GRPCAddr returns the sidecar's public gRPC address.
func (s *Sidecar) GRPCAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.GRPCPort) }

// SidecarOptions tune StartSidecar.
type SidecarOptions struct {
	AppID       string
	AppPort     int    // 0: no app
	AppProtocol string // http (default) or grpc
	// Sentry enables mTLS with this sentry; nil runs plaintext.
	Sentry *Sentry
	// Registry is the shared sqlite name-resolution file.
	Registry string
	// ResourcesDir is passed as --resources-path when set.
	ResourcesDir string
	Args         []string
	Env          []string
	// NoWait skips waiting for readiness.
	NoWait bool
	// Binary runs another sidecar binary with the same flags (e.g. a real
	// daprd for interoperability tests); empty means tandemd.
	Binary string
}

// WriteConfig writes a Configuration using sqlite name resolution on
// registry and returns its path.
func WriteConfig(t testing.TB, registry, extraSpec string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: e2e
spec:
  nameResolution:
    component: sqlite
    configuration:
      connectionString: %q
      updateInterval: 2s
%s`, registry, extraSpec)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ActorStore writes, into a new resources folder it returns, the actor
// state store the actor and workflow tests share: state.sqlite named
// actorstore in that folder, with actorStateStore "true". extra are more
// metadata items as name, value pairs.
func ActorStore(t testing.TB, extra ...string) string {
	t.Helper()
	res := t.TempDir()
	var md strings.Builder
	fmt.Fprintf(&md, "  - name: connectionString\n    value: %q\n", filepath.Join(res, "actors.db"))
	for i := 0; i+1 < len(extra); i += 2 {
		fmt.Fprintf(&md, "  - name: %s\n    value: %q\n", extra[i], extra[i+1])
	}
	md.WriteString("  - name: actorStateStore\n    value: \"true\"\n")
	comp := "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: actorstore\nspec:\n  type: state.sqlite\n  version: v1\n  metadata:\n" + md.String()
	if err := os.WriteFile(filepath.Join(res, "state.yaml"), []byte(comp), 0o600); err != nil {
		t.Fatal(err)
	}
	return res
}

// StartSidecar starts tandemd on random ports and waits for
// /v1.0/healthz/outbound.
//
// A port picked free can be taken by another process before the sidecar
// binds it; a sidecar that exits saying so is started again on new ports.
func StartSidecar(t testing.TB, bins *Binaries, o SidecarOptions) *Sidecar {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s := startSidecarOnce(t, bins, o)
		if o.NoWait {
			return s
		}
		var err error
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
			if err = WaitHTTP(context.Background(), s.HTTPURL()+"/v1.0/healthz/outbound", 204, 250*time.Millisecond); err == nil {
				return s
			}
			if exited, _ := s.Exited(); exited {
				break
			}
		}
		if exited, _ := s.Exited(); exited && strings.Contains(s.Output(), "already in use") && attempt < 3 {
			t.Logf("sidecar %s lost a port to another process; starting it again on new ports", o.AppID)
			continue
		}
		t.Fatalf("sidecar %s: %v\n%s", o.AppID, err, s.Output())
	}
}

func startSidecarOnce(t testing.TB, bins *Binaries, o SidecarOptions) *Sidecar {
	t.Helper()
	s := &Sidecar{AppID: o.AppID, HTTPPort: FreePort(t), GRPCPort: FreePort(t), InternalPort: FreePort(t), MetricsPort: FreePort(t)}
	args := []string{
		"--app-id", o.AppID,
		"--dapr-http-port", itoa(s.HTTPPort),
		"--dapr-grpc-port", itoa(s.GRPCPort),
		"--dapr-internal-grpc-port", itoa(s.InternalPort),
		"--metrics-port", itoa(s.MetricsPort),
		"--dapr-listen-addresses", "127.0.0.1",
		"--log-level", "debug",
	}
	if o.AppPort != 0 {
		args = append(args, "--app-port", itoa(o.AppPort))
	}
	if o.AppProtocol != "" {
		args = append(args, "--app-protocol", o.AppProtocol)
	}
	if o.Registry != "" {
		args = append(args, "--config", WriteConfig(t, o.Registry, ""))
	}
	if o.ResourcesDir != "" {
		args = append(args, "--resources-path", o.ResourcesDir)
	}
	env := append([]string{"DAPR_HOST_IP=127.0.0.1"}, o.Env...)
	if o.Sentry != nil {
		args = append(args, "--enable-mtls", "--sentry-address", o.Sentry.Addr,
			"--control-plane-trust-domain", o.Sentry.TrustDomain)
		env = append(env, "DAPR_TRUST_ANCHORS="+o.Sentry.TrustAnchors(t))
	}
	args = append(args, o.Args...)
	bin := bins.Tandemd
	if o.Binary != "" {
		bin = o.Binary
	}
	s.Process = Start(t, filepath.Base(bin)+" "+o.AppID, bin, args, env...)
	return s
}

// WaitReady waits until the sidecar's outbound APIs answer.
func (s *Sidecar) WaitReady(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := WaitHTTP(ctx, s.HTTPURL()+"/v1.0/healthz/outbound", 204, 20*time.Second); err != nil {
		t.Fatalf("sidecar %s: %v\n%s", s.AppID, err, s.Output())
	}
}

// App is a running test app.
type App struct {
	*Process
	Port int
}

// StartApp starts a test app binary on a random port and waits for it.
func StartApp(t testing.TB, name, bin string, env ...string) *App {
	t.Helper()
	port := FreePort(t)
	a := &App{Port: port}
	a.Process = Start(t, name, bin, []string{"--port", itoa(port)}, env...)
	if err := WaitTCP(fmt.Sprintf("127.0.0.1:%d", port), 15*time.Second); err != nil {
		t.Fatalf("app %s: %v\n%s", name, err, a.Output())
	}
	return a
}
